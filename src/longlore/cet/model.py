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
from longlore.core.models import mean_pool

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


class MCScorer(nn.Module):
    """Scores each option of a question; ``forward`` returns (B, C) logits.

    The encoder is held as-is (any BERT-family ``AutoModel``); the head is the only new module, so
    methods that protect pretrained weights (EWC, RecAdam) can tell the two apart by name.
    """

    def __init__(self, encoder: nn.Module, hidden: int = 0, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        width = encoder.config.hidden_size
        hidden = hidden or width
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(width, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

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


# --- save / load ------------------------------------------------------------------------------


def save_scorer(out_dir: str | Path, scorer: MCScorer, tokenizer: Any, config_json: str) -> Path:
    """Write ``encoder/`` (HF folder + tokenizer), ``head.safetensors`` and ``config.json``; the
    folder is assembled under a temp name and renamed, so a crash never leaves half a model."""
    import shutil

    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    scorer.encoder.save_pretrained(tmp / "encoder")
    tokenizer.save_pretrained(tmp / "encoder")
    save_file({k: v.contiguous() for k, v in scorer.head.state_dict().items()}, str(tmp / "head.safetensors"))
    (tmp / "config.json").write_text(config_json)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def load_scorer(model_dir: str | Path) -> tuple[MCScorer, Any, CETConfig]:
    """Load ``(scorer, tokenizer, config)`` written by :func:`save_scorer`; errors name the missing file."""
    from safetensors.torch import load_file

    from longlore.core.errors import LongloreError
    from longlore.core.models import load_encoder

    model_dir = Path(model_dir)
    head_path, config_path = model_dir / "head.safetensors", model_dir / "config.json"
    for needed in (head_path, config_path, model_dir / "encoder"):
        if not needed.exists():
            raise LongloreError(
                f"{model_dir}: not a CET model folder ({needed.name} is missing); train one with `longlore cet train`"
            )
    config = CETConfig.load(config_path)
    encoder, tokenizer = load_encoder(str(model_dir / "encoder"))
    scorer = MCScorer(encoder, hidden=config.head_hidden)
    scorer.head.load_state_dict(load_file(str(head_path)))
    return scorer.eval(), tokenizer, config
