"""The CoMeT training loss: plain next-token cross-entropy on text tokens (official code)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from longlore.comet.layout import IGNORE


def token_ce_sum(
    hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Module, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, int]:
    """Sum of -log p(label) over positions whose label is not -100 (each term times its weight when
    ``weights`` (R, L) is given), and the count of those positions.

    hidden (R, L, D) after the final norm; labels (R, L) already aligned (position t holds the
    next text token). Only labelled positions go through the LM head, which keeps the (R, L, V)
    logits of beacons and memory slots out of memory. Summing (not averaging) per chunk lets a
    caller divide once by the token count of the whole batch, or of all pipeline ranks.
    """
    mask = labels != IGNORE
    n = int(mask.sum())
    if n == 0:
        return hidden.sum() * 0.0, 0
    logits = lm_head(hidden[mask]).float()  # (n, V)
    if weights is None:
        return F.cross_entropy(logits, labels[mask], reduction="sum"), n
    per_token = F.cross_entropy(logits, labels[mask], reduction="none")
    return (per_token * weights.to(per_token.device)[mask]).sum(), n
