"""RecGPT's retrieval losses: sampled-softmax contrastive terms (METHODS.md §5).

L = L_col + w * (a * L_tag + (1 - a) * L_cate), every term a softmax over a shared candidate set
(the batch's positive items plus uniformly sampled negatives) of cosine scores divided by tau.

Shapes: B queries, C candidates, D embedding size; embeddings are L2-normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sampled_softmax(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    positive: torch.Tensor,
    tau: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of -log softmax(q_i . c_j / tau)[positive_i]; ``mask`` (B, C) True drops a candidate.

    queries (B, D), candidates (C, D), positive (B,) indices into C. The mask removes accidental
    hits (the same item sampled again as a negative), which would otherwise be pushed away.
    """
    logits = queries @ candidates.T / tau  # (B, C)
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, positive)


def multi_positive_softmax(
    queries: torch.Tensor, candidates: torch.Tensor, positives: torch.Tensor, tau: float
) -> torch.Tensor:
    """Mean of -log( sum_{j in P_i} exp(s_ij) / sum_j exp(s_ij) ), s = q . c / tau.

    ``positives`` (B, C) bool marks every candidate that counts as positive for query i (L_cate:
    every candidate item of the tag's category). Rows without a positive are skipped.
    """
    logits = queries @ candidates.T / tau  # (B, C)
    valid = positives.any(dim=1)
    if not valid.any():
        return logits.sum() * 0.0
    pos = torch.logsumexp(logits.masked_fill(~positives, float("-inf")), dim=1)
    return (torch.logsumexp(logits, dim=1) - pos)[valid].mean()


def recgpt_loss(
    l_col: torch.Tensor, l_tag: torch.Tensor, l_cate: torch.Tensor, alpha: float, weight: float = 1.0
) -> torch.Tensor:
    """L_col + weight * (alpha * L_tag + (1 - alpha) * L_cate); weight = 1 is the paper's form."""
    return l_col + weight * (alpha * l_tag + (1.0 - alpha) * l_cate)
