"""Greedy decoding from prompt embeddings (RAM's hybrid inputs are embeddings, not token ids)."""

from __future__ import annotations

import inspect
from typing import Any

import torch


def cache_kwarg(decoder: Any) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache``; accept both generations."""
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"


def cache_of(output: Any) -> Any:
    return output.get("cache", output.past_key_values)


def left_pad(sequences: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack (T_i, H) sequences into (B, T, H) with left padding; returns embeds, mask, position ids."""
    width = max(s.shape[0] for s in sequences)
    dim, device = sequences[0].shape[1], sequences[0].device
    embeds = torch.stack([torch.cat([s.new_zeros(width - s.shape[0], dim), s]) for s in sequences])  # (B, T, H)
    mask = torch.stack(
        [
            torch.cat(
                [
                    torch.zeros(width - s.shape[0], dtype=torch.long, device=device),
                    torch.ones(s.shape[0], dtype=torch.long, device=device),
                ]
            )
            for s in sequences
        ]
    )
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return embeds, mask, positions


def clean_answer(text: str, stop: str) -> str:
    """The answer line: leading blank lines are skipped before the stop string cuts the text (a
    reply that starts with a newline is not an empty answer)."""
    text = text.strip()
    return text.split(stop)[0].strip() if stop else text


@torch.no_grad()
def greedy_decode(
    decoder: Any,
    tokenizer: Any,
    sequences: list[torch.Tensor],
    max_new_tokens: int = 32,
    stop: str = "\n",
    ignore_eos: bool = False,
    cache: Any = None,
    past: int = 0,
) -> list[str]:
    """Greedy decoding with a KV cache from left-padded prompt embeddings.

    ``cache`` / ``past``: continue after a prefix already in ``cache`` (``past`` positions; batch
    of one). ``ignore_eos`` always decodes ``max_new_tokens`` (for latency measurements). A row
    ends at EOS or, with ``stop``, at a non-empty line followed by ``stop``. EOS is not allowed
    before a row has produced visible text, and leading blank lines are skipped: a chat-tuned
    decoder that first emits a newline or its end-of-turn token used to give an empty answer.
    """
    embeds, mask, positions = left_pad(sequences)
    if cache is not None:
        mask = torch.cat([mask.new_ones(mask.shape[0], past), mask], dim=1)
        positions = positions + past
    kwargs = {cache_kwarg(decoder): cache} if cache is not None else {}
    # logits for the last position only: at 32K tokens full logits would take 6 GB
    out = decoder(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **kwargs
    )
    cache, tokens, eos = cache_of(out), [], tokenizer.eos_token_id
    has_text = torch.zeros(len(sequences), dtype=torch.bool, device=embeds.device)
    done = torch.zeros_like(has_text)

    def pick(logits: torch.Tensor) -> torch.Tensor:
        # an answer is never empty: EOS only counts once a row has produced visible text
        logits = logits.clone()
        if not ignore_eos and eos is not None:
            logits[~has_text, eos] = float("-inf")
        return logits.argmax(-1)  # (B,)

    next_ids = pick(out.logits[:, -1])
    for _ in range(max_new_tokens):
        tokens.append(next_ids)
        done |= next_ids == eos
        for row in range(len(sequences)):
            text = tokenizer.decode(torch.stack(tokens, 1)[row].tolist(), skip_special_tokens=True)
            has_text[row] = bool(text.strip())
            if stop and not ignore_eos:  # a finished answer line also ends the row
                done[row] |= stop in text.lstrip()
        if (done.all() and not ignore_eos) or len(tokens) == max_new_tokens:
            break
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        positions = positions[:, -1:] + 1
        out = decoder(
            input_ids=next_ids[:, None],
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{cache_kwarg(decoder): cache},
        )
        cache, next_ids = cache_of(out), pick(out.logits[:, -1])
    texts = []
    for row in torch.stack(tokens, dim=1).tolist():
        if eos in row and not ignore_eos:
            row = row[: row.index(eos)]
        texts.append(clean_answer(tokenizer.decode(row, skip_special_tokens=True), stop))
    return texts
