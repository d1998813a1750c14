"""Judges of LLM-stage outputs: a criteria-based LLM judge and a small trained judge.

The LLM judge asks, per output, whether it meets the stage's criteria and reads the answer from
log-likelihoods of " Yes" vs " No" (no free text to parse, so it cannot fail to answer). The
trained judge is a logistic regression on sentence embeddings (MiniLM) of "stage | context |
output", fit to a labelled buffer in which the minority class is oversampled to parity (the
paper's rebalanced data buffer). Labels come from a JSONL of human annotations; without one, the
demo derives proxy labels from held-out behaviour (documented where used).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel
from sklearn.linear_model import LogisticRegression

from longlore.core.backends import LoglikelihoodRequest
from longlore.core.errors import LongloreError
from longlore.core.io import read_jsonl

CRITERIA = {
    "interest": "Is this interest supported by the history, specific and not made up?",
    "tag": "Is this tag a specific 'modifier + core word' that fits the interest and would find items the user likes?",
    "explanation": "Is this explanation relevant to the item and the interest, factual, clear and safe?",
}


class Judgement(BaseModel):
    """One labelled output: the human-annotation JSONL schema (label 1 = good, 0 = bad)."""

    stage: Literal["interest", "tag", "explanation"]
    context: str
    output: str
    label: int | None = None


def load_annotations(path: str) -> list[Judgement]:
    """Human labels, one JSON object per line: ``{stage, context, output, label}``."""
    rows = read_jsonl(path, schema=Judgement)
    for line, row in enumerate(rows, start=1):
        if row.label not in (0, 1):
            raise LongloreError(f"{path}:{line}: field 'label' must be 0 or 1 for training, got {row.label}")
    return rows


def _judge_prompt(item: Judgement) -> str:
    return (
        f"Context: {item.context}\nOutput ({item.stage}): {item.output}\n"
        f"Question: {CRITERIA[item.stage]} Answer Yes or No."
    )


def llm_judge(model: Any, items: Sequence[Judgement]) -> np.ndarray:
    """P(Yes) for each item from the model's log-likelihood of " Yes" vs " No" after the question."""
    contexts = [model.format_chat(_judge_prompt(it)) for it in items]
    requests = [LoglikelihoodRequest(c, cont) for c in contexts for cont in ("Yes", "No")]
    scores = np.array([lp for lp, _ in model.loglikelihood(requests)]).reshape(len(items), 2)
    return 1.0 / (1.0 + np.exp(scores[:, 1] - scores[:, 0]))


def rebalance(labels: Sequence[int], seed: int = 0) -> list[int]:
    """Indices with the minority class oversampled (with replacement) up to the majority size."""
    counts = Counter(labels)
    if len(counts) < 2:
        raise LongloreError(f"the judge's buffer has only label(s) {sorted(counts)}; it needs both 0 and 1")
    rng = random.Random(seed)
    majority = max(counts.values())
    out = list(range(len(labels)))
    for label, count in counts.items():
        pool = [i for i, y in enumerate(labels) if y == label]
        out += [rng.choice(pool) for _ in range(majority - count)]
    return out


class TrainedJudge:
    """Logistic regression on frozen sentence embeddings, fit on a rebalanced buffer."""

    def __init__(self, embedder: Any, seed: int = 0) -> None:
        self.embedder, self.seed = embedder, seed
        self.clf = LogisticRegression(max_iter=2000, C=1.0)

    def _features(self, items: Sequence[Judgement]) -> np.ndarray:
        return np.asarray(self.embedder.embed([f"{it.stage} | {it.context} | {it.output}" for it in items]))

    def fit(self, items: Sequence[Judgement]) -> TrainedJudge:
        labels = [int(it.label) for it in items]  # type: ignore[arg-type]
        idx = rebalance(labels, self.seed)
        x = self._features(items)
        self.clf.fit(x[idx], np.asarray(labels)[idx])
        return self

    def predict_proba(self, items: Sequence[Judgement]) -> np.ndarray:
        return self.clf.predict_proba(self._features(items))[:, 1]


def judge_accuracy(probs: np.ndarray, labels: Sequence[int]) -> dict[str, float]:
    """Accuracy and balanced accuracy at 0.5 (balanced accuracy is fair on skewed labels)."""
    pred = (np.asarray(probs) >= 0.5).astype(int)
    y = np.asarray(labels)
    per_class = [float((pred[y == c] == c).mean()) for c in (0, 1) if (y == c).any()]
    return {
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "balanced_accuracy": float(np.mean(per_class)) if per_class else 0.0,
        "n": len(y),
    }
