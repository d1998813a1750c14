"""Losses equal hand-computed values on a toy batch; the towers train; fusion is the paper's formula."""

from __future__ import annotations

import math

import pytest
import torch

from longlore.recgpt.loss import multi_positive_softmax, recgpt_loss, sampled_softmax
from longlore.recgpt.model import fuse

Q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
C = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])


def _lse(xs):
    return math.log(sum(math.exp(x) for x in xs))


def test_sampled_softmax_matches_hand_computation():
    tau = 0.5
    # row 0 logits (1, 0, 0.6)/0.5 = (2, 0, 1.2), positive 0; row 1 logits (0, 2, 1.6), positive 1
    expected = ((_lse([2, 0, 1.2]) - 2) + (_lse([0, 2, 1.6]) - 2)) / 2
    assert sampled_softmax(Q, C, torch.tensor([0, 1]), tau).item() == pytest.approx(expected, rel=1e-5)


def test_accidental_hit_mask_removes_the_candidate():
    mask = torch.tensor([[False, False, True], [False, False, False]])
    expected = ((_lse([2, 0]) - 2) + (_lse([0, 2, 1.6]) - 2)) / 2
    assert sampled_softmax(Q, C, torch.tensor([0, 1]), 0.5, mask).item() == pytest.approx(expected, rel=1e-5)


def test_multi_positive_softmax_matches_hand_computation():
    positives = torch.tensor([[True, False, True], [False, False, False]])  # row 1 has none: skipped
    expected = _lse([2, 0, 1.2]) - _lse([2, 1.2])
    assert multi_positive_softmax(Q, C, positives, 0.5).item() == pytest.approx(expected, rel=1e-5)
    assert multi_positive_softmax(Q, C, torch.zeros(2, 3, dtype=torch.bool), 0.5).item() == 0.0


def test_total_loss_and_fusion_formulas():
    l_col, l_tag, l_cate = torch.tensor(2.0), torch.tensor(1.0), torch.tensor(3.0)
    assert recgpt_loss(l_col, l_tag, l_cate, 0.5).item() == pytest.approx(2.0 + 0.5 * 1.0 + 0.5 * 3.0)
    assert recgpt_loss(l_col, l_tag, l_cate, 0.25, weight=0.0).item() == pytest.approx(2.0)
    y_col, y_sem = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert fuse(y_col, y_sem, 0.8).tolist() == pytest.approx([0.8, 0.2])
    assert fuse(y_col, None, 0.3) is y_col


def test_three_towers_train_and_tags_find_their_genre(toy_data, hash_embedder):
    from longlore.recgpt.config import RecGPTConfig
    from longlore.recgpt.data import leave_last_out
    from longlore.recgpt.trainer import train_retriever

    torch.manual_seed(0)
    config = RecGPTConfig(epochs=6, batch_size=64, n_negatives=16, dim=16, lr=1e-2)
    retriever, summary = train_retriever(toy_data, leave_last_out(toy_data), config, embedder=hash_embedder)
    first, last = summary["history"][0], summary["history"][-1]
    assert last["col"] < first["col"] and last["tag"] < first["tag"] and last["cate"] < first["cate"]
    # a tag tower that trained must map a genre tag nearest to items of that genre
    vec = retriever.tag_vectors(["comedy movies"]) @ retriever.item_vectors.T
    top = vec[0].topk(5).indices.tolist()
    assert sum("Comedy" in toy_data.items[toy_data.item_ids[i]].genres for i in top) >= 4


def test_gradients_reach_all_three_towers(toy_data):
    from longlore.recgpt.model import ThreeTower
    from longlore.recgpt.trainer import Features

    f = Features.build(toy_data)
    model = ThreeTower(
        len(f.user_ids), len(f.item_ids), len(f.user_vocab), f.item_genres, f.item_attrs, len(f.attr_vocab), 32, 16
    )
    users = torch.tensor([0, 1])
    hist = torch.tensor([[0, 1, len(f.item_ids)], [2, 3, 4]])
    h_u = model.user(users, f.user_feats[users], hist)
    h_t = model.tag(torch.randn(2, 32))
    cand = model.item(torch.tensor([5, 6, 7]))
    loss = recgpt_loss(
        sampled_softmax(h_u, cand, torch.tensor([0, 1]), 0.1),
        sampled_softmax(h_t, cand, torch.tensor([0, 1]), 0.1),
        multi_positive_softmax(h_t, cand, torch.tensor([[True, True, False], [False, True, True]]), 0.1),
        0.5,
    )
    loss.backward()
    for name in ("user_mlp.0.weight", "hist_emb.weight", "item_mlp.0.weight", "genre_proj.weight", "tag_mlp.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
