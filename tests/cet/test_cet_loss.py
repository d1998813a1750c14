"""CET's loss and the baselines' regularisers, on hand-built tensors with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from longlore.cet.loss import cet_joint_loss, cet_mixture_loss, ewc_penalty, symmetric_kl
from longlore.cet.neighbours import find_neighbours

LN3 = math.log(3.0)


def toy_batch():
    """Two anchors, two options; anchor 0 has two neighbours, anchor 1 has none."""
    anchor = torch.tensor([[0.0, 0.0], [2.0, 0.5]], requires_grad=True)
    labels = torch.tensor([0, 1])
    # anchor 0: neighbour 1 gives p(y=0) = 0.75, neighbour 2 gives 0.5
    nb = torch.tensor([[[LN3, 0.0], [0.0, 0.0]], [[5.0, -5.0], [1.0, 2.0]]], requires_grad=True)
    mask = torch.tensor([[True, True], [False, False]])
    return anchor, labels, nb, mask


def test_mixture_loss_equals_hand_computed_value():
    anchor, labels, nb, mask = toy_batch()
    loss = cet_mixture_loss(anchor, labels, nb, mask, w0=0.9)
    # anchor 0: -log(0.9 * 0.5 + 0.1 * mean(0.75, 0.5)); anchor 1 (no neighbours): plain CE
    expected_0 = -math.log(0.9 * 0.5 + 0.1 * 0.625)
    expected_1 = -math.log(math.exp(0.5) / (math.exp(2.0) + math.exp(0.5)))
    assert loss.item() == pytest.approx((expected_0 + expected_1) / 2, rel=1e-6)


def test_joint_loss_equals_hand_computed_value():
    anchor, labels, nb, mask = toy_batch()
    loss = cet_joint_loss(anchor, labels, nb, mask, w0=0.8)
    expected_0 = 0.8 * -math.log(0.5) + 0.2 * (-math.log(0.75) - math.log(0.5)) / 2
    expected_1 = -math.log(math.exp(0.5) / (math.exp(2.0) + math.exp(0.5)))
    assert loss.item() == pytest.approx((expected_0 + expected_1) / 2, rel=1e-6)


@pytest.mark.parametrize("w0", [0.0, 0.3, 0.9])
def test_neighbours_are_scored_against_the_anchors_label(w0):
    # labels 1 and 2 (never 0) and neighbours on both anchors: the neighbour term must read
    # p(y_anchor | x_neighbour), whatever label the neighbour question had
    rng = np.random.default_rng(3)
    anchor, nb = rng.normal(size=(2, 3)), rng.normal(size=(2, 2, 3))
    labels, mask = [1, 2], np.array([[True, True], [True, False]])

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    pa, pn = softmax(anchor), softmax(nb)
    mix, joint = [], []
    for i, y in enumerate(labels):
        pk = pn[i, mask[i], y]
        mix.append(-math.log(w0 * pa[i, y] + (1 - w0) * pk.mean()))
        joint.append(w0 * -math.log(pa[i, y]) + (1 - w0) * np.mean(-np.log(pk)))
    args = (torch.tensor(anchor), torch.tensor(labels), torch.tensor(nb), torch.tensor(mask))
    assert cet_mixture_loss(*args, w0=w0).item() == pytest.approx(np.mean(mix), rel=1e-6)
    assert cet_joint_loss(*args, w0=w0).item() == pytest.approx(np.mean(joint), rel=1e-6)


@pytest.mark.parametrize("loss_fn", [cet_mixture_loss, cet_joint_loss])
def test_without_neighbours_the_loss_is_plain_cross_entropy(loss_fn):
    torch.manual_seed(0)
    anchor = torch.randn(5, 4, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 2, 2])
    nb = torch.randn(5, 3, 4, requires_grad=True)  # present but all masked out
    mask = torch.zeros(5, 3, dtype=torch.bool)
    for w0 in (0.0, 0.5, 0.9, 1.0):
        loss = loss_fn(anchor, labels, nb, mask, w0=w0)
        ce = F.cross_entropy(anchor, labels)
        assert loss.item() == pytest.approx(ce.item(), rel=1e-6)
        (grad,) = torch.autograd.grad(loss, anchor)
        (grad_ce,) = torch.autograd.grad(ce, anchor)
        assert torch.allclose(grad, grad_ce, atol=1e-7)
    # masked neighbours get no gradient and nothing is NaN
    loss_fn(anchor, labels, nb, mask, w0=0.9).backward()
    assert torch.isfinite(nb.grad).all() and nb.grad.abs().max() == 0


def test_w0_changes_the_loss_and_w0_one_is_plain_ce():
    anchor, labels, nb, mask = toy_batch()
    losses = {w0: cet_mixture_loss(anchor, labels, nb, mask, w0=w0).item() for w0 in (0.5, 0.9, 0.97, 1.0)}
    assert len({round(v, 8) for v in losses.values()}) == 4
    assert losses[1.0] == pytest.approx(F.cross_entropy(anchor, labels).item(), rel=1e-6)
    # w0 = 0: only the neighbours' mean probability counts for anchor 0
    expected_0 = -math.log(0.625)
    expected_1 = -math.log(math.exp(0.5) / (math.exp(2.0) + math.exp(0.5)))
    assert cet_mixture_loss(anchor, labels, nb, mask, w0=0.0).item() == pytest.approx((expected_0 + expected_1) / 2)


def test_k_changes_the_loss():
    anchor, labels, nb, mask = toy_batch()
    one = mask.clone()
    one[0, 1] = False  # K = 1: only the first neighbour
    loss_k2 = cet_mixture_loss(anchor, labels, nb, mask, w0=0.9).item()
    loss_k1 = cet_mixture_loss(anchor, labels, nb, one, w0=0.9).item()
    expected_0 = -math.log(0.9 * 0.5 + 0.1 * 0.75)
    expected_1 = -math.log(math.exp(0.5) / (math.exp(2.0) + math.exp(0.5)))
    assert loss_k1 == pytest.approx((expected_0 + expected_1) / 2, rel=1e-6)
    assert loss_k1 != pytest.approx(loss_k2)


def test_theta_changes_the_loss_through_the_neighbour_table():
    # anchor 0 is close to 1 (cos 0.98) and far from 2 (cos 0.0)
    emb = np.array([[1.0, 0.0], [0.98, math.sqrt(1 - 0.98**2)], [0.0, 1.0]])
    logits = torch.tensor([[0.0, 0.0], [LN3, 0.0], [0.0, 2.0]])  # question j scored with anchor 0's options
    labels = torch.tensor([0])
    losses = []
    for theta in (-1.0, 0.5, 0.99):
        table = find_neighbours(emb, k=2, theta=theta)
        idx = torch.from_numpy(table.index[:1])
        mask = torch.from_numpy(table.mask[:1])
        nb = logits[idx.clamp(min=0)]  # (1, 2, 2)
        losses.append(cet_mixture_loss(logits[:1], labels, nb, mask, w0=0.9).item())
    p2 = 1 / (1 + math.exp(2.0))
    assert losses[0] == pytest.approx(-math.log(0.9 * 0.5 + 0.1 * (0.75 + p2) / 2), rel=1e-6)
    assert losses[1] == pytest.approx(-math.log(0.9 * 0.5 + 0.1 * 0.75), rel=1e-6)
    assert losses[2] == pytest.approx(-math.log(0.5), rel=1e-6)  # no neighbour left: plain CE


def test_neighbour_gradient_flows_into_neighbour_logits():
    anchor, labels, nb, mask = toy_batch()
    cet_mixture_loss(anchor, labels, nb, mask, w0=0.9).backward()
    assert nb.grad[0].abs().sum() > 0  # neighbours are trained, not constants
    assert nb.grad[1].abs().sum() == 0  # masked


def test_ewc_penalty_zero_at_anchor_and_positive_away():
    torch.manual_seed(0)
    anchor = {"w": torch.randn(3, 4), "b": torch.randn(4)}
    fisher = {"w": torch.rand(3, 4) + 0.1, "b": torch.rand(4) + 0.1}
    params = {k: v.clone().requires_grad_(True) for k, v in anchor.items()}
    penalty = ewc_penalty(params, anchor, fisher, lam=2.0)
    assert penalty.item() == 0.0
    grads = torch.autograd.grad(penalty, list(params.values()))
    assert all(g.abs().max() == 0 for g in grads)
    moved = {k: v + 0.1 for k, v in anchor.items()}
    value = ewc_penalty(moved, anchor, fisher, lam=2.0).item()
    expected = 0.5 * 2.0 * sum((f * 0.01).sum().item() for f in fisher.values())
    assert value > 0 and value == pytest.approx(expected, rel=1e-5)


def test_symmetric_kl_is_symmetric_zero_on_equal_and_positive_otherwise():
    p = torch.tensor([[1.0, 0.0, -1.0]])
    q = torch.tensor([[0.0, 0.5, 0.0]])
    assert symmetric_kl(p, p).item() == pytest.approx(0.0, abs=1e-7)
    assert symmetric_kl(p, q).item() == pytest.approx(symmetric_kl(q, p).item(), rel=1e-6)
    pp, qq = F.softmax(p, -1), F.softmax(q, -1)
    expected = ((pp - qq) * (pp.log() - qq.log())).sum().item()  # KL(p||q) + KL(q||p)
    assert symmetric_kl(p, q).item() == pytest.approx(expected, rel=1e-6)
