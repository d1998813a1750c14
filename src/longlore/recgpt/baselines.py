"""Baselines on the same split: most-popular and item-KNN (cosine over the binary user-item matrix)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

from longlore.recgpt.data import Dataset


def interaction_matrix(data: Dataset, train: dict[str, list]) -> sparse.csr_matrix:
    """Binary (users x items) matrix of the training interactions."""
    rows, cols = [], []
    for uid, seq in train.items():
        for x in seq:
            rows.append(data.user_index[uid])
            cols.append(data.item_index[x.item_id])
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(data.n_users, data.n_items))
    m.data[:] = 1.0  # repeated interactions count once
    return m


class Popularity:
    """Score = number of training users who interacted with the item (the same list for everyone)."""

    def __init__(self, matrix: sparse.csr_matrix) -> None:
        self.counts = torch.from_numpy(np.asarray(matrix.sum(axis=0)).ravel()).float()

    def __call__(self, user_row: int, history: list[int]) -> torch.Tensor:
        return self.counts


class ItemKNN:
    """Item-based CF (Sarwar et al. 2001): cosine similarities, top-``k`` neighbours per item, and
    score(u, j) = sum of similarities between j and the items in u's history."""

    def __init__(self, matrix: sparse.csr_matrix, k: int = 100, shrink: float = 10.0) -> None:
        m = matrix.tocsc().astype(np.float64)
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=0)).ravel())
        co = (m.T @ m).toarray()  # (N, N) co-occurrence
        sim = co / (np.outer(norms, norms) + shrink + 1e-12)
        np.fill_diagonal(sim, 0.0)
        if k < sim.shape[1]:  # keep each item's k most similar neighbours
            cut = np.argpartition(-sim, k, axis=1)[:, k:]
            np.put_along_axis(sim, cut, 0.0, axis=1)
        self.sim = torch.from_numpy(sim).float()

    def __call__(self, user_row: int, history: list[int]) -> torch.Tensor:
        if not history:
            return torch.zeros(self.sim.shape[0])
        return self.sim[torch.tensor(sorted(set(history)))].sum(dim=0)
