"""What the probe measures: reconstruction quality, input entropy, and how the two correlate.

* Reconstruction BLEU: sacreBLEU sentence BLEU of the greedy reconstruction against the input text,
  0-100 (``13a`` tokenisation, ``zh`` where the reference holds CJK characters).
* Reconstruction token F1: bag-of-tokens F1 between the reconstruction's and the input's token ids
  (the decoder's tokenizer), 0-100: tokens are the unit the autoencoder must carry, and the measure
  is the same for prose, Chinese, code, math and random tokens.
* Mean token NLL and mean predictive entropy of a text under a causal LM: for positions t = 1..T-1,
  ``-log p(x_t | x_<t)`` and ``H(p(. | x_<t)) = -sum_v p_v log p_v`` (nats), averaged over positions.
* Pearson and Spearman correlations (scipy) with p-values and percentile-bootstrap CIs over samples.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def reconstruction_bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU (0-100) of ``hypothesis`` against ``reference``; CJK references use sacreBLEU's zh tokenizer."""
    import sacrebleu

    if not hypothesis.strip() or not reference.strip():
        return float(hypothesis.strip() == reference.strip()) * 100.0
    tokenize = "zh" if _CJK.search(reference) else "13a"
    return float(sacrebleu.sentence_bleu(hypothesis, [reference], tokenize=tokenize).score)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0-100); the zh tokenizer if any reference holds CJK characters."""
    import sacrebleu

    tokenize = "zh" if any(_CJK.search(r) for r in references) else "13a"
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score)


def token_f1(hypothesis_ids: Sequence[int], reference_ids: Sequence[int]) -> float:
    """Bag-of-tokens F1 (0-100) between two token-id sequences; 100 for equal multisets, 0 if either is empty."""
    if not hypothesis_ids or not reference_ids:
        return 100.0 if not hypothesis_ids and not reference_ids else 0.0
    overlap = sum((Counter(hypothesis_ids) & Counter(reference_ids)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(hypothesis_ids), overlap / len(reference_ids)
    return 100.0 * 2 * precision * recall / (precision + recall)


def nll_and_entropy(
    logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence mean token NLL and mean predictive entropy from a causal LM's logits.

    Args:
        logits: (B, T, V) the LM's outputs for ``input_ids``.
        input_ids: (B, T), mask: (B, T) with 1 on real tokens (right padding).
    Returns:
        nll (B,), entropy (B,): averages over the T-1 predicted positions of each row (nats).
    """
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V): position t predicts t+1
    nll = -logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    entropy = -(logp.exp() * logp).sum(-1)  # (B, T-1)
    valid = (mask[:, 1:] * mask[:, :-1]).to(nll.dtype)
    count = valid.sum(1).clamp(min=1)
    return (nll * valid).sum(1) / count, (entropy * valid).sum(1) / count


@torch.no_grad()
def token_statistics(
    model: torch.nn.Module, sequences: Sequence[Sequence[int]], batch_size: int = 8, amp_bf16: bool = False
) -> list[dict[str, float]]:
    """``{"nll", "entropy"}`` of each token sequence under a causal LM (see :func:`nll_and_entropy`)."""
    import contextlib

    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(sequences), batch_size):
        chunk = [list(s) for s in sequences[start : start + batch_size]]
        width = max(len(s) for s in chunk)
        ids = torch.tensor([s + [0] * (width - len(s)) for s in chunk], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in chunk], device=device)
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp_bf16 else contextlib.nullcontext()
        with ctx:
            logits = model(input_ids=ids, attention_mask=mask).logits
        nll, entropy = nll_and_entropy(logits, ids, mask)
        rows += [{"nll": float(a), "entropy": float(b)} for a, b in zip(nll, entropy)]
    return rows


def _ci(stat: Any, x: np.ndarray, y: np.ndarray, n_resamples: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        idx = rng.integers(0, x.size, size=x.size)
        value = stat(x[idx], y[idx])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return [float("nan"), float("nan")]
    low, high = np.quantile(values, [0.025, 0.975])
    return [float(low), float(high)]


def correlation(x: Sequence[float], y: Sequence[float], n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Pearson and Spearman correlation of ``x`` with ``y``: ``{"pearson": {r, p, ci}, "spearman": {...}, "n"}``.

    r and p come from scipy; ``ci`` is the 95% percentile bootstrap over (x, y) pairs.
    """
    from scipy import stats

    x_arr, y_arr = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    out: dict[str, Any] = {"n": int(x_arr.size)}
    for name, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        if x_arr.size < 3 or np.ptp(x_arr) == 0 or np.ptp(y_arr) == 0:
            out[name] = {"r": float("nan"), "p": float("nan"), "ci": [float("nan"), float("nan")]}
            continue
        result = fn(x_arr, y_arr)
        r, p = float(result[0]), float(result[1])

        def stat(a: np.ndarray, b: np.ndarray, fn: Any = fn) -> float:
            if np.ptp(a) == 0 or np.ptp(b) == 0:
                return float("nan")
            return float(fn(a, b)[0])

        out[name] = {"r": r, "p": p, "ci": _ci(stat, x_arr, y_arr, n_resamples, seed)}
    return out


def standardize_within(values: Sequence[float], groups: Sequence[str]) -> np.ndarray:
    """z-scores computed within each group (so a pooled correlation reflects within-group variation only)."""
    values_arr = np.asarray(values, dtype=np.float64)
    out = np.zeros_like(values_arr)
    groups_arr = np.asarray(groups)
    for group in dict.fromkeys(groups):
        idx = groups_arr == group
        std = values_arr[idx].std()
        out[idx] = (values_arr[idx] - values_arr[idx].mean()) / (std if std > 0 else 1.0)
    return out
