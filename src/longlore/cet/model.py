"""The multiple-choice scorer: encoder over (question, option) pairs -> mean pool -> small head.

Shape legend: B questions, C options (padded to the batch maximum), N = B * C pairs, T tokens,
D encoder width. ``logits`` are (B, C); padded options get a large negative score so they never
win and carry (numerically) zero probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from longlore.cet.config import CETConfig
from longlore.cet.data import MCQuestion
from longlore.core.devices import module_device_dtype
from longlore.core.models import mean_pool
from longlore.core.saving import PretrainedMixin

_PAD_OPTION_SCORE = -1e4  # exp(-1e4 - max) underflows to 0: a padded option has no probability


@dataclass
class PairBatch:
    """Tokenised (question, option) pairs of B questions, C option slots each."""

    encoding: dict[str, torch.Tensor]  # input_ids etc., (N, T) with N = B * C
    option_mask: torch.Tensor  # (B, C) bool, False for padded option slots
    labels: torch.Tensor  # (B,)

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(
            {k: v.to(device) for k, v in self.encoding.items()}, self.option_mask.to(device), self.labels.to(device)
        )


def encode_pairs(tokenizer: Any, questions: Sequence[MCQuestion], max_len: int) -> PairBatch:
    """Tokenise every (question, option) pair; questions with fewer options get empty padded slots."""
    n_opt = max(len(q.options) for q in questions)
    firsts, seconds, mask = [], [], []
    for q in questions:
        for c in range(n_opt):
            firsts.append(q.question)
            seconds.append(q.options[c] if c < len(q.options) else "")
            mask.append(c < len(q.options))
    encoding = tokenizer(firsts, seconds, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    return PairBatch(
        dict(encoding),
        torch.tensor(mask).view(len(questions), n_opt),
        torch.tensor([q.label for q in questions], dtype=torch.long),
    )


class MCScorer(PretrainedMixin, nn.Module):
    """Scores each option of a question; ``forward`` returns (B, C) logits.

    The encoder is held as-is (any BERT-family ``AutoModel``); the head is the only new module, so
    methods that protect pretrained weights (EWC, RecAdam) can tell the two apart by name. The
    head follows the encoder's device and dtype.

    Saving (PEFT style): ``scorer.save_pretrained(path)`` writes the tensors that training
    changes (the head, and the encoder unless the method froze it) with the config;
    ``MCScorer.from_pretrained(base_encoder, tokenizer, path)`` puts them back on a freshly loaded
    base encoder (:func:`load_scorer` loads the base named in the saved config for you).
    """

    pretrained_kind = "cet"
    config_class = CETConfig

    def __init__(
        self, encoder: nn.Module, hidden: int = 0, dropout: float = 0.1, config: CETConfig | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config if config is not None else CETConfig(head_hidden=hidden)
        width = encoder.config.hidden_size
        hidden = hidden or self.config.head_hidden or width
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(width, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )
        device, dtype = module_device_dtype(encoder)
        self.head.to(device=device, dtype=dtype)

    @classmethod
    def _from_config(cls, base_model: nn.Module, tokenizer: Any, config: CETConfig) -> MCScorer:
        return cls(base_model, config=config)

    def pretrained_extra(self) -> dict[str, Any]:
        return {"encoder_hidden_size": self.encoder.config.hidden_size}

    def forward(self, batch: PairBatch, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C) option logits; ``inputs_embeds`` (N, T, D) replaces the word embeddings (R3F noise)."""
        encoding = dict(batch.encoding)
        if inputs_embeds is not None:
            encoding.pop("input_ids")
            encoding["inputs_embeds"] = inputs_embeds
        hidden = self.encoder(**encoding).last_hidden_state  # (N, T, D)
        pooled = mean_pool(hidden, batch.encoding["attention_mask"])  # (N, D)
        B, C = batch.option_mask.shape
        scores = self.head(pooled).view(B, C)  # (B, C)
        return scores.masked_fill(~batch.option_mask, _PAD_OPTION_SCORE)

    def word_embeddings(self, batch: PairBatch) -> torch.Tensor:
        """(N, T, D) word embeddings of the batch's tokens (what R3F perturbs)."""
        return self.encoder.get_input_embeddings()(batch.encoding["input_ids"])


@torch.no_grad()
def predict(
    scorer: MCScorer, tokenizer: Any, questions: Sequence[MCQuestion], max_len: int, batch_size: int = 32
) -> list[int]:
    """Index of the highest-scoring option for each question (eval mode, no dropout)."""
    was_training = scorer.training
    scorer.eval()
    device = next(scorer.parameters()).device
    preds: list[int] = []
    for start in range(0, len(questions), batch_size):
        batch = encode_pairs(tokenizer, questions[start : start + batch_size], max_len).to(device)
        preds.extend(scorer(batch).argmax(dim=-1).tolist())
    scorer.train(was_training)
    return preds


def accuracy(scorer: MCScorer, tokenizer: Any, questions: Sequence[MCQuestion], max_len: int) -> float:
    """Fraction of questions whose gold option scores highest."""
    preds = predict(scorer, tokenizer, questions, max_len)
    return sum(int(p == q.label) for p, q in zip(preds, questions)) / len(questions)


@torch.no_grad()
def zero_shot_accuracy(encoder: nn.Module, tokenizer: Any, questions: Sequence[MCQuestion], max_len: int) -> float:
    """The pretrained encoder with no head and no training: pick the option whose mean-pooled
    embedding is most cosine-similar to the question's (what a sentence embedder already knows)."""
    from longlore.cet.neighbours import embed_texts

    q_emb = embed_texts(encoder, tokenizer, [q.question for q in questions], max_len)
    texts = [o for q in questions for o in q.options]
    o_emb = embed_texts(encoder, tokenizer, texts, max_len)
    correct, offset = 0, 0
    for i, q in enumerate(questions):
        sims = o_emb[offset : offset + len(q.options)] @ q_emb[i]
        correct += int(int(sims.argmax()) == q.label)
        offset += len(q.options)
    return correct / len(questions)


# --- load ---------------------------------------------------------------------------------------


def load_scorer(
    model_dir: str | Path, *, device: str = "cpu", dtype: str = "float32"
) -> tuple[MCScorer, Any, CETConfig]:
    """``(scorer, tokenizer, config)`` from a folder written by ``MCScorer.save_pretrained`` (a run
    folder resolves to its ``final/``): the base encoder named in the saved config
    (``config.encoder``) is loaded on ``device`` in ``dtype`` and the saved tensors put on it."""
    from longlore.core.models import load_encoder
    from longlore.core.saving import load_pretrained_folder

    _, meta, _ = load_pretrained_folder(model_dir, kind=MCScorer.pretrained_kind, version=MCScorer.pretrained_version)
    config = CETConfig.from_dict(meta["config"], where=str(model_dir))
    encoder, tokenizer = load_encoder(config.encoder, device=device, dtype=dtype, seed=config.seed)
    return MCScorer.from_pretrained(encoder, tokenizer, model_dir), tokenizer, config
