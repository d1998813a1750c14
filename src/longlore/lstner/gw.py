"""Entropic Gromov-Wasserstein distance in PyTorch, differentiable end to end.

LST-NER matches the source and target label graphs with the Gromov-Wasserstein (GW) distance
(Zheng et al., Findings ACL 2022). GW compares two metric-measure spaces ``(C1, p)`` and
``(C2, q)`` that live on *different* node sets (here 9 source BIO labels vs 11 target ones)::

    GW(C1, C2) = min_T  sum_{i,j,k,l} (C1[i,k] - C2[j,l])^2  T[i,j] T[k,l],   T 1 = p, T^T 1 = q

The entropic version (Peyre, Cuturi & Solomon, ICML 2016) solves it by projected gradient
descent: starting from ``T = p q^T``, repeat ``T <- Sinkhorn(p, q, cost=grad(T), eps)``. Every
step here is an ordinary torch op, unrolled for a fixed number of iterations, so gradients reach
``C1`` and ``C2`` (and whatever produced them) through both the final loss and the transport
plan itself. Nothing is detached: one public re-implementation of LST-NER detached the plan,
which silently turns the GW term into a constant for the label embeddings.

The algorithm and the returned value follow POT's ``ot.gromov.entropic_gromov_wasserstein2``
with ``loss_fun="square_loss"``, ``solver="PGD"`` (tests compare the two); Sinkhorn runs in the
log domain so small ``eps`` does not underflow.

Shapes: ``C1`` (n, n), ``C2`` (m, m), ``p`` (n,), ``q`` (m,), transport plan ``T`` (n, m).
"""

from __future__ import annotations

import torch


def _square_loss_terms(C1: torch.Tensor, C2: torch.Tensor, p: torch.Tensor, q: torch.Tensor):
    """Peyre et al. Prop. 1: the (n, m) constant part and the two factors of the square loss."""
    const = (C1**2 @ p)[:, None] + (C2**2 @ q)[None, :]  # (n, m)
    return const, C1, 2.0 * C2


def _tensor_product(const: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """L(C1, C2) (x) T as an (n, m) matrix: const - h1 T h2^T."""
    return const - h1 @ T @ h2.T


def log_sinkhorn(p: torch.Tensor, q: torch.Tensor, cost: torch.Tensor, eps: float, n_iter: int) -> torch.Tensor:
    """Entropic OT plan between ``p`` and ``q`` for ``cost`` (n, m), log-domain Sinkhorn.

    Returns ``T = diag(u) exp(-cost/eps) diag(v)`` after ``n_iter`` alternating updates of the
    dual potentials; the last update matches the column marginal exactly.
    """
    log_p, log_q = torch.log(p), torch.log(q)
    log_k = -cost / eps  # (n, m)
    f = torch.zeros_like(p)  # log u
    g = torch.zeros_like(q)  # log v
    for _ in range(n_iter):
        f = log_p - torch.logsumexp(log_k + g[None, :], dim=1)
        g = log_q - torch.logsumexp(log_k + f[:, None], dim=0)
    return torch.exp(f[:, None] + log_k + g[None, :])


def entropic_gw(
    C1: torch.Tensor,
    C2: torch.Tensor,
    p: torch.Tensor | None = None,
    q: torch.Tensor | None = None,
    *,
    eps: float = 0.05,
    outer_iters: int = 20,
    sinkhorn_iters: int = 50,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropic GW distance (square loss) and its transport plan.

    Args:
        C1: (n, n) intra-graph cost/distance matrix of the first graph.
        C2: (m, m) same for the second graph.
        p: (n,) node weights summing to 1 (uniform if None).
        q: (m,) node weights summing to 1 (uniform if None).
        eps: entropic regularisation (POT's ``epsilon``); smaller is closer to exact GW but
            needs more iterations.
        outer_iters: projected-gradient steps (POT's ``max_iter``).
        sinkhorn_iters: Sinkhorn iterations per step (POT's ``numItermax``).

    Returns:
        ``(distance, plan)``: the scalar ``sum_{ijkl} (C1[i,k] - C2[j,l])^2 T[i,j] T[k,l]`` at
        the final plan (never negative; the entropy term is not included, as in POT) and the
        (n, m) plan. Both are differentiable
        with respect to ``C1``, ``C2``, ``p`` and ``q``.
    """
    n, m = C1.shape[0], C2.shape[0]
    if C1.shape != (n, n) or C2.shape != (m, m):
        raise ValueError(f"C1 and C2 must be square; got {tuple(C1.shape)} and {tuple(C2.shape)}")
    if p is None:
        p = torch.full((n,), 1.0 / n, dtype=C1.dtype, device=C1.device)
    if q is None:
        q = torch.full((m,), 1.0 / m, dtype=C2.dtype, device=C2.device)
    const, h1, h2 = _square_loss_terms(C1, C2, p, q)
    # Asymmetric inputs: POT averages the gradients of the loss and of its transpose.
    symmetric = bool(torch.allclose(C1, C1.T, atol=1e-10) and torch.allclose(C2, C2.T, atol=1e-10))
    if not symmetric:
        const_t, h1_t, h2_t = _square_loss_terms(C1.T, C2.T, p, q)
    T = p[:, None] * q[None, :]  # (n, m) independent coupling, POT's default start
    for _ in range(outer_iters):
        grad = 2.0 * _tensor_product(const, h1, h2, T)
        if not symmetric:
            grad = 0.5 * (grad + 2.0 * _tensor_product(const_t, h1_t, h2_t, T))
        T = log_sinkhorn(p, q, grad, eps, sinkhorn_iters)
    # The value at the final plan, with the plan's own marginals in the constant term: Sinkhorn
    # matches the column marginal exactly but the row marginal only approximately, and using
    # p instead would let the value dip below zero when the graphs almost match. This way it is
    # the sum of squares sum (C1[i,k] - C2[j,l])^2 T[i,j] T[k,l] >= 0 (POT uses p, q; the two
    # agree as Sinkhorn converges).
    const_plan = (C1**2 @ T.sum(1))[:, None] + (C2**2 @ T.sum(0))[None, :]
    distance = (_tensor_product(const_plan, h1, h2, T) * T).sum()
    return distance, T


def cosine_cost(x: torch.Tensor) -> torch.Tensor:
    """(n, d) node features -> (n, n) cost ``(1 - cos) / 2`` in [0, 1], zero on the diagonal."""
    x = torch.nn.functional.normalize(x, dim=-1)
    return (1.0 - x @ x.T).clamp_min(0.0) / 2.0
