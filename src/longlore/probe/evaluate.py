"""Per-sample evaluation with a resumable JSONL cache: reconstruction quality and token statistics."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from longlore.core.metrics import bootstrap_ci
from longlore.core.progress import track
from longlore.probe.data import Sample
from longlore.probe.metrics import corpus_bleu, reconstruction_bleu, token_f1, token_statistics
from longlore.probe.model import ProbeAutoencoder
from longlore.probe.trainer import autocast, cpu_seconds


def _read_cache(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by an interruption: recomputed
                continue
            done[(row["distribution"], row["index"])] = row
    return done


def _append(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        handle.flush()
        os.fsync(handle.fileno())


def cached_per_sample(
    samples: Sequence[Sample],
    cache: str | Path,
    compute: Callable[[list[Sample]], list[dict[str, Any]]],
    batch_size: int,
    description: str,
) -> list[dict[str, Any]]:
    """Rows for ``samples`` (in order), computing only those missing from the JSONL ``cache`` in batches.

    The cache also keeps the CPU seconds spent on each batch (``cpu_seconds`` per row, shared out),
    so a study can total its evaluation cost across interrupted sessions.
    """
    cache = Path(cache)
    done = _read_cache(cache)
    todo = [s for s in samples if (s.distribution, s.index) not in done]
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    for batch in track(batches, description, total=len(batches)):
        start = cpu_seconds()
        rows = compute(batch)
        share = (cpu_seconds() - start) / len(batch)
        for sample, row in zip(batch, rows):
            row.update(distribution=sample.distribution, index=sample.index, cpu_seconds=round(share, 3))
            done[(sample.distribution, sample.index)] = row
        _append(cache, rows)
    return [done[(s.distribution, s.index)] for s in samples]


def reconstruction_rows(probe: ProbeAutoencoder, amp_bf16: bool = False) -> Callable[[list[Sample]], list[dict]]:
    """A ``compute`` for :func:`cached_per_sample`: greedy reconstruction, BLEU and token F1 per sample."""
    tokenizer = probe.tokenizer

    def compute(batch: list[Sample]) -> list[dict[str, Any]]:
        with autocast(amp_bf16, probe.device):
            outputs = probe.reconstruct([s.ids for s in batch])
        rows = []
        for sample, output in zip(batch, outputs):
            reference, hypothesis = tokenizer.decode(sample.ids), tokenizer.decode(output)
            rows.append(
                {
                    "bleu": reconstruction_bleu(hypothesis, reference),
                    "f1": token_f1(output, sample.ids),
                    "exact": float(output == sample.ids),
                    "reference": reference,
                    "hypothesis": hypothesis,
                }
            )
        return rows

    return compute


def statistics_rows(model: Any, amp_bf16: bool = False) -> Callable[[list[Sample]], list[dict]]:
    """A ``compute`` for :func:`cached_per_sample`: mean token NLL and predictive entropy under ``model``."""

    def compute(batch: list[Sample]) -> list[dict[str, Any]]:
        return token_statistics(model, [s.ids for s in batch], batch_size=len(batch), amp_bf16=amp_bf16)

    return compute


def summarize_quality(rows: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Mean BLEU / F1 / exact-match with 95% bootstrap CIs, and corpus BLEU, of a set of rows."""
    out: dict[str, Any] = {"n": len(rows)}
    for key in ("bleu", "f1", "exact"):
        mean, low, high = bootstrap_ci([r[key] for r in rows], seed=seed)
        out[key] = {"mean": round(mean, 3), "ci": [round(low, 3), round(high, 3)]}
    out["corpus_bleu"] = round(corpus_bleu([r["hypothesis"] for r in rows], [r["reference"] for r in rows]), 3)
    return out


def by_distribution(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["distribution"], []).append(row)
    return groups


def paired_difference(a: Sequence[float], b: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """Mean of ``a - b`` over paired samples with a 95% bootstrap CI."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mean, low, high = bootstrap_ci(diff.tolist(), seed=seed)
    return {"mean": round(mean, 3), "ci": [round(low, 3), round(high, 3)], "n": int(diff.size)}
