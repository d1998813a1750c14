"""Glue shared by the CLI, the benchmark and the server: the comparison table and served lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from longlore.recgpt.baselines import ItemKNN, Popularity, interaction_matrix
from longlore.recgpt.data import Dataset, Split
from longlore.recgpt.evaluate import category_hr, evaluate_scorer, tail_items
from longlore.recgpt.trainer import Retriever


def test_history(split: Split, user: str) -> list[str]:
    """What the model may see when predicting the test item: train log plus the valid item."""
    hist = [x.item_id for x in split.train.get(user, [])]
    return hist + ([split.valid[user].item_id] if user in split.valid else [])


@torch.no_grad()
def tag_categories(retriever: Retriever, tags: Sequence[str]) -> list[str]:
    """Tag -> category model: the genre whose item centroid (in the item tower's space) is
    closest to the tag's vector. Trained jointly with L_cate, which pulls tags to their genre."""
    genres = retriever.features.genres
    vectors = retriever.item_vectors
    centroids = torch.stack(
        [
            vectors[retriever.features.item_genres[:, g] > 0].mean(0)
            if (retriever.features.item_genres[:, g] > 0).any()
            else torch.zeros(vectors.shape[1])
            for g in range(len(genres))
        ]
    )
    centroids = torch.nn.functional.normalize(centroids, dim=-1)
    if not tags:
        return []
    return [genres[i] for i in (retriever.tag_vectors(list(tags)) @ centroids.T).argmax(dim=1).tolist()]


def compare_methods(
    data: Dataset,
    split: Split,
    users: Sequence[str],
    retriever: Retriever,
    collab: Retriever | None,
    user_tags: dict[str, list[str]],
    betas: Sequence[float] = (1.0, 0.9, 0.8, 0.7, 0.5),
    merges: Sequence[str] = ("max",),
) -> dict[str, Any]:
    """Popularity, item-KNN, the collaborative tower alone and RecGPT fusion (b swept, for each tag
    merge; rows ``recgpt_b{b}`` for 'max', ``recgpt_{merge}_b{b}`` otherwise), same users."""
    matrix = interaction_matrix(data, split.train)  # every method learns from the training logs only
    pop, knn = Popularity(matrix), ItemKNN(matrix)
    tail = tail_items(pop.counts.numpy())
    targets = {u: split.test[u].item_id for u in users}
    histories = {u: test_history(split, u) for u in users}
    seen = {u: {data.item_index[i] for i in histories[u]} for u in users}
    rows: dict[str, Any] = {}
    rows["popularity"] = evaluate_scorer(data, lambda u: pop(0, []), users, targets, seen, tail)
    rows["item_knn"] = evaluate_scorer(
        data, lambda u: knn(0, [data.item_index[i] for i in histories[u]]), users, targets, seen, tail
    )
    if collab is not None:
        rows["collab_tower_only"] = evaluate_scorer(
            data, lambda u: collab.scores(u, histories[u])[0], users, targets, seen, tail
        )
    for merge in merges:
        prefix = "recgpt_" if merge == "max" else f"recgpt_{merge}_"
        for beta in betas:
            rows[f"{prefix}b{beta:g}"] = evaluate_scorer(
                data,
                lambda u, b=beta, m=merge: retriever.scores(u, histories[u], user_tags.get(u) or None, b, m)[0],
                users,
                targets,
                seen,
                tail,
            )
    cats = [set(tag_categories(retriever, user_tags.get(u, [])[:30])) for u in users]
    next_genres = [set(data.items[targets[u]].genres) for u in users]
    # Reference for the category HR: the 3 genres most frequent in the user's own history.
    habit = [{g for g, _ in top_genres(data, histories[u], 3)} for u in users]
    rows["category_hr@30"] = {
        "tags": category_hr(cats, next_genres),
        "history_top3_genres": category_hr(habit, next_genres),
        "mean_tag_categories": float(np.mean([len(c) for c in cats])) if cats else 0.0,
    }
    rows["users_with_tags"] = sum(bool(user_tags.get(u)) for u in users)
    return rows


def top_genres(data: Dataset, items: Sequence[str], n: int) -> list[tuple[str, int]]:
    from collections import Counter

    return Counter(g for i in items for g in data.items[i].genres).most_common(n)


def recommend(
    retriever: Retriever,
    data: Dataset,
    split: Split,
    user: str,
    k: int,
    tags: Sequence[str] | None,
    explanations: dict[str, str] | None = None,
    beta: float | None = None,
) -> list[dict[str, Any]]:
    """Top-``k`` unseen items with their score, the tag that retrieved each and its explanation."""
    data.user(user)  # unknown ids raise a clear LongloreError
    history = test_history(split, user)
    scores, best = retriever.scores(user, history, list(tags) if tags else None, beta)
    scores = scores.clone()
    seen = [data.item_index[i] for i in history]
    if seen:
        scores[torch.tensor(seen)] = float("-inf")
    top = torch.topk(scores, min(k, data.n_items - len(seen)))
    out = []
    for score, index in zip(top.values.tolist(), top.indices.tolist()):
        iid = retriever.features.item_ids[index]
        tag = list(tags)[best[index]] if best is not None and tags else None
        out.append(
            {
                "item_id": iid,
                "title": data.items[iid].title,
                "genres": data.items[iid].genres,
                "score": round(score, 4),
                "tag": tag,
                "explanation": (explanations or {}).get(iid),
            }
        )
    return out
