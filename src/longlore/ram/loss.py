"""RAM's losses: answer NLL (computed by the decoder) plus a multi-positive InfoNCE that teaches
the encoder which segments hold the answer."""

from __future__ import annotations

import torch


def multi_positive_infonce(scores: torch.Tensor, positives: torch.Tensor, temperature: float) -> torch.Tensor:
    """-log( sum_{i in pos} e^{s_i / t} / sum_i e^{s_i / t} ) for one sample.

    Args:
        scores: (N,) cosine similarities between the query and each segment.
        positives: (N,) bool, True for segments that hold the answer.
        temperature: t (0.05 in the paper).
    Returns: a scalar; zero-size positives must be filtered by the caller (averaged over samples
    with at least one positive).
    """
    logits = scores / temperature
    return torch.logsumexp(logits, dim=0) - torch.logsumexp(logits[positives], dim=0)
