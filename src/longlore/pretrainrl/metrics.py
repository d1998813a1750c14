"""The model's probabilistic state over a fact set.

Per fact, every answer in its candidate set plus its mined negatives is scored as the summed
log-prob of ``" " + answer`` after the prompt. Then:

* ``p_truth``      — total probability of the true objects, sum_o exp(log p(o | x));
* ``rank``         — 1 + number of falsehoods scoring above the best true object;
* ``hit1``/``hit5`` — rank <= 1 / <= 5;
* ``max_p_false``  — the highest probability of any falsehood (candidate or mined);
* ``margin``       — p_truth - max_p_false;
* ``low_truth``    — p_truth < ``low_truth`` threshold; ``high_false`` — max_p_false > ``high_false``.

:func:`summarize` averages these per frequency bucket (head / torso / tail / all).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from longlore.pretrainrl.facts import Fact
from longlore.pretrainrl.mining import Negatives
from longlore.pretrainrl.scoring import encode_pairs, pair_logprobs

BUCKETS = ("head", "torso", "tail")


@dataclass
class FactState:
    """One fact's probabilistic state."""

    fact_id: str
    bucket: str
    p_truth: float
    rank: int
    n_candidates: int
    max_p_false: float
    best_false: str
    margin: float
    hit1: bool
    hit5: bool
    low_truth: bool
    high_false: bool


def fact_state(fact: Fact, scores: dict[str, float], low_truth: float = 0.1, high_false: float = 0.3) -> FactState:
    """State of one fact from ``scores`` (answer -> summed log-prob); true answers are the fact's truths."""
    truths = [t for t in fact.truths if t in scores]
    falses = {a: s for a, s in scores.items() if a not in fact.truths}
    best_true = max(scores[t] for t in truths)
    p_truth = sum(math.exp(scores[t]) for t in truths)
    rank = 1 + sum(s > best_true for s in falses.values())
    best_false = max(falses, key=falses.get) if falses else ""
    max_p_false = math.exp(falses[best_false]) if falses else 0.0
    return FactState(
        fact.id,
        fact.bucket,
        p_truth,
        rank,
        len(scores),
        max_p_false,
        best_false,
        p_truth - max_p_false,
        rank <= 1,
        rank <= 5,
        p_truth < low_truth,
        max_p_false > high_false,
    )


def answer_sets(facts: Sequence[Fact], negatives: dict[str, Negatives] | None = None) -> list[list[str]]:
    """Per fact: its truths, candidates and mined negatives, deduplicated (truths first)."""
    negatives = negatives or {}
    out = []
    for fact in facts:
        mined = negatives[fact.id].negatives if fact.id in negatives else []
        out.append(list(dict.fromkeys([*fact.truths, *fact.candidates, *mined])))
    return out


def evaluate_facts(
    model: Any,
    tokenizer: Any,
    facts: Sequence[Fact],
    negatives: dict[str, Negatives] | None = None,
    *,
    prompt_field: str = "prompt",
    low_truth: float = 0.1,
    high_false: float = 0.3,
    batch_size: int = 64,
) -> list[FactState]:
    """Score every fact's answers with ``model`` and return their states.

    ``prompt_field='question'`` scores the question form instead of the cloze (facts without a
    question are skipped).
    """
    facts = [f for f in facts if getattr(f, prompt_field)]
    answers = answer_sets(facts, negatives)
    prompts = [getattr(f, prompt_field) for f, ans in zip(facts, answers) for _ in ans]
    conts = [f.continuation(a) for f, ans in zip(facts, answers) for a in ans]
    flat = iter(pair_logprobs(model, encode_pairs(tokenizer, prompts, conts), tokenizer.pad_token_id, batch_size))
    return [fact_state(f, {a: next(flat) for a in ans}, low_truth, high_false) for f, ans in zip(facts, answers)]


def paraphrase_facts(facts: Sequence[Fact]) -> list[Fact]:
    """One fact per (fact, held-out paraphrase): the paraphrase becomes the prompt, id ``<id>~<k>``.

    Score them with :func:`evaluate_facts` (negatives mined on these prompts, e.g. after training,
    with :func:`longlore.pretrainrl.mining.mine_negatives`) to measure transfer to prompts that no
    fact objective trained on."""
    return [
        fact.model_copy(update={"id": f"{fact.id}~{k}", "prompt": text, "question": None, "paraphrases": []})
        for fact in facts
        for k, text in enumerate(fact.paraphrases)
    ]


def summarize(states: Sequence[FactState]) -> dict[str, dict[str, float]]:
    """Per bucket (plus 'all'): mean hit1/hit5/p_truth/rank/margin/max_p_false and the two counts."""
    groups: dict[str, list[FactState]] = {"all": list(states)}
    for state in states:
        if state.bucket != "all":  # a fact set without frequency buckets is only 'all', counted once
            groups.setdefault(state.bucket, []).append(state)
    out = {}
    for name, group in groups.items():
        if not group:
            continue
        rows = [asdict(s) for s in group]
        out[name] = {
            "n": len(group),
            **{
                k: float(np.mean([r[k] for r in rows]))
                for k in ("hit1", "hit5", "p_truth", "rank", "margin", "max_p_false")
            },
            "low_truth_count": int(sum(r["low_truth"] for r in rows)),
            "high_false_count": int(sum(r["high_false"] for r in rows)),
        }
    return out
