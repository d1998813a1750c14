"""Entropic Gromov-Wasserstein: known answers, agreement with POT, and end-to-end gradients."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from longlore.lstner.gw import cosine_cost, entropic_gw, log_sinkhorn

# POT warns when its Sinkhorn hits numItermax before stopThr=1e-12; both sides run the same
# iteration counts, so the comparison stands.
pytestmark = pytest.mark.filterwarnings("ignore:Sinkhorn did not converge")


def _random_graph_cost(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return cosine_cost(torch.randn(n, 5, generator=g, dtype=torch.float64))


def test_sinkhorn_plan_has_the_requested_marginals():
    p = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    q = torch.tensor([0.6, 0.4], dtype=torch.float64)
    cost = torch.rand(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plan = log_sinkhorn(p, q, cost, eps=0.05, n_iter=300)
    torch.testing.assert_close(plan.sum(1), p, atol=1e-8, rtol=0)
    torch.testing.assert_close(plan.sum(0), q, atol=1e-8, rtol=0)


def test_gw_is_near_zero_for_an_isomorphic_graph_with_permuted_nodes():
    c1 = _random_graph_cost(7, seed=1)
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    c2 = c1[perm][:, perm]  # the same graph, nodes listed in another order
    same, plan = entropic_gw(c1, c2, eps=0.005, outer_iters=50, sinkhorn_iters=300)
    other, _ = entropic_gw(c1, _random_graph_cost(7, seed=2), eps=0.005, outer_iters=50, sinkhorn_iters=300)
    assert same.item() < 1e-3
    assert other.item() > 20 * same.item() and other.item() > 5e-3
    # The plan recovers the permutation: node perm[j] of c1 is matched to node j of c2.
    assert torch.equal(plan.argmax(0), perm)


def test_gw_is_exactly_zero_only_for_identical_structure_and_grows_with_distortion():
    c1 = _random_graph_cost(6, seed=3)
    values = []
    for noise in (0.0, 0.1, 0.3):
        c2 = c1 + noise * _random_graph_cost(6, seed=4)
        values.append(entropic_gw(c1, c2, eps=0.005, outer_iters=50, sinkhorn_iters=300)[0].item())
    assert values[0] < values[1] < values[2]


@pytest.mark.parametrize("eps", [0.1, 0.05])
@pytest.mark.parametrize("sizes", [(5, 5), (6, 9)])
def test_gw_matches_pot_entropic_gw(eps, sizes):
    c1, c2 = _random_graph_cost(sizes[0], seed=5), _random_graph_cost(sizes[1], seed=6)
    p = torch.softmax(torch.randn(sizes[0], generator=torch.Generator().manual_seed(7), dtype=torch.float64), 0)
    q = torch.full((sizes[1],), 1.0 / sizes[1], dtype=torch.float64)
    ours, plan = entropic_gw(c1, c2, p, q, eps=eps, outer_iters=30, sinkhorn_iters=300)
    ref_plan, log = ot.gromov.entropic_gromov_wasserstein(
        c1.numpy(),
        c2.numpy(),
        p.numpy(),
        q.numpy(),
        epsilon=eps,
        max_iter=30,
        tol=1e-12,
        log=True,
        numItermax=300,
        stopThr=1e-12,
    )
    np.testing.assert_allclose(ours.item(), log["gw_dist"], rtol=1e-5)
    np.testing.assert_allclose(plan.numpy(), ref_plan, atol=1e-6)


def test_gw_handles_asymmetric_costs_like_pot():
    g = torch.Generator().manual_seed(8)
    c1 = torch.rand(4, 4, generator=g, dtype=torch.float64)
    c2 = torch.rand(5, 5, generator=g, dtype=torch.float64)
    ours, _ = entropic_gw(c1, c2, eps=0.1, outer_iters=30, sinkhorn_iters=300)
    ref = ot.gromov.entropic_gromov_wasserstein2(
        c1.numpy(), c2.numpy(), epsilon=0.1, max_iter=30, tol=1e-12, numItermax=300, stopThr=1e-12
    )
    np.testing.assert_allclose(ours.item(), float(ref), rtol=1e-5)


def test_gw_passes_gradients_to_both_graphs_inputs_through_the_plan():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    dist, _ = entropic_gw(cosine_cost(x), cosine_cost(y), eps=0.05, outer_iters=5, sinkhorn_iters=20)
    gx, gy = torch.autograd.grad(dist, (x, y))
    assert gx.abs().sum() > 0 and gy.abs().sum() > 0
    # The autograd gradient equals the finite-difference slope of the whole computation, so no
    # part (in particular the transport plan) is cut out of the graph.
    assert torch.autograd.gradcheck(
        lambda a, b: entropic_gw(cosine_cost(a), cosine_cost(b), eps=0.05, outer_iters=5, sinkhorn_iters=20)[0],
        (x.detach().requires_grad_(), y.detach().requires_grad_()),
        eps=1e-6,
        atol=1e-6,
    )
    # And detaching the plan would change the gradient: the plan's own contribution is non-zero.
    c1, c2 = cosine_cost(x), cosine_cost(y)
    _, plan = entropic_gw(c1, c2, eps=0.05, outer_iters=5, sinkhorn_iters=20)
    from longlore.lstner.gw import _square_loss_terms, _tensor_product

    p = torch.full((5,), 0.2, dtype=torch.float64)
    q = torch.full((7,), 1 / 7, dtype=torch.float64)
    const, h1, h2 = _square_loss_terms(c1, c2, p, q)
    detached = (_tensor_product(const, h1, h2, plan.detach()) * plan.detach()).sum()
    gx_detached = torch.autograd.grad(detached, x)[0]
    assert not torch.allclose(gx, gx_detached, atol=1e-8)
