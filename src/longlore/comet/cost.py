"""Cost vs input length: peak RSS and wall time of CoMeT streaming vs plain full attention.

Each (method, length) runs in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own.
CoMeT: stream the prompt through memory and pre-fill the last chunk (``generate_ids`` with one new
token). Full attention: one forward of the backbone over the whole prompt (SDPA, no KV cache
kept, logits of the last position only).
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from longlore.core.io import read_json, write_json
from longlore.core.progress import console


def measure(
    method: str,
    length: int,
    backbone: str,
    comet: dict[str, Any],
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
) -> dict[str, Any]:
    """Run one measurement in this process (call through :func:`measure_in_subprocess`)."""
    from longlore.comet.config import CometConfig
    from longlore.comet.model import CometModel
    from longlore.core.models import load_causal_lm

    base, tokenizer = load_causal_lm(backbone, seed=seed, device=device, dtype=dtype)
    model = CometModel(base, tokenizer, CometConfig(**comet)).eval() if method == "comet" else None
    ids = torch.randint(0, 1000, (length,), generator=torch.Generator().manual_seed(seed)).tolist()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.no_grad():
        if method == "comet":
            model.generate_ids([ids], max_new_tokens=1)
        else:
            base(input_ids=torch.tensor([ids], device=base.device), use_cache=False, logits_to_keep=1)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "method": method,
        "length": length,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "rss_after_load_mb": round(rss_before / 1024, 1),
    }


def measure_in_subprocess(
    method: str,
    length: int,
    backbone: str,
    comet: dict[str, Any],
    timeout: float,
    device: str = "cpu",
    dtype: str = "float32",
) -> dict:
    """A fresh interpreter per point; an out-of-memory kill or timeout is recorded, not raised."""
    code = (
        "import json,sys; from longlore.comet.cost import measure; "
        f"print(json.dumps(measure({method!r}, {length}, {backbone!r}, {comet!r}, device={device!r}, dtype={dtype!r})))"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"method": method, "length": length, "failed": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"method": method, "length": length, "failed": f"exit {proc.returncode}: {proc.stderr.strip()[-200:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cost_benchmark(
    lengths: list[int],
    backbone: str,
    comet: dict[str, Any],
    out: Path,
    full_max: int | None = None,
    timeout: float = 3600.0,
    command: str = "",
    device: str = "cpu",
    dtype: str = "float32",
) -> dict[str, Any]:
    """Measure CoMeT at every length and full attention until it fails (or passes ``full_max``);
    resumes points already in ``out``; writes JSON + a two-panel plot beside it."""
    result = read_json(out) if out.exists() else {}
    points = result.get("points", [])
    have = {(p["method"], p["length"]) for p in points}
    full_failed = any(p["method"] == "full" and "failed" in p for p in points)
    for length in lengths:
        for method in ("comet", "full"):
            if (method, length) in have or (method == "full" and (full_failed or (full_max and length > full_max))):
                continue
            console.print(f"{method} @ {length} tokens ...")
            point = measure_in_subprocess(method, length, backbone, comet, timeout, device, dtype)
            console.print(f"  {point}")
            points.append(point)
            full_failed |= method == "full" and "failed" in point
            result = {
                "command": command,
                "backbone": backbone,
                "comet": comet,
                "machine": platform.platform(),
                "cpu_threads": torch.get_num_threads(),
                "points": points,
            }
            write_json(out, result, overwrite=True)
    result["summary"] = summarize(points)
    write_json(out, result, overwrite=True)
    plot(points, out.with_suffix(".png"))
    return result


def summarize(points: list[dict]) -> dict[str, Any]:
    """Peak-memory ratio (longest / shortest CoMeT length) and time ratios between lengths."""
    ok = sorted((p for p in points if p["method"] == "comet" and "failed" not in p), key=lambda p: p["length"])
    if len(ok) < 2:
        return {}
    by_len = {p["length"]: p for p in ok}
    summary = {
        "comet_peak_rss_ratio_longest_vs_shortest": round(ok[-1]["peak_rss_mb"] / ok[0]["peak_rss_mb"], 3),
        "comet_lengths": [p["length"] for p in ok],
    }
    if 65536 in by_len and 1048576 in by_len:
        summary["comet_time_1M_over_64K"] = round(by_len[1048576]["seconds"] / by_len[65536]["seconds"], 2)
    summary["comet_time_longest_over_shortest"] = round(ok[-1]["seconds"] / ok[0]["seconds"], 2)
    full = [p for p in points if p["method"] == "full" and "failed" not in p]
    summary["full_attention_longest_ok"] = max((p["length"] for p in full), default=None)
    return summary


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longlore.core.io import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method, style in (("comet", "o-"), ("full", "s--")):
        ok = sorted((p for p in points if p["method"] == method and "failed" not in p), key=lambda p: p["length"])
        if ok:
            axes[0].plot([p["length"] for p in ok], [p["peak_rss_mb"] for p in ok], style, label=method)
            axes[1].plot([p["length"] for p in ok], [p["seconds"] for p in ok], style, label=method)
    for ax, label in zip(axes, ("peak RSS (MB)", "wall time (s)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("input tokens")
        ax.set_ylabel(label)
        ax.legend()
    axes[1].set_yscale("log")
    save_figure(fig, path)
    plt.close(fig)
