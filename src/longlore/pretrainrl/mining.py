"""Negative mining: each fact prompt's own high-probability wrong continuations.

For every prompt the model generates continuations (batched beam search, or sampling); each is cut
at its first punctuation mark or newline (the answer span), deduplicated after normalisation, and
dropped if it names *any* true object of that subject-relation (:func:`facts.is_true`), so an
alternative truth is never a negative. ``candidates`` mining instead ranks the fact's closed answer
set by log-prob (exact top-k for closed-vocabulary relations). Reference-model log-probs of the
truth and of every negative are computed once here, because the reference is frozen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from longlore.core.io import read_jsonl, write_jsonl
from longlore.core.metrics import normalize_answer
from longlore.core.progress import track
from longlore.pretrainrl.config import PretrainRLConfig
from longlore.pretrainrl.facts import Fact, is_true
from longlore.pretrainrl.scoring import encode_pairs, pair_logprobs

_SPAN_END = re.compile(r"[.,;:!?\n]")


class Negatives(BaseModel):
    """Mined falsehoods of one fact, with the frozen reference's log-probs (truth first)."""

    fact_id: str
    negatives: list[str]
    ref_truth_logp: float | None = None
    ref_neg_logps: list[float] = []


def answer_span(text: str) -> str:
    """The answer part of a generated continuation: up to the first punctuation mark or newline."""
    return _SPAN_END.split(text.strip(), maxsplit=1)[0].strip()


def filter_negatives(generated: Sequence[str], fact: Fact, k: int) -> list[str]:
    """Up to ``k`` distinct answer spans from ``generated`` (in order) that name no true object."""
    kept: list[str] = []
    seen: set[str] = set()
    for text in generated:
        span = answer_span(text)
        key = normalize_answer(span)
        if not key or key in seen or is_true(span, fact.truths):
            continue
        seen.add(key)
        kept.append(span)
        if len(kept) == k:
            break
    return kept


@torch.no_grad()
def _generate(model: Any, tokenizer: Any, prompts: list[str], cfg: PretrainRLConfig, seed: int) -> list[list[str]]:
    width = 2 * cfg.num_negatives + 1  # room for truths and duplicates that get filtered out
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation appends on the right
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = old_side
    batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items()}
    kwargs: dict[str, Any] = dict(
        max_new_tokens=cfg.mine_max_new_tokens,
        num_return_sequences=width,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if cfg.mine_method == "beam":
        kwargs.update(num_beams=width, do_sample=False, early_stopping=True)
    else:
        torch.manual_seed(seed)
        kwargs.update(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
    out = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(out, skip_special_tokens=True)
    return [texts[i * width : (i + 1) * width] for i in range(len(prompts))]


def _rank_candidates(model: Any, tokenizer: Any, facts: Sequence[Fact], cfg: PretrainRLConfig) -> list[list[str]]:
    prompts, conts, owner = [], [], []
    for i, fact in enumerate(facts):
        for cand in fact.candidates:
            prompts.append(fact.prompt)
            conts.append(fact.continuation(cand))
            owner.append(i)
    scores = pair_logprobs(model, encode_pairs(tokenizer, prompts, conts), tokenizer.pad_token_id, cfg.eval_batch_size)
    ranked: list[list[tuple[float, str]]] = [[] for _ in facts]
    for i, cont, score in zip(owner, conts, scores):
        ranked[i].append((score, cont.strip()))
    return [[c for _, c in sorted(r, key=lambda t: -t[0])] for r in ranked]


def mine_negatives(
    model: Any,
    tokenizer: Any,
    facts: Sequence[Fact],
    cfg: PretrainRLConfig,
    ref_model: Any | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Negatives]:
    """Mine up to ``cfg.num_negatives`` falsehoods per fact; reference log-probs from ``ref_model``
    (default: ``model`` itself, i.e. the reference is the model as it is now)."""
    was_training = model.training
    model.eval()
    try:
        if cfg.mine_method == "candidates":
            generated = _rank_candidates(model, tokenizer, facts, cfg)
        else:
            generated = []
            starts = range(0, len(facts), cfg.mine_batch_size)
            for start in track(starts, "mining negatives") if progress and len(starts) > 1 else starts:
                chunk = facts[start : start + cfg.mine_batch_size]
                generated.extend(_generate(model, tokenizer, [f.prompt for f in chunk], cfg, seed + start))
    finally:
        model.train(was_training)
    mined = {f.id: filter_negatives(g, f, cfg.num_negatives) for f, g in zip(facts, generated)}
    return attach_reference(ref_model if ref_model is not None else model, tokenizer, facts, mined, cfg)


def attach_reference(
    ref_model: Any, tokenizer: Any, facts: Sequence[Fact], mined: dict[str, list[str]], cfg: PretrainRLConfig
) -> dict[str, Negatives]:
    """Score each fact's truth and negatives under the (frozen) reference model."""
    prompts, conts = [], []
    for fact in facts:
        for value in [fact.object, *mined.get(fact.id, [])]:
            prompts.append(fact.prompt)
            conts.append(fact.continuation(value))
    scores = iter(
        pair_logprobs(ref_model, encode_pairs(tokenizer, prompts, conts), tokenizer.pad_token_id, cfg.eval_batch_size)
    )
    out = {}
    for fact in facts:
        truth = next(scores)
        negs = mined.get(fact.id, [])
        out[fact.id] = Negatives(
            fact_id=fact.id, negatives=negs, ref_truth_logp=truth, ref_neg_logps=[next(scores) for _ in negs]
        )
    return out


def save_negatives(path: str | Path, negatives: dict[str, Negatives], overwrite: bool = False) -> Path:
    """Cache mined negatives as JSONL."""
    return write_jsonl(path, list(negatives.values()), overwrite=overwrite)


def load_negatives(path: str | Path) -> dict[str, Negatives]:
    """Read a negatives cache written by :func:`save_negatives`."""
    return {n.fact_id: n for n in read_jsonl(path, Negatives)}
