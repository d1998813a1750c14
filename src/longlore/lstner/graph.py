"""Label distributions and label graphs (LST-NER's bridge between the two label spaces).

For every target label ``y`` the label distribution ``p(Y_source | y)`` is the source tagger's
temperature-softened prediction, averaged over the target tokens gold-labelled ``y`` (first
sub-tokens only). The rows of the resulting (L_target, L_source) matrix are probability
distributions; on the source side the same procedure over source data gives (L_source, L_source).

Edge rule (our documented choice; the paper gives no formula we could verify): two labels of
the same space are linked with weight ``cos(p_i, p_j)`` when that similarity is at least
``threshold`` (rule ``"cosine"``), or to their ``k`` most similar labels (rule ``"knn"``,
symmetrised). The GCN uses the normalised adjacency with self-loops,
``D^-1/2 (A + I) D^-1/2`` (Kipf & Welling 2017).

Shapes: ``L`` labels of one space, ``S`` source labels, ``N`` tokens.
"""

from __future__ import annotations

import torch

from longlore.core.errors import LongloreError
from longlore.lstner.data import IGNORE

EDGE_RULES = ("cosine", "knn")


def label_distributions_from_logits(
    logits: torch.Tensor, labels: torch.Tensor, n_labels: int, temperature: float = 2.0
) -> torch.Tensor:
    """(L, S) mean of ``softmax(logits / T)`` over the tokens of each label.

    Args:
        logits: (N, S) source-model logits for N tokens (or any leading shape, flattened).
        labels: (N,) the tokens' target label ids; ``IGNORE`` entries are skipped.
        n_labels: L, the number of target labels.
        temperature: T > 1 softens the source predictions so that runner-up labels count.

    Labels with no tokens get the uniform distribution (no evidence either way).
    """
    S = logits.shape[-1]
    logits, labels = logits.reshape(-1, S), labels.reshape(-1)
    keep = labels != IGNORE
    probs = torch.softmax(logits[keep] / temperature, dim=-1)  # (N', S)
    onehot = torch.nn.functional.one_hot(labels[keep], n_labels).to(probs.dtype)  # (N', L)
    sums = onehot.T @ probs  # (L, S)
    counts = onehot.sum(0)[:, None]  # (L, 1)
    uniform = torch.full_like(sums, 1.0 / S)
    return torch.where(counts > 0, sums / counts.clamp_min(1.0), uniform)


@torch.no_grad()
def label_distributions(
    source_model, batches: list[dict[str, torch.Tensor]], n_labels: int, temperature: float = 2.0
) -> torch.Tensor:
    """Run the (frozen) source tagger over ``batches`` whose ``labels`` are in the target space."""
    was_training = source_model.training
    source_model.eval()
    all_logits, all_labels = [], []
    for batch in batches:
        all_logits.append(source_model(batch["input_ids"], batch["attention_mask"]).reshape(-1, source_model.n_labels))
        all_labels.append(batch["labels"].reshape(-1))
    source_model.train(was_training)
    return label_distributions_from_logits(torch.cat(all_logits), torch.cat(all_labels), n_labels, temperature)


def build_adjacency(dist: torch.Tensor, rule: str = "cosine", threshold: float = 0.3, k: int = 2) -> torch.Tensor:
    """(L, L) symmetric edge weights between labels from their (L, S) distributions; zero diagonal."""
    if rule not in EDGE_RULES:
        raise LongloreError(f"edge_rule '{rule}' is unknown; use one of {list(EDGE_RULES)}")
    unit = torch.nn.functional.normalize(dist, dim=-1)
    sim = (unit @ unit.T).clamp_min(0.0)  # (L, L), in [0, 1] as distributions are non-negative
    sim = sim - torch.diag_embed(torch.diagonal(sim))
    if rule == "cosine":
        return torch.where(sim >= threshold, sim, torch.zeros_like(sim))
    k = min(k, sim.shape[0] - 1)
    top = torch.topk(sim, k, dim=-1).indices
    mask = torch.zeros_like(sim, dtype=torch.bool).scatter_(1, top, True)
    mask = mask | mask.T  # symmetrise: an edge if either end picks the other
    return torch.where(mask, sim, torch.zeros_like(sim))


def normalize_adjacency(adj: torch.Tensor) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` (Kipf & Welling), the GCN propagation matrix."""
    a = adj + torch.eye(adj.shape[0], dtype=adj.dtype, device=adj.device)
    d = a.sum(-1).rsqrt()
    return d[:, None] * a * d[None, :]
