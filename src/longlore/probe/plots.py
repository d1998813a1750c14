"""Figures of a finished study: quality vs entropy, matched vs mismatched, quality per compression ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from longlore.core.io import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_scatter(results: dict[str, Any], key: str, path: Path) -> Path | None:
    """Quality (BLEU, then token F1) vs per-sample ``key`` (nll or entropy): one row per quality metric and
    model that measured ``key`` (trained encoder, decoder), one panel per distribution plus all pooled, each
    with its least-squares line and Pearson r."""
    samples = results.get("samples") or []
    sources = [src for src in ("encoder", "decoder") if any(f"{src}_{key}" in s for s in samples)]
    if not sources:
        return None
    plt = _plt()
    names = [d for d in results["quality"] if d != "all"]
    panels = [(metric, src) for metric in ("bleu", "f1") for src in sources]
    fig, axes = plt.subplots(
        len(panels), len(names) + 1, figsize=(3.0 * (len(names) + 1), 3.0 * len(panels)), squeeze=False
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (metric, src) in enumerate(panels):
        field = f"{src}_{key}"
        for col, name in enumerate([*names, "all"]):
            ax = axes[row, col]
            rows = [s for s in samples if field in s and (name == "all" or s["distribution"] == name)]
            x = np.array([s[field] for s in rows])
            y = np.array([s[metric] for s in rows])
            for i, dist in enumerate(names):
                if name in ("all", dist):
                    part = [s for s in rows if s["distribution"] == dist]
                    ax.scatter(
                        [s[field] for s in part],
                        [s[metric] for s in part],
                        s=6,
                        alpha=0.5,
                        color=colors[i % len(colors)],
                        label=dist,
                    )
            if name == "all":
                ax.legend(fontsize=6)
            title = f"{name}, n={x.size}"
            if x.size >= 3 and np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                grid = np.linspace(x.min(), x.max(), 20)
                ax.plot(grid, slope * grid + intercept, color="black", lw=1)
                if np.ptp(y) > 0:
                    title += f", r={np.corrcoef(x, y)[0, 1]:.2f}"
            ax.set_title(title, fontsize=8)
            ax.set_xlabel(f"{src} mean token {key} (nats)", fontsize=7)
            if col == 0:
                ax.set_ylabel(f"reconstruction {'BLEU' if metric == 'bleu' else 'token F1'}", fontsize=8)
    fig.suptitle(f"Reconstruction quality vs input {key} (rows: the model that measured it)", fontsize=10)
    fig.tight_layout()
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def plot_mismatch(results: dict[str, Any], path: Path) -> Path | None:
    """Matched vs mismatched BLEU and F1 per distribution, with 95% bootstrap CIs."""
    mismatch = results.get("mismatch") or {}
    if "matched" not in mismatch:
        return None
    plt = _plt()
    names = list(mismatch["matched"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    width = 0.38
    for ax, metric in zip(axes, ("bleu", "f1")):
        for j, arm in enumerate(("matched", "mismatched")):
            means = [mismatch[arm][d][metric]["mean"] for d in names]
            lows = [mismatch[arm][d][metric]["mean"] - mismatch[arm][d][metric]["ci"][0] for d in names]
            highs = [mismatch[arm][d][metric]["ci"][1] - mismatch[arm][d][metric]["mean"] for d in names]
            ax.bar(np.arange(len(names)) + (j - 0.5) * width, means, width, yerr=[lows, highs], capsize=2, label=arm)
        ax.set_xticks(np.arange(len(names)), names, fontsize=8)
        ax.set_ylabel(metric.upper())
        ax.legend(fontsize=8)
    fig.suptitle("Encoder/decoder pre-training mismatch (same decoder, same budget)", fontsize=10)
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def plot_ratios(results: dict[str, Any], path: Path) -> Path | None:
    """Mean BLEU per compression ratio, one line per distribution."""
    ratios = results.get("ratios") or {}
    if not ratios:
        return None
    plt = _plt()
    keys = sorted(ratios, key=int)
    names = list(ratios[keys[0]])
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name in names:
        ax.errorbar(
            [int(k) for k in keys],
            [ratios[k][name]["bleu"]["mean"] for k in keys],
            yerr=[
                [ratios[k][name]["bleu"]["mean"] - ratios[k][name]["bleu"]["ci"][0] for k in keys],
                [ratios[k][name]["bleu"]["ci"][1] - ratios[k][name]["bleu"]["mean"] for k in keys],
            ],
            marker="o",
            capsize=2,
            label=name,
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks([int(k) for k in keys], keys)
    ax.set_xlabel("compression ratio")
    ax.set_ylabel("reconstruction BLEU")
    ax.legend(fontsize=8)
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def plot_study(results: dict[str, Any], out_dir: Path, figure_dir: Path | None = None) -> list[Path]:
    """All figures of a study, as ``probe_*.png`` in ``figure_dir`` (default ``out_dir``)."""
    folder = Path(figure_dir or out_dir)
    made = [
        plot_scatter(results, "nll", folder / "probe_quality_vs_nll.png"),
        plot_scatter(results, "entropy", folder / "probe_quality_vs_entropy.png"),
        plot_mismatch(results, folder / "probe_mismatch.png"),
        plot_ratios(results, folder / "probe_ratios.png"),
    ]
    return [p for p in made if p is not None]
