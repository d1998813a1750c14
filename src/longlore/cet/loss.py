"""The losses, as small pure functions of logits and tensors (no model inside).

Shape legend: B anchor questions in a batch, C options per question, K neighbours per anchor.

* :func:`cet_mixture_loss` — CET (Zheng et al., ACL 2023, eq. in §3.3)::

      L_i = -log[ W0 p(y_i | x_i) + (1 - W0) * mean_k p(y_i | x_{i,k}) ]   if x_i has neighbours
      L_i = -log p(y_i | x_i)                                              otherwise

  where x_{i,k} is neighbour k's question paired with *the anchor's* options, scored against the
  anchor's label y_i.
* :func:`cet_joint_loss` — the released code's joint-CE variant:
  ``W0 CE(x_i) + (1 - W0) mean_k CE(x_{i,k})``.
* :func:`ewc_penalty` — EWC's ``(lambda/2) sum_j F_j (theta_j - theta0_j)^2``.
* :func:`symmetric_kl` — R3F's smoothness term ``KL(p||q) + KL(q||p)`` over options.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F

# Masked neighbours get this log-probability instead of -inf: exp() of it is exactly 0 in float32,
# and unlike -inf it keeps logsumexp's gradient finite for anchors that have no neighbour at all.
_MASKED_LOGP = -1e9


def _gold_logp(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(y | x) from (..., C) logits and labels broadcast over the leading dims."""
    return F.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def _neighbour_gold_logp(neighbour_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, K, C), (B,) -> (B, K): log p(y_i | x_{i,k}) with the anchor's label y_i."""
    B, K, _ = neighbour_logits.shape
    return _gold_logp(neighbour_logits, labels.view(B, 1).expand(B, K))


def _check(anchor_logits: torch.Tensor, neighbour_logits: torch.Tensor, neighbour_mask: torch.Tensor) -> None:
    B, C = anchor_logits.shape
    if neighbour_logits.shape[0] != B or neighbour_logits.shape[2] != C:
        raise ValueError(f"neighbour_logits {tuple(neighbour_logits.shape)} do not match anchors (B={B}, C={C})")
    if neighbour_mask.shape != neighbour_logits.shape[:2]:
        raise ValueError(
            f"neighbour_mask {tuple(neighbour_mask.shape)} must be (B, K) = {tuple(neighbour_logits.shape[:2])}"
        )


def cet_mixture_loss(
    anchor_logits: torch.Tensor,
    labels: torch.Tensor,
    neighbour_logits: torch.Tensor,
    neighbour_mask: torch.Tensor,
    w0: float,
) -> torch.Tensor:
    """CET's loss, batch mean, computed in log space.

    Args:
        anchor_logits: (B, C) scores of each anchor's options.
        labels: (B,) gold option index of each anchor.
        neighbour_logits: (B, K, C) scores of the anchor's options under each neighbour's question.
        neighbour_mask: (B, K) bool, True where neighbour k of anchor i exists (passed theta).
        w0: the anchor weight W0 in [0, 1].
    """
    _check(anchor_logits, neighbour_logits, neighbour_mask)
    anchor_logp = _gold_logp(anchor_logits, labels)  # (B,)
    nb_logp = _neighbour_gold_logp(neighbour_logits, labels).masked_fill(~neighbour_mask, _MASKED_LOGP)  # (B, K)
    n_nb = neighbour_mask.sum(dim=1)  # (B,)
    log_mean_nb = torch.logsumexp(nb_logp, dim=1) - torch.log(n_nb.clamp(min=1).to(nb_logp.dtype))  # (B,)
    log_w0 = math.log(w0) if w0 > 0 else -math.inf
    log_w1 = math.log(1.0 - w0) if w0 < 1 else -math.inf
    mixed = torch.logaddexp(anchor_logp + log_w0, log_mean_nb + log_w1)  # log[W0 p + (1-W0) mean p_k]
    per_anchor = torch.where(n_nb > 0, -mixed, -anchor_logp)
    return per_anchor.mean()


def cet_joint_loss(
    anchor_logits: torch.Tensor,
    labels: torch.Tensor,
    neighbour_logits: torch.Tensor,
    neighbour_mask: torch.Tensor,
    w0: float,
) -> torch.Tensor:
    """Joint-CE variant: ``W0 CE(anchor) + (1-W0) mean_k CE(neighbour k)``; plain CE without neighbours."""
    _check(anchor_logits, neighbour_logits, neighbour_mask)
    anchor_ce = -_gold_logp(anchor_logits, labels)  # (B,)
    nb_ce = -_neighbour_gold_logp(neighbour_logits, labels) * neighbour_mask  # (B, K), 0 where masked
    n_nb = neighbour_mask.sum(dim=1)  # (B,)
    mean_nb_ce = nb_ce.sum(dim=1) / n_nb.clamp(min=1)
    per_anchor = torch.where(n_nb > 0, w0 * anchor_ce + (1.0 - w0) * mean_nb_ce, anchor_ce)
    return per_anchor.mean()


CET_LOSSES = {"mixture": cet_mixture_loss, "joint": cet_joint_loss}


def ewc_penalty(
    params: Mapping[str, torch.Tensor],
    anchor: Mapping[str, torch.Tensor],
    fisher: Mapping[str, torch.Tensor],
    lam: float,
) -> torch.Tensor:
    """EWC: ``(lam / 2) * sum_j F_j (theta_j - theta0_j)^2`` over the parameters named in ``fisher``.

    Zero at the anchor weights, positive away from them wherever the Fisher is positive.
    """
    total = None
    for name, weight in fisher.items():
        term = (weight * (params[name] - anchor[name]).pow(2)).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("ewc_penalty got an empty Fisher; estimate it on at least one parameter")
    return 0.5 * lam * total


def symmetric_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """R3F's ``KL(p||q) + KL(q||p)`` between softmax distributions over the last dim, batch mean."""
    logp, logq = F.log_softmax(logits_p, dim=-1), F.log_softmax(logits_q, dim=-1)
    kl_pq = (logp.exp() * (logp - logq)).sum(-1)
    kl_qp = (logq.exp() * (logq - logp)).sum(-1)
    return (kl_pq + kl_qp).mean()
