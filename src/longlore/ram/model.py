"""RAM: read the query-relevant segments of a long context verbatim, skim the rest into vectors.

Shape legend: N segments of at most S tokens; H_e / H_d encoder / decoder hidden sizes;
M = length of the hybrid sequence (kept tokens + one vector per skimmed segment).

    context ──tokens──► N segments ─┐
    question ───────────────────────┴─► encoder (first k decoder layers, own copy), one batch,
                                        no cross-segment attention ─► states (1+N, S, H_e)
    relevance_i = cos(mean(q), mean(s_i))  ─► top-k segments kept as their token embeddings
    skim_i = Linear(sum_t softmax_t(cos(h_t, q)) h_t)  for every other segment (one vector)
    decoder input = [hybrid in original order] + "\nQuestion: q\nAnswer:" (+ answer when training)
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from longlore.core.errors import LongloreError
from longlore.core.models import mean_pool
from longlore.ram.config import RAMConfig
from longlore.ram.loss import multi_positive_infonce

SELECTORS = ("ram", "first", "last", "random", "scores")


def truncated_encoder(decoder: Any, n_layers: int) -> nn.Module:
    """A trainable copy of the decoder's base model cut to its first ``n_layers`` layers."""
    base = decoder.get_decoder() if hasattr(decoder, "get_decoder") else decoder.model
    if n_layers > len(base.layers):
        raise LongloreError(f"RAMConfig.encoder_layers={n_layers} but the decoder has {len(base.layers)} layers")
    encoder = copy.deepcopy(base)
    encoder.layers = nn.ModuleList(list(encoder.layers)[:n_layers])
    encoder.config = copy.deepcopy(base.config)
    encoder.config.num_hidden_layers = n_layers
    if getattr(encoder.config, "layer_types", None):
        encoder.config.layer_types = encoder.config.layer_types[:n_layers]
    return encoder


def _cache_kwarg(decoder: Any) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache``; accept both generations."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def _cache_of(output: Any) -> Any:
    return output.get("cache", output.past_key_values)


def keep_count(n_segments: int, ratio: float) -> int:
    """k = int(ratio * N) as in the official code, but at least one segment when ratio > 0."""
    if ratio <= 0 or n_segments == 0:
        return 0
    return min(n_segments, max(1, int(ratio * n_segments)))


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
    def ratio(self) -> float:
        """Achieved compression ratio: original tokens per hybrid position."""
        return self.original_tokens / max(1, self.compressed_length)

    @property
    def keep_ratio(self) -> float:
        return len(self.kept) / max(1, len(self.segment_texts))

    def close_read_text(self, separator: str = " ... ") -> str:
        """The verbatim segments as plain text (text-only mode: feed them to any LLM)."""
        return separator.join(self.segment_texts[i] for i in self.kept)

    def stats(self) -> dict[str, Any]:
        return {
            "original_tokens": self.original_tokens,
            "compressed_length": self.compressed_length,
            "ratio": round(self.ratio, 3),
            "keep_ratio": round(self.keep_ratio, 4),
            "n_segments": len(self.segment_texts),
            "kept_segments": self.kept,
        }


class RAMModel(nn.Module):
    """A RAM compressor (encoder + projector) in front of a decoder LLM, which it adapts in place
    (only the parameters named by ``config.decoder_trainable`` train)."""

    def __init__(self, decoder: Any, tokenizer: Any, config: RAMConfig | None = None) -> None:
        super().__init__()
        self.config = config or RAMConfig()
        self.decoder, self.tokenizer = decoder, tokenizer
        self.encoder = truncated_encoder(decoder, self.config.encoder_layers)
        enc_h, dec_h = self.encoder.config.hidden_size, decoder.config.hidden_size
        self.projector = nn.Linear(enc_h, dec_h)
        with torch.no_grad():  # start near the token-embedding scale: normed states have RMS ~ 1
            scale = decoder.get_input_embeddings().weight.std().item()
            self.projector.weight.copy_(torch.eye(dec_h, enc_h) * scale)
            self.projector.bias.zero_()
        for name, param in decoder.named_parameters():
            param.requires_grad = any(part in name for part in self.config.decoder_trainable)

    # --- encoding and selection -------------------------------------------------------------
    def segment(self, context: str) -> tuple[list[list[int]], list[str]]:
        """Cut the context into fixed token segments; returns ids and each segment's text."""
        ids = self.tokenizer(context, add_special_tokens=False)["input_ids"][: self.config.max_doc_tokens]
        size = self.config.segment_tokens
        segments = [ids[i : i + size] for i in range(0, len(ids), size)]
        return segments, [self.tokenizer.decode(s) for s in segments]

    def encode(
        self, query_ids: list[int], segments: list[list[int]], max_batch: int = 256
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode query and segments as independent sequences (no cross-segment attention).

        Returns ``scores`` (N,) = cos(mean(q), mean(s_i)) and ``skim`` (N, H_d): per segment the
        query-attention-weighted sum of its token states, projected into the decoder's space.
        """
        device = self.projector.weight.device
        seqs = [query_ids] + segments
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)  # right padding: causal
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        states = torch.cat(
            [
                self.encoder(input_ids=ids[i : i + max_batch], attention_mask=mask[i : i + max_batch]).last_hidden_state
                for i in range(0, len(seqs), max_batch)
            ]
        )  # (1+N, S, H_e)
        pooled = mean_pool(states, mask)  # (1+N, H_e)
        query, seg_states, seg_mask = pooled[0], states[1:], mask[1:].bool()
        scores = F.cosine_similarity(pooled[1:], query[None], dim=-1)  # (N,)
        token_sim = F.cosine_similarity(seg_states, query[None, None], dim=-1)  # (N, S)
        weights = token_sim.masked_fill(~seg_mask, float("-inf")).softmax(dim=-1)
        skim = torch.einsum("ns,nsh->nh", weights, seg_states)  # (N, H_e)
        return scores, self.projector(skim)

    def compress(
        self,
        context: str,
        question: str,
        rate: float | None = None,
        target_tokens: int | None = None,
        selector: str = "ram",
        skim: bool = True,
        scores: torch.Tensor | None = None,
        seed: int = 0,
    ) -> Compressed:
        """Compress ``context`` for ``question``.

        Args:
            rate: keep-ratio of segments read verbatim (default ``config.ratio``).
            target_tokens: instead of ``rate``, the largest hybrid length allowed.
            selector: ``ram`` (encoder relevance), or a baseline: ``first`` / ``last`` (truncation),
                ``random``, ``scores`` (caller-given relevance, e.g. MiniLM similarities).
            skim: RAM turns unread segments into vectors; ``False`` drops them (close reading only).
        """
        if selector not in SELECTORS:
            raise LongloreError(f"unknown selector '{selector}'; choose one of {', '.join(SELECTORS)}")
        if not context.strip():
            raise LongloreError("compress: empty context")
        segments, texts = self.segment(context)
        n = len(segments)
        query_ids = self.tokenizer(question, add_special_tokens=False)["input_ids"]
        ram_scores, skim_vectors = self.encode(query_ids, segments)
        if target_tokens is not None:
            fixed = n if skim else 0
            per_segment = self.config.segment_tokens - (1 if skim else 0)
            k = max(0, min(n, (target_tokens - fixed) // max(1, per_segment)))
        else:
            k = keep_count(n, self.config.ratio if rate is None else rate)
        if selector == "ram":
            order = ram_scores
        elif selector == "scores":
            if scores is None or len(scores) != n:
                raise LongloreError(f"selector 'scores' needs {n} scores, one per segment")
            order = scores
        elif selector == "first":
            order = -torch.arange(n, dtype=torch.float)
        elif selector == "last":
            order = torch.arange(n, dtype=torch.float)
        else:
            order = torch.rand(n, generator=torch.Generator().manual_seed(seed))
        kept = sorted(order.topk(k).indices.tolist()) if k else []
        embed = self.decoder.get_input_embeddings()
        kept_set, pieces = set(kept), []
        for i, seg in enumerate(segments):
            if i in kept_set:
                pieces.append(embed(torch.tensor(seg, device=skim_vectors.device)))  # (len_i, H_d) verbatim
            elif skim:
                pieces.append(skim_vectors[i : i + 1])  # (1, H_d) one summary vector
        hybrid = torch.cat(pieces) if pieces else skim_vectors[:0]
        return Compressed(
            hybrid, kept, order if selector != "ram" else ram_scores, sum(len(s) for s in segments), texts
        )

    # --- decoder --------------------------------------------------------------------------
    def _prompt_embeddings(
        self, compressed: Compressed, question: str, answer_ids: list[int] | None
    ) -> tuple[torch.Tensor, int]:
        suffix = self.tokenizer(self.config.question_template.format(question=question), add_special_tokens=False)[
            "input_ids"
        ]
        ids = suffix + (answer_ids or [])
        embedded = self.decoder.get_input_embeddings()(torch.tensor(ids, device=compressed.embeddings.device))
        return torch.cat([compressed.embeddings, embedded]), len(ids) - len(answer_ids or [])

    @staticmethod
    def _left_pad(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(s.shape[0] for s in sequences)
        dim = sequences[0].shape[1]
        embeds = torch.stack([torch.cat([s.new_zeros(width - s.shape[0], dim), s]) for s in sequences])  # (B, T, H_d)
        mask = torch.stack(
            [
                torch.cat([torch.zeros(width - s.shape[0], dtype=torch.long), torch.ones(s.shape[0], dtype=torch.long)])
                for s in sequences
            ]
        ).to(embeds.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return embeds, mask, positions

    def forward(self, examples: list[dict[str, Any]], ratio: float | None = None) -> dict[str, torch.Tensor]:
        """Training loss for a batch of ``{context, question, answer, positive_spans?}`` dicts.

        Returns ``loss`` = NLL(answer) + contrastive_weight * InfoNCE (mean over samples with a
        positive segment), and both parts.
        """
        sequences, answer_lengths, infonce = [], [], []
        eos = self.tokenizer.eos_token_id
        for example in examples:
            compressed = self.compress(example["context"], example["question"], rate=ratio)
            answer_ids = self.tokenizer(" " + example["answer"].strip(), add_special_tokens=False)["input_ids"] + [eos]
            embeds, _ = self._prompt_embeddings(compressed, example["question"], answer_ids)
            sequences.append(embeds)
            answer_lengths.append(len(answer_ids))
            positives = positive_segments(compressed.segment_texts, example)
            if positives.any():
                infonce.append(
                    multi_positive_infonce(
                        compressed.scores, positives.to(compressed.scores.device), self.config.temperature
                    )
                )
        embeds, mask, positions = self._left_pad(sequences)
        logits = self.decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits
        nll = []
        for row, (_seq, n_answer) in enumerate(zip(sequences, answer_lengths)):
            width = logits.shape[1]
            targets = self.tokenizer(" " + examples[row]["answer"].strip(), add_special_tokens=False)["input_ids"] + [
                eos
            ]
            pred = logits[row, width - n_answer - 1 : width - 1]  # (n_answer, V): position t predicts t+1
            nll.append(F.cross_entropy(pred.float(), torch.tensor(targets, device=pred.device)))
        nll_loss = torch.stack(nll).mean()
        contrastive = torch.stack(infonce).mean() if infonce else nll_loss.new_zeros(())
        return {
            "loss": nll_loss + self.config.contrastive_weight * contrastive,
            "nll": nll_loss,
            "infonce": contrastive,
        }

    @torch.no_grad()
    def generate_from_embeddings(
        self, sequences: list[torch.Tensor], max_new_tokens: int = 32, stop: str = "\n", ignore_eos: bool = False
    ) -> list[str]:
        """Greedy decoding from left-padded prompt embeddings with a KV cache.

        ``ignore_eos`` always decodes ``max_new_tokens`` (for latency measurements).
        """
        embeds, mask, positions = self._left_pad(sequences)
        # logits for the last position only: at 32K tokens full logits would take 6 GB
        out = self.decoder(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
        )
        cache, tokens = _cache_of(out), []
        next_ids = out.logits[:, -1].argmax(-1)  # (B,)
        done = torch.zeros_like(next_ids, dtype=torch.bool)
        for _ in range(max_new_tokens):
            tokens.append(next_ids)
            done |= next_ids == self.tokenizer.eos_token_id
            if (done.all() and not ignore_eos) or len(tokens) == max_new_tokens:
                break
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            positions = positions[:, -1:] + 1
            out = self.decoder(
                input_ids=next_ids[:, None],
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{_cache_kwarg(self.decoder): cache},
            )
            cache, next_ids = _cache_of(out), out.logits[:, -1].argmax(-1)
        generated = torch.stack(tokens, dim=1).tolist()
        texts = []
        for row in generated:
            if self.tokenizer.eos_token_id in row and not ignore_eos:
                row = row[: row.index(self.tokenizer.eos_token_id)]
            text = self.tokenizer.decode(row, skip_special_tokens=True).strip()
            texts.append(text.split(stop)[0].strip() if stop else text)
        return texts

    @torch.no_grad()
    def generate(
        self,
        contexts: list[str],
        questions: list[str],
        rate: float | None = None,
        max_new_tokens: int = 32,
        **compress_kwargs: Any,
    ) -> list[str]:
        """Answer each question over its (compressed) context; batched decoding."""
        sequences = []
        for context, question in zip(contexts, questions):
            compressed = self.compress(context, question, rate=rate, **compress_kwargs)
            sequences.append(self._prompt_embeddings(compressed, question, None)[0])
        return self.generate_from_embeddings(sequences, max_new_tokens=max_new_tokens)

    def answer(self, context: str, question: str, **kwargs: Any) -> str:
        """Answer one question over one long context."""
        return self.generate([context], [question], **kwargs)[0]

    @torch.no_grad()
    def generate_full_context(self, contexts: list[str], questions: list[str], max_new_tokens: int = 32) -> list[str]:
        """The uncompressed baseline: the same decoder over the whole context and prompt."""
        embed = self.decoder.get_input_embeddings()
        sequences = []
        for context, question in zip(contexts, questions):
            ids = self.tokenizer(context, add_special_tokens=False)["input_ids"][: self.config.max_doc_tokens]
            ids += self.tokenizer(self.config.question_template.format(question=question), add_special_tokens=False)[
                "input_ids"
            ]
            sequences.append(embed(torch.tensor(ids, device=embed.weight.device)))
        return self.generate_from_embeddings(sequences, max_new_tokens=max_new_tokens)

    # --- persistence ------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Encoder, projector and the decoder parameters RAM trains (nothing else)."""
        state = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
        state.update({f"projector.{k}": v for k, v in self.projector.state_dict().items()})
        state.update(
            {
                f"decoder.{n}": p.detach()
                for n, p in self.decoder.named_parameters()
                if any(part in n for part in self.config.decoder_trainable)
            }
        )
        return state

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``ram_config.json`` + ``ram_model.safetensors`` (RAM's own state only)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.trainable_state().items()}
        # tied / shared tensors must not alias in safetensors
        save_file({k: v.clone() for k, v in state.items()}, str(path / "ram_model.safetensors"))
        (path / "ram_config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        return path

    @classmethod
    def from_pretrained(cls, decoder: Any, tokenizer: Any, path: str | Path) -> RAMModel:
        """Rebuild around a decoder the caller supplies, then load RAM's saved state."""
        from safetensors.torch import load_file

        path = Path(path)
        if not (path / "ram_config.json").exists():
            raise LongloreError(f"{path}: no ram_config.json; expected a folder written by RAMModel.save_pretrained")
        model = cls(decoder, tokenizer, RAMConfig.from_dict(json.loads((path / "ram_config.json").read_text())))
        state = load_file(str(path / "ram_model.safetensors"))
        model.encoder.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("encoder.")})
        model.projector.load_state_dict({k[10:]: v for k, v in state.items() if k.startswith("projector.")})
        decoder_params = dict(model.decoder.named_parameters())
        with torch.no_grad():
            for key, value in state.items():
                if key.startswith("decoder."):
                    decoder_params[key[8:]].copy_(value)
        return model


def positive_segments(segment_texts: list[str], example: dict[str, Any]) -> torch.Tensor:
    """Segments holding the answer evidence: those overlapping a ``positive_spans`` string, else
    those containing an answer string (normalised whitespace, case-insensitive)."""
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


def sample_ratio(rng: random.Random, low: float = 0.0, high: float = 1.0) -> float:
    """A keep-ratio drawn uniformly from (low, high] (the paper's sampled-ratio training is (0, 1])."""
    return high - (high - low) * rng.random()


__all__ = ["Compressed", "RAMModel", "keep_count", "positive_segments", "sample_ratio", "truncated_encoder"]
