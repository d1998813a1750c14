"""RAM: read the query-relevant segments of a long context verbatim, skim the rest into vectors.

Shape legend: N segments of at most S tokens; H_e / H_d encoder / decoder hidden sizes;
M = length of the hybrid sequence (kept tokens + one vector per skimmed segment).

    context ──tokens──► N segments ─► encoder (first k decoder layers, RAM's own copy), each
                                      segment alone: no cross-segment attention ─► states (N, S, H_e)
    question ─────────► encoder ─► q (H_e,) = mean of its token states
    relevance_i = cos(q, mean(s_i))  ─► top-k segments kept as their token embeddings
    skim_i = Linear(sum_t softmax_t(cos(h_t, q)) h_t)  for every other segment (one vector)
    decoder input = [hybrid in original order] + "\nQuestion: q\nAnswer:" (+ answer when training)

The caller's decoder is never modified: RAM adapts its own view of it (see ``modules.py``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from longlore.core.devices import module_device_dtype
from longlore.core.errors import LongloreError
from longlore.core.models import mean_pool
from longlore.core.saving import PretrainedMixin, find_model_folder, load_state_checked, save_pretrained_folder
from longlore.ram.config import RAMConfig
from longlore.ram.generation import cache_kwarg, cache_of, greedy_decode, left_pad
from longlore.ram.loss import multi_positive_infonce
from longlore.ram.modules import add_lora, decoder_view, trainable_state, truncated_encoder

SELECTORS = ("ram", "first", "last", "random", "scores")
WEIGHTS_FILE, CONFIG_FILE = "ram_model.safetensors", "ram_config.json"


def keep_count(n_segments: int, keep_ratio: float) -> int:
    """k = int(keep_ratio * N) as in the official code, but at least one segment when keep_ratio > 0."""
    if keep_ratio <= 0 or n_segments == 0:
        return 0
    return min(n_segments, max(1, int(keep_ratio * n_segments)))


@dataclass
class EncodedContext:
    """A context cut into segments and encoded once; reusable for any number of questions."""

    segments: list[list[int]]  # token ids per segment
    texts: list[str]  # decoded text per segment
    states: torch.Tensor | None  # (N, S, H_e) encoder states (None: not encoded, baselines only)
    mask: torch.Tensor | None  # (N, S) 1 for real tokens

    @property
    def original_tokens(self) -> int:
        return sum(len(s) for s in self.segments)


@dataclass
class Compressed:
    """One compressed context: the decoder-side hybrid sequence plus statistics."""

    embeddings: torch.Tensor  # (M, H_d) hybrid sequence in original segment order
    kept: list[int]  # indices of segments read verbatim
    scores: torch.Tensor  # (N,) relevance of every segment (cosine; selection scores for baselines)
    original_tokens: int
    segment_texts: list[str] = field(default_factory=list)

    @property
    def compressed_length(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def compression(self) -> float:
        """Achieved compression factor: original tokens per hybrid position (4.0 = "4x")."""
        return self.original_tokens / max(1, self.compressed_length)

    @property
    def keep_ratio(self) -> float:
        """Achieved share of segments read verbatim."""
        return len(self.kept) / max(1, len(self.segment_texts))

    def close_read_text(self, separator: str = " ... ") -> str:
        """The verbatim segments as plain text (text-only mode: feed them to any LLM)."""
        return separator.join(self.segment_texts[i] for i in self.kept)

    def stats(self) -> dict[str, Any]:
        return {
            "original_tokens": self.original_tokens,
            "compressed_length": self.compressed_length,
            "compression": round(self.compression, 3),
            "keep_ratio": round(self.keep_ratio, 4),
            "n_segments": len(self.segment_texts),
            "kept_segments": self.kept,
        }


class RAMModel(PretrainedMixin, nn.Module):
    """A RAM compressor (encoder + projector) in front of a decoder LLM.

    RAM works on its own view of ``decoder``: frozen weights are shared (no copy), the weights
    RAM trains (``config.decoder_trainable``: q/k/v) are RAM's own clones, or LoRA adapters when
    ``config.decoder_lora_r > 0``. The decoder passed in is never written to; ``ram.decoder`` is the
    adapted view.
    """

    pretrained_kind = "ram"
    pretrained_version = 1
    config_class = RAMConfig

    def __init__(self, decoder: Any, tokenizer: Any, config: RAMConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RAMConfig()
        self.tokenizer = tokenizer
        self.decoder = decoder_view(decoder, cfg.decoder_trainable, full=cfg.decoder_lora_r == 0)
        if cfg.decoder_lora_r and cfg.decoder_trainable:
            add_lora(self.decoder, cfg.decoder_trainable, cfg.decoder_lora_r, cfg.lora_alpha)
        self.encoder = truncated_encoder(decoder, cfg.encoder_layers, trainable=cfg.encoder_lora_r == 0)
        if cfg.encoder_lora_r:
            add_lora(self.encoder, cfg.encoder_lora_targets, cfg.encoder_lora_r, cfg.lora_alpha)
        device, dtype = module_device_dtype(decoder)
        enc_h, dec_h = self.encoder.config.hidden_size, decoder.config.hidden_size
        self.projector = nn.Linear(enc_h, dec_h, device=device, dtype=dtype)
        with torch.no_grad():  # start near the token-embedding scale: normed states have RMS ~ 1
            scale = decoder.get_input_embeddings().weight.float().std().item()
            self.projector.weight.copy_(torch.eye(dec_h, enc_h) * scale)
            self.projector.bias.zero_()

    @property
    def device(self) -> torch.device:
        return self.projector.weight.device

    # --- encoding and selection -------------------------------------------------------------
    def segment(self, context: str) -> tuple[list[list[int]], list[str]]:
        """Cut the context into fixed token segments; returns ids and each segment's text."""
        ids = self.tokenizer(context, add_special_tokens=False)["input_ids"][: self.config.max_doc_tokens]
        size = self.config.segment_tokens
        segments = [ids[i : i + size] for i in range(0, len(ids), size)]
        return segments, [self.tokenizer.decode(s) for s in segments]

    def _encode_batch(self, seqs: list[list[int]], max_batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode token sequences as independent rows (right padding; causal, so padding never
        reaches a real token). Returns states (B, S, H_e) and mask (B, S).

        Full-width rows (every segment but a document's last) run without an attention mask: the
        plain causal kernel, markedly faster on long documents than a padded-mask one."""
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=self.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=self.device)
        full = [i for i, s in enumerate(seqs) if len(s) == width]
        short = [i for i, s in enumerate(seqs) if len(s) < width]
        states: torch.Tensor | None = None
        for rows, masked in ((full, False), (short, True)):
            for start in range(0, len(rows), max_batch):
                index = torch.tensor(rows[start : start + max_batch], device=self.device)
                out = self.encoder(
                    input_ids=ids[index], attention_mask=mask[index] if masked else None
                ).last_hidden_state  # (b, S, H_e)
                if states is None:
                    states = out.new_zeros(len(seqs), width, out.shape[-1])
                states = states.index_copy(0, index, out)
        return states, mask

    def encode_context(self, context: str, encode: bool = True) -> EncodedContext:
        """Segment ``context`` and encode every segment (once, for any number of questions)."""
        if not context.strip():
            raise LongloreError("compress: empty context")
        segments, texts = self.segment(context)
        if not encode:
            return EncodedContext(segments, texts, None, None)
        states, mask = self._encode_batch(segments)
        return EncodedContext(segments, texts, states, mask)

    def relevance(self, question: str | list[int], encoded: EncodedContext) -> tuple[torch.Tensor, torch.Tensor]:
        """``scores`` (N,) = cos(mean(q), mean(s_i)) and ``skim`` (N, H_d): per segment the
        query-attention-weighted sum of its token states, projected into the decoder's space.
        ``question`` is text or token ids. Similarities are computed in float32 whatever the dtype."""
        query_ids = (
            self.tokenizer(question, add_special_tokens=False)["input_ids"] if isinstance(question, str) else question
        ) or [self.tokenizer.eos_token_id]
        q_states, q_mask = self._encode_batch([query_ids])
        query = mean_pool(q_states.float(), q_mask)[0]  # (H_e,)
        states, mask = encoded.states.float(), encoded.mask  # (N, S, H_e), (N, S)
        scores = F.cosine_similarity(mean_pool(states, mask), query[None], dim=-1)  # (N,)
        token_sim = F.cosine_similarity(states, query[None, None], dim=-1)  # (N, S)
        weights = token_sim.masked_fill(~mask.bool(), float("-inf")).softmax(dim=-1)
        skim = torch.einsum("ns,nsh->nh", weights, states)  # (N, H_e)
        return scores, self.projector(skim.to(self.projector.weight.dtype))

    def encode(self, query_ids: list[int], segments: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and skim vectors for token-id inputs (see :meth:`relevance`)."""
        states, mask = self._encode_batch(segments)
        return self.relevance(query_ids, EncodedContext(segments, [], states, mask))

    def compress(
        self,
        context: str | EncodedContext,
        question: str,
        keep_ratio: float | None = None,
        target_tokens: int | None = None,
        selector: str = "ram",
        skim: bool = True,
        scores: torch.Tensor | None = None,
        seed: int = 0,
    ) -> Compressed:
        """Compress ``context`` (text, or an :meth:`encode_context` result) for ``question``.

        Args:
            keep_ratio: share of segments read verbatim (default ``config.keep_ratio``; 0 = skim only).
            target_tokens: instead of ``keep_ratio``, the largest hybrid length allowed.
            selector: ``ram`` (encoder relevance), or a baseline: ``first`` / ``last`` (truncation),
                ``random``, ``scores`` (caller-given relevance, e.g. MiniLM similarities).
            skim: RAM turns unread segments into vectors; ``False`` drops them (close reading only).
        """
        if selector not in SELECTORS:
            raise LongloreError(f"unknown selector '{selector}'; choose one of {', '.join(SELECTORS)}")
        needs_encoder = skim or selector == "ram"
        encoded = context if isinstance(context, EncodedContext) else self.encode_context(context, needs_encoder)
        segments, n = encoded.segments, len(encoded.segments)
        ram_scores = skim_vectors = None
        if needs_encoder:
            if encoded.states is None:
                encoded = EncodedContext(segments, encoded.texts, *self._encode_batch(segments))
            ram_scores, skim_vectors = self.relevance(question, encoded)
        if target_tokens is not None:
            fixed = n if skim else 0
            per_segment = self.config.segment_tokens - (1 if skim else 0)
            k = max(0, min(n, (target_tokens - fixed) // max(1, per_segment)))
        else:
            k = keep_count(n, self.config.keep_ratio if keep_ratio is None else keep_ratio)
        if selector == "ram":
            order = ram_scores
        elif selector == "scores":
            if scores is None or len(scores) != n:
                raise LongloreError(f"selector 'scores' needs {n} scores, one per segment")
            order = torch.as_tensor(scores, dtype=torch.float)
        elif selector == "first":
            order = -torch.arange(n, dtype=torch.float)
        elif selector == "last":
            order = torch.arange(n, dtype=torch.float)
        else:
            order = torch.rand(n, generator=torch.Generator().manual_seed(seed))
        kept = sorted(order.topk(k).indices.tolist()) if k else []  # the k MOST relevant, in text order
        embed = self.decoder.get_input_embeddings()
        kept_set, pieces = set(kept), []
        for i, seg in enumerate(segments):
            if i in kept_set:
                pieces.append(embed(torch.tensor(seg, device=self.device)))  # (len_i, H_d) verbatim
            elif skim:
                pieces.append(skim_vectors[i : i + 1])  # (1, H_d) one summary vector
        hybrid = torch.cat(pieces) if pieces else embed.weight[:0]
        return Compressed(hybrid, kept, order, encoded.original_tokens, encoded.texts)

    # --- decoder --------------------------------------------------------------------------
    def question_ids(self, question: str) -> list[int]:
        """Token ids of the text after the hybrid: ``config.question_template`` with the question."""
        text = self.config.question_template.format(question=question)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def answer_ids(self, answer: str) -> list[int]:
        """Training target: `` answer`` + EOS."""
        return self.tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"] + [
            self.tokenizer.eos_token_id
        ]

    def prompt_embeddings(
        self, compressed: Compressed, question: str, answer_ids: list[int] | None = None
    ) -> torch.Tensor:
        """(M + T, H_d): the hybrid, then the question template (then the answer when training)."""
        ids = self.question_ids(question) + list(answer_ids or [])
        embedded = self.decoder.get_input_embeddings()(torch.tensor(ids, device=self.device))
        return torch.cat([compressed.embeddings, embedded])

    def selector_loss(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """InfoNCE only (the encoder alone runs): the selector stage's loss, averaged over the
        examples with a positive segment. Examples that share a context encode it once."""
        encoded: dict[str, EncodedContext] = {}
        losses = []
        for example in examples:
            if example["context"] not in encoded:
                encoded[example["context"]] = self.encode_context(example["context"])
            context = encoded[example["context"]]
            positives = positive_segments(context.texts, example)
            if positives.any():
                scores, _ = self.relevance(example["question"], context)
                losses.append(multi_positive_infonce(scores, positives.to(scores.device), self.config.temperature))
        infonce = torch.stack(losses).mean() if losses else self.projector.weight.new_zeros((), requires_grad=True)
        return {"loss": infonce, "infonce": infonce.detach()}

    def forward(self, examples: list[dict[str, Any]], keep_ratio: float | None = None) -> dict[str, torch.Tensor]:
        """Training loss for a batch of ``{context, question, answer, positive_spans?}`` dicts.

        Returns ``loss`` = NLL(answer) + contrastive_weight * InfoNCE (mean over samples with a
        positive segment), both parts, and the achieved keep ratio (mean over the batch).
        """
        sequences, targets, infonce, kept_share = [], [], [], []
        for example in examples:
            compressed = self.compress(example["context"], example["question"], keep_ratio=keep_ratio)
            answer_ids = self.answer_ids(example["answer"])
            sequences.append(self.prompt_embeddings(compressed, example["question"], answer_ids))
            targets.append(answer_ids)
            kept_share.append(compressed.keep_ratio)
            positives = positive_segments(compressed.segment_texts, example)
            if positives.any():
                infonce.append(
                    multi_positive_infonce(
                        compressed.scores, positives.to(compressed.scores.device), self.config.temperature
                    )
                )
        embeds, mask, positions = left_pad(sequences)
        logits = self.decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits
        width, nll = logits.shape[1], []
        for row, answer_ids in enumerate(targets):
            # left padding: the answer is the last len(answer) positions; position t predicts token t+1
            pred = logits[row, width - len(answer_ids) - 1 : width - 1]  # (n_answer, V)
            nll.append(F.cross_entropy(pred.float(), torch.tensor(answer_ids, device=pred.device)))
        nll_loss = torch.stack(nll).mean()
        contrastive = torch.stack(infonce).mean() if infonce else nll_loss.new_zeros(())
        return {
            "loss": nll_loss + self.config.contrastive_weight * contrastive,
            "nll": nll_loss.detach(),
            "infonce": contrastive.detach(),
            "keep_ratio": torch.tensor(sum(kept_share) / len(kept_share)),
        }

    @torch.no_grad()
    def generate_from_embeddings(
        self, sequences: list[torch.Tensor], max_new_tokens: int = 32, stop: str = "\n", ignore_eos: bool = False
    ) -> list[str]:
        """Greedy decoding from left-padded prompt embeddings with a KV cache (see ``greedy_decode``)."""
        return greedy_decode(self.decoder, self.tokenizer, sequences, max_new_tokens, stop, ignore_eos)

    @torch.no_grad()
    def generate(
        self,
        contexts: list[str],
        questions: list[str],
        keep_ratio: float | None = None,
        max_new_tokens: int = 32,
        **compress_kwargs: Any,
    ) -> list[str]:
        """Answer each question over its (compressed) context; batched decoding."""
        sequences = []
        for context, question in zip(contexts, questions):
            compressed = self.compress(context, question, keep_ratio=keep_ratio, **compress_kwargs)
            sequences.append(self.prompt_embeddings(compressed, question))
        return self.generate_from_embeddings(sequences, max_new_tokens=max_new_tokens)

    def answer(self, context: str, question: str, **kwargs: Any) -> str:
        """Answer one question over one long context."""
        return self.generate([context], [question], **kwargs)[0]

    @torch.no_grad()
    def generate_full_context(self, contexts: list[str], questions: list[str], max_new_tokens: int = 32) -> list[str]:
        """The uncompressed baseline: the same (adapted) decoder over the whole context and prompt."""
        embed = self.decoder.get_input_embeddings()
        sequences = []
        for context, question in zip(contexts, questions):
            ids = self.tokenizer(context, add_special_tokens=False)["input_ids"][: self.config.max_doc_tokens]
            sequences.append(embed(torch.tensor(ids + self.question_ids(question), device=self.device)))
        return self.generate_from_embeddings(sequences, max_new_tokens=max_new_tokens)

    @torch.no_grad()
    def generate_shared_prefix(
        self, prefix: torch.Tensor, questions: list[str], max_new_tokens: int = 32, stop: str = "\n"
    ) -> list[str]:
        """Answer several questions after one shared prefix (M, H_d), prefilled once.

        For question-independent inputs (the whole context, truncation baselines): the prefix's KV
        cache is computed once and cropped back after each question.
        """
        out = self.decoder(inputs_embeds=prefix[None], use_cache=True, logits_to_keep=1)
        cache, answers = cache_of(out), []
        embed = self.decoder.get_input_embeddings()
        for question in questions:
            suffix = embed(torch.tensor(self.question_ids(question), device=self.device))[None]
            answers.append(
                greedy_decode(
                    self.decoder, self.tokenizer, [suffix[0]], max_new_tokens, stop, cache=cache, past=prefix.shape[0]
                )[0]
            )
            extra = cache.get_seq_length() - prefix.shape[0]
            if extra > 0:
                cache.crop(-extra)  # a negative count removes that many positions (transformers 4.x and 5.x)
        return answers

    # --- persistence (core.saving: ram_config.json + ram_model.safetensors) -------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """What RAM trains, by name: encoder (all of it, or its LoRA adapters), projector, and the
        decoder's q/k/v clones or their LoRA adapters. Nothing of the frozen backbone."""
        state = {f"encoder.{k}": v for k, v in trainable_state(self.encoder).items()}
        state.update({f"projector.{k}": v for k, v in self.projector.named_parameters()})
        state.update({f"decoder.{k}": v for k, v in trainable_state(self.decoder).items()})
        return state

    def pretrained_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.trainable_state().items()}

    def save_pretrained(self, path: str | Path, overwrite: bool = True, dtype: torch.dtype | None = None) -> Path:
        """Write ``ram_config.json`` + ``ram_model.safetensors`` (RAM's own tensors only), atomically.

        ``dtype`` (e.g. ``torch.bfloat16``) stores the tensors in that dtype: a file half the size;
        loading casts them back to the model's dtype."""
        tensors = {k: v.to(dtype or v.dtype) for k, v in self.pretrained_state().items()}
        return save_pretrained_folder(
            path,
            kind=self.pretrained_kind,
            version=self.pretrained_version,
            config=self.config.to_dict(),
            tensors=tensors,
            extra={"class": type(self).__name__},
            overwrite=overwrite,
        )

    @classmethod
    def from_pretrained(cls, base_model: Any, tokenizer: Any, path: str | Path) -> RAMModel:
        """Build RAM around the caller's ``base_model`` (left unmodified) and load its saved state.

        ``path`` is a folder written by :meth:`save_pretrained`, or a run folder holding ``final/``.
        Folders written before the versioned layout (a bare config dict) still load.
        """
        folder = find_model_folder(path, CONFIG_FILE, what="RAM model")
        meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        if "format_version" in meta:
            return super().from_pretrained(base_model, tokenizer, folder)
        from safetensors.torch import load_file

        model = cls(base_model, tokenizer, RAMConfig.from_dict(meta))
        load_state_checked(model, load_file(str(folder / WEIGHTS_FILE)), folder / WEIGHTS_FILE)
        return model.eval()

    def load_trainable_state(self, state: dict[str, torch.Tensor], where: str = "state") -> None:
        """Copy a :meth:`trainable_state` dict into this model (every tensor, matching shapes)."""
        missing = sorted(set(self.trainable_state()) - set(state))
        if missing:
            raise LongloreError(f"{where}: lacks {missing[:3]}; was it saved with another RAM configuration?")
        load_state_checked(self, state, where)


def positive_segments(segment_texts: list[str], example: dict[str, Any]) -> torch.Tensor:
    """Segments holding the answer evidence: those overlapping a ``positive_spans`` string, else
    those containing an answer string (case-insensitive)."""
    spans = example.get("positive_spans") or []
    joined, starts, cursor = "", [], 0
    for text in segment_texts:
        starts.append(cursor)
        joined += text
        cursor += len(text)
    flags = torch.zeros(len(segment_texts), dtype=torch.bool)
    needles = [s for s in spans if s] or [
        a for a in ([example.get("answer")] + list(example.get("answers") or [])) if a
    ]
    lowered = joined.lower()
    for needle in needles:
        start = lowered.find(needle.lower())
        while start >= 0:
            end = start + len(needle)
            for i, seg_start in enumerate(starts):
                seg_end = seg_start + len(segment_texts[i])
                if seg_start < end and start < seg_end:
                    flags[i] = True
            start = lowered.find(needle.lower(), start + 1)
    return flags


def sample_keep_ratio(rng: random.Random, low: float = 0.0, high: float = 1.0) -> float:
    """A keep ratio drawn uniformly from (low, high] (the paper's sampled-ratio training is (0, 1])."""
    return high - (high - low) * rng.random()


__all__ = [
    "Compressed",
    "EncodedContext",
    "RAMModel",
    "cache_kwarg",
    "keep_count",
    "positive_segments",
    "sample_keep_ratio",
    "truncated_encoder",
]
