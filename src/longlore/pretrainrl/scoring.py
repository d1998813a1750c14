"""Log-probabilities of continuations, corpus blocks and perplexity for any causal LM.

Notation: N pairs, T padded sequence length, V vocabulary. A (prompt, continuation) pair is
tokenised the lm-evaluation-harness way: prompt and continuation are encoded separately and
concatenated, so a candidate's tokens do not depend on the prompt. Sequences are right-padded; only
continuation positions are scored. The same function serves evaluation (under ``no_grad``) and the
training losses (with gradients).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from longlore.core.errors import LongloreError

Pair = tuple[list[int], list[int]]  # (prompt ids, continuation ids)


def encode_pairs(tokenizer: Any, prompts: Sequence[str], continuations: Sequence[str]) -> list[Pair]:
    """Token ids for each (prompt, continuation); no special tokens are added."""
    if len(prompts) != len(continuations):
        raise LongloreError(f"encode_pairs: {len(prompts)} prompts but {len(continuations)} continuations")
    if not prompts:
        return []
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    cont_ids = tokenizer(list(continuations), add_special_tokens=False)["input_ids"]
    for text, ids in zip(continuations, cont_ids):
        if not ids:
            raise LongloreError(f"continuation {text!r} encodes to no tokens; every answer must be non-empty")
    return list(zip(prompt_ids, cont_ids))


@dataclass
class PairScores:
    """Scores of N pairs: summed continuation log-prob, token count, and per-token detail.

    ``token_logp`` and ``mask`` are (N, L) with L the longest continuation; row i holds the
    log-probabilities of continuation i's tokens in order, masked beyond its length.
    """

    logp: torch.Tensor  # (N,)
    n_tokens: torch.Tensor  # (N,)
    token_logp: torch.Tensor  # (N, L)
    mask: torch.Tensor  # (N, L) bool


def _model_device(model: Any) -> torch.device:
    return next(model.parameters()).device


def score_pairs(model: Any, pairs: Sequence[Pair], pad_id: int) -> PairScores:
    """Continuation log-probs for one batch (gradients flow if enabled by the caller)."""
    device = _model_device(model)
    lengths = [len(p) + len(c) for p, c in pairs]
    T = max(lengths)
    L = max(len(c) for _, c in pairs)
    ids = torch.full((len(pairs), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(pairs), T), dtype=torch.long)
    # positions (in the shifted T-1 axis) of each continuation token, padded with 0 and masked
    pos = torch.zeros((len(pairs), L), dtype=torch.long)
    mask = torch.zeros((len(pairs), L), dtype=torch.bool)
    for i, (p, c) in enumerate(pairs):
        if not p:
            raise LongloreError("score_pairs: an empty prompt cannot condition a continuation")
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attn[i, : len(p) + len(c)] = 1
        pos[i, : len(c)] = torch.arange(len(p) - 1, len(p) - 1 + len(c))
        mask[i, : len(c)] = True
    ids, attn, pos, mask = ids.to(device), attn.to(device), pos.to(device), mask.to(device)
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]  # (N, T-1, V)
    # Gather only the continuation positions before the softmax: V can be 49k for a real model.
    picked = torch.gather(logits, 1, pos.unsqueeze(-1).expand(-1, -1, logits.size(-1)))  # (N, L, V)
    targets = torch.gather(ids[:, 1:], 1, pos)  # (N, L)
    token_logp = torch.gather(F.log_softmax(picked.float(), dim=-1), 2, targets.unsqueeze(-1)).squeeze(-1)
    token_logp = token_logp.masked_fill(~mask, 0.0)
    return PairScores(token_logp.sum(-1), mask.sum(-1), token_logp, mask)


@torch.no_grad()
def pair_logprobs(model: Any, pairs: Sequence[Pair], pad_id: int, batch_size: int = 64) -> list[float]:
    """Summed continuation log-probs of many pairs, batched, without gradients."""
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        # Sorting by length keeps padding (wasted compute) small; results go back in input order.
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        scores = [0.0] * len(pairs)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            logp = score_pairs(model, [pairs[i] for i in idx], pad_id).logp.tolist()
            for i, value in zip(idx, logp):
                scores[i] = value
        out = scores
    finally:
        model.train(was_training)
    return out


def make_blocks(tokenizer: Any, docs: Sequence[str], block_size: int) -> torch.Tensor:
    """Pack documents (separated by EOS) into non-overlapping (n_blocks, block_size) token blocks."""
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for ids in tokenizer(list(docs), add_special_tokens=False)["input_ids"]:
        stream.extend(ids + [eos])
    n = len(stream) // block_size
    if n == 0:
        raise LongloreError(
            f"the corpus has {len(stream)} tokens, fewer than one block of {block_size}; "
            "give more text or a smaller block_size"
        )
    return torch.tensor(stream[: n * block_size], dtype=torch.long).view(n, block_size)


def ntp_loss(model: Any, blocks: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over (B, T) token blocks."""
    blocks = blocks.to(_model_device(model))
    logits = model(input_ids=blocks).logits[:, :-1]  # (B, T-1, V)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), blocks[:, 1:].reshape(-1))


@torch.no_grad()
def perplexity(model: Any, blocks: torch.Tensor, batch_size: int = 16) -> float:
    """exp(mean next-token NLL) over token blocks (every block counts equally: same length)."""
    was_training = model.training
    model.eval()
    try:
        total = 0.0
        for start in range(0, len(blocks), batch_size):
            chunk = blocks[start : start + batch_size]
            total += ntp_loss(model, chunk).item() * len(chunk)
    finally:
        model.train(was_training)
    return math.exp(total / len(blocks))
