"""Label distributions and label graphs."""

from __future__ import annotations

import pytest
import torch

from longlore.core.errors import LongloreError
from longlore.lstner.data import IGNORE
from longlore.lstner.graph import build_adjacency, label_distributions_from_logits, normalize_adjacency


def test_label_distributions_are_means_of_softened_predictions_and_sum_to_one():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 5, generator=g)  # (B, T, S)
    labels = torch.tensor([[IGNORE, 0, 1, 1, IGNORE, 2], [0, 0, 2, IGNORE, 1, IGNORE]])
    dist = label_distributions_from_logits(logits, labels, n_labels=4, temperature=2.0)
    assert dist.shape == (4, 5)
    torch.testing.assert_close(dist.sum(-1), torch.ones(4))
    flat_logits, flat_labels = logits.reshape(-1, 5), labels.reshape(-1)
    expected = torch.softmax(flat_logits[flat_labels == 1] / 2.0, -1).mean(0)
    torch.testing.assert_close(dist[1], expected)
    torch.testing.assert_close(dist[3], torch.full((5,), 0.2))  # label 3 has no tokens: uniform


def test_higher_temperature_gives_flatter_distributions():
    logits = torch.tensor([[4.0, 0.0, -2.0]])
    labels = torch.tensor([0])
    sharp = label_distributions_from_logits(logits, labels, 1, temperature=1.0)
    soft = label_distributions_from_logits(logits, labels, 1, temperature=4.0)
    assert soft.max() < sharp.max() and soft.min() > sharp.min()


def test_cosine_edges_are_symmetric_thresholded_and_loop_free():
    dist = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.0, 0.1, 0.9]])
    adj = build_adjacency(dist, "cosine", threshold=0.5)
    assert torch.equal(adj, adj.T) and torch.all(torch.diagonal(adj) == 0)
    assert adj[0, 1] > 0.9 and adj[0, 2] == 0 and adj[1, 2] == 0
    knn = build_adjacency(dist, "knn", k=1)
    assert knn[0, 1] > 0 and knn[2].count_nonzero() >= 1 and torch.equal(knn, knn.T)
    with pytest.raises(LongloreError, match="edge_rule 'nope'"):
        build_adjacency(dist, "nope")


def test_normalized_adjacency_known_answer():
    adj = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # A + I = all ones, degrees 2: D^-1/2 (A + I) D^-1/2 = 0.5 everywhere.
    torch.testing.assert_close(normalize_adjacency(adj), torch.full((2, 2), 0.5))
    torch.testing.assert_close(normalize_adjacency(torch.zeros(3, 3)), torch.eye(3))
