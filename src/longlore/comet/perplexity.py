"""Next-chunk perplexity: CoMeT memory vs the same backbone without memory vs full attention.

For a span of k + 1 chunks, every method scores the same tokens, chunk k's tokens 2..n (the first
token of a chunk is left out because "no memory" has nothing to predict it from):

* ``comet``: chunks 0..k-1 written into memory, chunk k read with it (one forward, no grad);
* ``no_memory``: the backbone on chunk k alone;
* ``full``: the backbone with full attention over the whole span.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from longlore.comet.layout import IGNORE
from longlore.comet.model import CometModel

METHODS = ("comet", "no_memory", "full")


@torch.no_grad()
def next_chunk_nll(
    model: CometModel, ids: list[int], methods: tuple[str, ...] = METHODS
) -> dict[str, tuple[float, int]]:
    """(summed NLL, scored tokens) of the last chunk of ``ids`` for each of ``methods``."""
    size = model.config.chunk_size
    start = (len(ids) - 1) // size * size  # the last chunk (fixed-size chunking)
    last = ids[start:]
    labels = [IGNORE] * len(ids)
    labels[start + 1 :] = last[1:]  # shifted inside build_layouts: position p predicts labels[p + 1]
    results = {}
    if "comet" in methods:
        out = model.forward(model.prepare([ids], [labels], sizes=[[size] * (start // size) + [len(last)]]))
        results["comet"] = (float(out.loss_sum), out.n_tokens)
    base = model.base_model
    for name, context in (("no_memory", last), ("full", ids)):
        if name not in methods:
            continue
        logits = base(input_ids=torch.tensor([context], device=model.device)).logits[0, -len(last) : -1].float()
        target = torch.tensor(last[1:], device=model.device)
        results[name] = (float(F.cross_entropy(logits, target, reduction="sum")), len(last) - 1)
    return results


def perplexities(totals: dict[str, tuple[float, int]]) -> dict[str, float]:
    return {k: round(math.exp(s / max(1, n)), 4) for k, (s, n) in totals.items()}
