"""Full-ranking evaluation of next-item recommendation (RecBole's protocol and metric names).

Every method produces a score for every item; items the user already interacted with (train, and
valid when testing) are masked; the rank of the held-out item gives Recall/HR, NDCG and MRR @K.
Beyond accuracy: item coverage, Gini of exposure, tail share, genre diversity of the top-K, and
RecGPT's category HR@30 (hit when the next item's category is among the tags' categories).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from longlore.recgpt.data import Dataset

CUTOFFS = (10, 20, 50)


def rank_of(scores: torch.Tensor, target: int, exclude: Sequence[int]) -> int:
    """1-based rank of ``target`` among items not excluded (ties count against the target)."""
    scores = scores.clone().float()
    if len(exclude):
        scores[torch.as_tensor(list(exclude), dtype=torch.long)] = float("-inf")
    return (
        int((scores > scores[target]).sum())
        + int((scores[torch.arange(len(scores)) != target] == scores[target]).sum())
        + 1
    )


def ranking_metrics(ranks: Sequence[int], cutoffs: Sequence[int] = CUTOFFS) -> dict[str, float]:
    """Recall@K (= HR@K with one held-out item), NDCG@K and MRR@K averaged over users."""
    out: dict[str, float] = {}
    n = max(len(ranks), 1)
    for k in cutoffs:
        hits = [r for r in ranks if r <= k]
        out[f"recall@{k}"] = len(hits) / n
        out[f"hr@{k}"] = len(hits) / n
        out[f"ndcg@{k}"] = sum(1.0 / math.log2(r + 1) for r in hits) / n
        out[f"mrr@{k}"] = sum(1.0 / r for r in hits) / n
    return out


def gini(counts: Sequence[float]) -> float:
    """Gini coefficient of exposure counts over all items (0 = equal, -> 1 = concentrated)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    if x.sum() == 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * x.sum()))


def tail_items(popularity: np.ndarray, head_share: float = 0.2) -> set[int]:
    """Items outside the ``head_share`` most-interacted items (RecBole-style head/tail split)."""
    order = np.argsort(-popularity, kind="stable")
    return set(order[round(head_share * len(order)) :].tolist())


def beyond_accuracy(
    top_lists: Sequence[Sequence[int]], n_items: int, tail: set[int], item_genres: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Coverage, Gini, tail share and mean number of distinct genres over users' top-K lists."""
    counts = np.zeros(n_items)
    for top in top_lists:
        counts[list(top)] += 1
    slots = max(sum(len(t) for t in top_lists), 1)
    return {
        "coverage": float((counts > 0).sum() / n_items),
        "gini": gini(counts),
        "tail_share": sum(1 for t in top_lists for i in t if i in tail) / slots,
        "genre_diversity": float(np.mean([len({g for i in t for g in item_genres[i]}) for t in top_lists]))
        if top_lists
        else 0.0,
    }


def category_hr(tag_categories: Sequence[set[str]], next_genres: Sequence[set[str]]) -> float:
    """Share of users whose next item has a genre among their (up to 30) tags' categories."""
    pairs = list(zip(tag_categories, next_genres))
    return sum(bool(c & g) for c, g in pairs) / max(len(pairs), 1)


def evaluate_scorer(
    data: Dataset,
    score_fn: Callable[[str], torch.Tensor],
    users: Sequence[str],
    targets: dict[str, str],
    seen: dict[str, set[int]],
    tail: set[int],
    k_top: int = 20,
    cutoffs: Sequence[int] = CUTOFFS,
    per_user: bool = False,
) -> dict[str, Any]:
    """Rank each user's target among all unseen items; accuracy @cutoffs + beyond-accuracy @k_top.

    A catalogue with fewer unseen items than ``k_top`` gives shorter top lists (k is clamped per
    user, never an error). With ``per_user`` the result also holds, per user in ``users`` order,
    ``rank``, ``hit@{k_top}``, ``genres@{k_top}`` (distinct genres) and ``tail@{k_top}`` (tail
    share) under ``"per_user"``: what bootstrap intervals resample.
    """
    ranks, tops = [], []
    genres = [data.items[i].genres for i in data.item_ids]
    for u in users:
        scores = score_fn(u).clone().float()
        target = data.item_index[targets[u]]
        exclude = sorted(seen[u] - {target})
        ranks.append(rank_of(scores, target, exclude))
        if exclude:
            scores[torch.tensor(exclude)] = float("-inf")
        k = min(k_top, int(torch.isfinite(scores).sum()))
        tops.append(torch.topk(scores, k).indices.tolist())
    metrics: dict[str, Any] = ranking_metrics(ranks, cutoffs)
    metrics.update({f"{k}@{k_top}": v for k, v in beyond_accuracy(tops, data.n_items, tail, genres).items()})
    metrics["users"] = len(users)
    if per_user:
        metrics["per_user"] = {
            "rank": ranks,
            f"hit@{k_top}": [float(r <= k_top) for r in ranks],
            f"genres@{k_top}": [float(len({g for i in t for g in genres[i]})) for t in tops],
            f"tail@{k_top}": [sum(i in tail for i in t) / max(len(t), 1) for t in tops],
        }
    return metrics


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Mean of per-user ``values`` with a percentile bootstrap interval (users resampled with replacement).

    For a paired comparison pass the per-user differences of two methods on the same users."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    alpha = (1 - level) / 2
    return {
        "mean": float(x.mean()),
        "ci_low": float(np.quantile(means, alpha)),
        "ci_high": float(np.quantile(means, 1 - alpha)),
        "n": len(x),
    }
