"""Metrics equal hand-computed values; baselines equal their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import sparse

from longlore.recgpt.baselines import ItemKNN, Popularity
from longlore.recgpt.evaluate import (
    beyond_accuracy,
    category_hr,
    gini,
    rank_of,
    ranking_metrics,
    tail_items,
)


def test_rank_excludes_seen_items_and_counts_ties_against_the_target():
    scores = torch.tensor([0.9, 0.5, 0.7, 0.5, 0.1])
    assert rank_of(scores, 2, exclude=[]) == 2
    assert rank_of(scores, 2, exclude=[0]) == 1
    assert rank_of(scores, 1, exclude=[]) == 4  # tie with item 3 counts against the target


def test_ranking_metrics_hand_values():
    m = ranking_metrics([1, 3, 15, 60], cutoffs=(10, 20))
    assert m["recall@10"] == m["hr@10"] == 0.5 and m["recall@20"] == 0.75
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert m["ndcg@20"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(16)) / 4)
    assert m["mrr@20"] == pytest.approx((1 + 1 / 3 + 1 / 15) / 4)


def test_gini_tail_and_diversity_hand_values():
    assert gini([1, 1, 1, 1]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 4]) == pytest.approx(0.75)  # (n-1)/n for all mass on one of n
    assert tail_items(np.array([10, 1, 5, 0, 7])) == {1, 2, 3, 4}  # top 20% (1 item) is head
    out = beyond_accuracy([[0, 1], [1, 2]], 5, {2, 3, 4}, [["A"], ["A", "B"], ["C"], [], []])
    assert out == {
        "coverage": 0.6,
        "gini": pytest.approx(gini([1, 2, 1, 0, 0])),
        "tail_share": 0.25,
        "genre_diversity": 2.5,
    }
    assert category_hr([{"A"}, {"B"}, set()], [{"A", "C"}, {"C"}, {"A"}]) == pytest.approx(1 / 3)


def test_popularity_and_item_knn_match_their_definitions():
    m = sparse.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]], dtype=float))
    assert Popularity(m)(0, []).tolist() == [3, 2, 2]
    knn = ItemKNN(m, k=2, shrink=0.0)
    # cosine(0,1) = 2 / (sqrt3*sqrt2); cosine(1,2) = 1/2
    assert knn.sim[0, 1].item() == pytest.approx(2 / math.sqrt(6), rel=1e-5)
    assert knn.sim[1, 2].item() == pytest.approx(0.5, rel=1e-5)
    assert knn(0, [1]).tolist() == pytest.approx([2 / math.sqrt(6), 0.0, 0.5], rel=1e-5)
    assert ItemKNN(m, k=1, shrink=0.0).sim[1].nonzero().flatten().tolist() == [0]  # only the best neighbour


def test_evaluate_scorer_on_a_known_oracle(toy_data):
    from longlore.recgpt.data import leave_last_out
    from longlore.recgpt.evaluate import evaluate_scorer

    split = leave_last_out(toy_data)
    users = sorted(split.test)
    targets = {u: split.test[u].item_id for u in users}
    seen = {u: {toy_data.item_index[x.item_id] for x in split.train[u]} for u in users}

    def oracle(u):
        s = torch.zeros(toy_data.n_items)
        s[toy_data.item_index[targets[u]]] = 1.0
        return s

    m = evaluate_scorer(toy_data, oracle, users, targets, seen, set(), k_top=5, cutoffs=(1,))
    assert m["recall@1"] == 1.0 and m["ndcg@1"] == 1.0 and m["users"] == len(users)
