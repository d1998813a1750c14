"""Glue shared by the CLI, the benchmark and the server: the comparison table and served lists."""

from __future__ import annotations

import zlib
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


def user_fold(user: str, folds: int, seed: int = 0) -> int:
    """A user's fold (stable across runs and machines: crc32 of seed and id)."""
    return zlib.crc32(f"{seed}:{user}".encode()) % folds


def crossfit_fusion(
    data: Dataset,
    split: Split,
    users: Sequence[str],
    retrievers: dict[str, Retriever],
    user_tags: dict[str, list[str]],
    betas: Sequence[float],
    *,
    folds: int = 2,
    seed: int = 0,
    k: int = 20,
    merge: str = "max",
) -> dict[str, Any]:
    """Choose the fusion (which retriever, i.e. semantic weight, and b) without looking at test users.

    Users are split into ``folds`` folds. The choice applied to fold f maximises Recall@k on the
    *validation* items (each user's second-to-last interaction, ranked from the training history
    alone) of the users outside fold f: neither a user's own items nor any test item decide the b
    it is scored with. Returns ``choice`` (fold -> {retriever, beta}), the validation ``selection``
    table, and ``scorer(user)``: test-time scores under the user's fold's choice.
    """
    pop = Popularity(interaction_matrix(data, split.train))
    tail = tail_items(pop.counts.numpy())
    val_users = [u for u in users if u in split.valid]
    train_hist = {u: [x.item_id for x in split.train.get(u, [])] for u in val_users}
    targets = {u: split.valid[u].item_id for u in val_users}
    seen = {u: {data.item_index[i] for i in train_hist[u]} for u in val_users}
    fold = {u: user_fold(u, folds, seed) for u in users}
    hits: dict[tuple[str, float], list[float]] = {}
    for name, retriever in retrievers.items():
        for beta in betas:
            row = evaluate_scorer(
                data,
                lambda u, r=retriever, b=beta: r.scores(u, train_hist[u], user_tags.get(u) or None, b, merge)[0],
                val_users,
                targets,
                seen,
                tail,
                k_top=k,
                cutoffs=(k,),
                per_user=True,
            )
            hits[(name, beta)] = row["per_user"][f"hit@{k}"]
    selection: dict[str, dict[str, float]] = {}
    choice: dict[int, dict[str, Any]] = {}
    for f in range(folds):
        others = [i for i, u in enumerate(val_users) if fold[u] != f]
        scores = {key: float(np.mean([h[i] for i in others])) if others else 0.0 for key, h in hits.items()}
        for (name, beta), value in scores.items():
            selection.setdefault(f"{name}_b{beta:g}", {})[f"fold{f}_others"] = value
        # ties go to the earlier retriever and the larger b (closer to the collaborative score)
        name, beta = max(scores, key=lambda key: (scores[key], -list(retrievers).index(key[0]), key[1]))
        choice[f] = {"retriever": name, "beta": beta, f"validation_recall@{k}": scores[(name, beta)]}

    def scorer(user: str) -> torch.Tensor:
        picked = choice[fold[user]]
        tags = user_tags.get(user) or None
        history = test_history(split, user)
        return retrievers[picked["retriever"]].scores(user, history, tags, picked["beta"], merge)[0]

    return {"choice": choice, "selection": selection, "scorer": scorer, "folds": folds, "seed": seed}


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
    merge; rows ``recgpt_b{b}`` for 'max', ``recgpt_{merge}_b{b}`` otherwise), same users.

    The sweep shows how b moves the metrics on these users; the row to quote is
    ``recgpt_b_chosen_on_validation``, whose b was chosen per fold on other users' validation
    items (:func:`crossfit_fusion`), never on the users it is scored on."""
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
    fused = crossfit_fusion(data, split, users, {"recgpt": retriever}, user_tags, betas, merge=merges[0])
    rows["recgpt_b_chosen_on_validation"] = evaluate_scorer(data, fused["scorer"], users, targets, seen, tail)
    rows["b_choice_per_fold"] = fused["choice"]
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
