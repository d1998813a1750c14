"""LST-NER's loss terms as small pure functions.

``total = CE + l_aux * BCE + l_gw * GW`` (Zheng et al., Findings ACL 2022): token cross-entropy
over target labels, the auxiliary multi-label BCE over "which entity types occur in the
sentence", and the Gromov-Wasserstein distance between the source and target label graphs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from longlore.lstner.data import IGNORE


def token_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled sub-tokens; logits (B, T, L), labels (B, T) with IGNORE."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


def aux_bce(type_logits: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
    """Multi-label BCE: type_logits (B, K), types (B, K) in {0, 1}."""
    return F.binary_cross_entropy_with_logits(type_logits, types)


def total_loss(ce: torch.Tensor, bce: torch.Tensor, gw: torch.Tensor, l_aux: float, l_gw: float) -> torch.Tensor:
    """``CE + l_aux * BCE + l_gw * GW``."""
    return ce + l_aux * bce + l_gw * gw
