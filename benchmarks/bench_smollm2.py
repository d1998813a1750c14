"""SmolLM2-135M-Instruct on ECKGBench, ConceptMath and ChineseEcomQA under the official protocols.

Run (the recorded run; two processes may run different --parts side by side):
  nice -n 10 .venv/bin/python benchmarks/bench_smollm2.py --parts eckgbench_2shot conceptmath ... \\
      --out-dir benchmarks/results/bench_smollm2 --summary benchmarks/results/bench_smollm2.json
Defaults write under runs/ (never into benchmarks/results). Each part writes <out-dir>/<part>/
{results.json, report.md, *.png, part.json}; the per-sample JSONL (they quote benchmark items) go
to runs/bench_smollm2_samples/<part>/. The summary JSON is rebuilt from every finished part.json,
with wall and CPU seconds per part, and plotted beside it (<summary>.png). Requests are cached in
--cache, so an interrupted run resumes where it stopped.

Protocols (defaults of `longlore bench run`): ECKGBench the official 2-shot prompt, greedy, 8 new
tokens, repetition penalty 1.1, cut at the first blank line; its knowledge boundary on the raw
prompt, 5 samples at T=0.2; ConceptMath zero-shot (and the official 5 exemplars as a second part);
ChineseEcomQA graded by SmolLM2 itself through Chinese-SimpleQA's judge template and parser (the
judge-free fallback grade beside it, labelled), calibration through its confidence template.
Shared prompt prefixes (judge template, few-shot system prompts) are computed once
(--share-prefix); everything else runs in batches of 8.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from longlore.bench.config import BenchConfig
from longlore.bench.prefix import SharedPrefixModel
from longlore.bench.report import write_run
from longlore.bench.runner import evaluate
from longlore.core.backends import CachedTextModel, HFTextModel
from longlore.core.io import read_json, save_figure, write_json

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m"

# part -> (tasks, items per task, extra BenchConfig fields). Sized by timing small pieces first
# (see the issue-15 note): with SmolLM2 on one CPU thread, prompt tokens cost ~5 ms each and a
# decoding step ~20-50 ms, so the Chinese prompts (1.5-3 tokens per character) and long
# generations dominate.
PARTS: dict[str, tuple[list[str], int, dict]] = {
    "eckgbench_2shot": (["eckgbench/main"], 200, {}),
    "eckgbench_boundary": (["eckgbench/main_boundary"], 200, {}),
    # Diagnosis of the official 2-shot figure: the same prompts without the repetition penalty, which
    # (as in transformers and vLLM) also penalises every token of the prompt, the options included.
    "eckgbench_2shot_rp1": (["eckgbench/main"], 40, {"repetition_penalty": 1.0}),
    "eckgbench_mc": (["eckgbench/main_mc"], 100, {}),
    "eckgbench_0shot": (["eckgbench/main"], 200, {"shots": 0}),
    "conceptmath": (["conceptmath"], 50, {"max_new_tokens": 128}),
    "conceptmath_5shot": (["conceptmath"], 10, {"shots": 5, "max_new_tokens": 256}),
    "chineseecomqa": (["chineseecomqa"], 20, {"judge": "self"}),
    # The four sub-concepts the recorded `chineseecomqa` part finished before it was stopped (its
    # answers and judge replies are in the request cache); the other six did not fit the CPU budget.
    "chineseecomqa_4of10": ([f"chineseecomqa/{c}" for c in ("IC", "IDC", "CC", "BC")], 20, {"judge": "self"}),
    # The same judge replies read by the robust parser (a standalone letter or the Chinese label)
    # instead of the official one (the first A/B/C anywhere, e.g. the "A:" of an echoed template).
    "chineseecomqa_4of10_robust": (
        [f"chineseecomqa/{c}" for c in ("IC", "IDC", "CC", "BC")],
        20,
        {"judge": "self", "judge_parser": "robust"},
    ),
    "chineseecomqa_calibration": (["chineseecomqa/calibration"], 40, {"judge": "self"}),
}


# Said beside a part's figures in the summary (how the part was produced, when not in one go).
NOTES = {
    "chineseecomqa": "all 10 sub-concepts x 20 items; IC, IDC, CC and BC were read back from the previous "
    "session's request cache (see chineseecomqa_4of10), so cpu_seconds counts the other six only. Self-judged "
    "through the official template: SmolLM2 as judge echoes the template's A:/B:/C: list, which the parser reads "
    "as CORRECT, so acc is the echo, not knowledge; acc_fallback (judge-free match) is the honest figure",
    "eckgbench_boundary": "the first 30 items were computed by a 30-item run of the same command (57.7 s of CPU) "
    "and read back from its request cache here; cpu_seconds counts the other 170",
    "chineseecomqa_4of10_robust": "no model compute: the judge prompts are those of chineseecomqa_4of10 (cache hits); "
    "only the parser differs",
    "eckgbench_2shot": "run by the previous session's process (the code of commit 5b03581 with this script's sizes; "
    "it recorded no command); this commit builds the same 200 prompts: re-reading them hit the request cache for all",
    "chineseecomqa_4of10": "the answers and judge replies were computed by the `chineseecomqa` part of the previous "
    "session's run (stopped after 4 of 10 sub-concepts, before it recorded its CPU time) and read back from the "
    "request cache here, so cpu_seconds is only the re-reading; the other six sub-concepts (estimated from timed "
    "pieces at ~150-200 s of CPU each for 20 answers + 20 judge prompts) did not fit the CPU budget",
}


# Parts of PARTS without a recorded result, and why (written into the summary).
NOT_RUN = {
    "eckgbench_boundary": "stopped before it started (session wall time); measured earlier at ~4 s of CPU per item",
    "eckgbench_mc": "not run this session (CPU budget)",
    "eckgbench_0shot": "not run this session (CPU budget)",
    "conceptmath_5shot": "not run this session (CPU budget)",
    "chineseecomqa": "6 of 10 sub-concepts not reached (see chineseecomqa_4of10); est. ~150-200 s of CPU each",
    "chineseecomqa_calibration": "not run this session (CPU budget)",
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary_plot(parts: dict, path: Path) -> None:
    """One bar per task of every part: the primary metric with its 95% bootstrap interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for name, part in parts.items():
        for task, metrics in part["results"].items():
            for key in ("acc", "hit_rate"):
                if f"{key},none" in metrics:
                    low, high = metrics.get(f"{key}_ci95,none") or [metrics[f"{key},none"]] * 2
                    rows.append((f"{name}: {task.split('/')[-1]} ({key})", metrics[f"{key},none"], low, high))
                    break
            if "acc_fallback,none" in metrics:  # the judge-free grade of the same answers, beside the judge's
                rows.append(
                    (f"{name}: {task.split('/')[-1]} (judge-free fallback)", metrics["acc_fallback,none"], None, None)
                )
        for group, values in part.get("groups", {}).items():
            rows.append((f"{name}: {group} (macro mean)", values["acc,none"], None, None))
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.5))
    ax.barh(
        [r[0] for r in rows],
        [r[1] for r in rows],
        xerr=[
            [r[1] - r[2] if r[2] is not None else 0 for r in rows],
            [r[3] - r[1] if r[3] is not None else 0 for r in rows],
        ],
        color="#4c72b0",
    )
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy / hit-rate (95% bootstrap CI)")
    ax.set_title("SmolLM2-135M-Instruct, official protocols")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "bench_smollm2")
    parser.add_argument("--summary", type=Path, default=ROOT / "runs" / "bench_smollm2.json")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench_smollm2_cache.sqlite")
    parser.add_argument("--data", default=None, help="benchmark data folder (default: the shipped data)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--share-prefix", type=int, default=128, help="min shared prompt tokens to reuse (0: off)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start_cpu = cpu_seconds()
    wrapped = None
    if args.parts:  # `--parts` alone only rebuilds the summary from the finished parts
        inner = HFTextModel.from_spec(MODEL, batch_size=args.batch_size)
        wrapped = SharedPrefixModel(inner, min_shared=args.share_prefix) if args.share_prefix else inner
        model = CachedTextModel(wrapped, args.cache)
    command = " ".join([Path(sys.executable).name, *sys.argv])
    for name in args.parts:
        tasks, limit, extra = PARTS[name]
        wall, cpu = time.time(), cpu_seconds()
        config = BenchConfig(
            tasks=tasks,
            model=MODEL,
            limit=limit,
            seed=0,
            batch_size=args.batch_size,
            share_prefix=args.share_prefix,
            data=args.data,
            **extra,
        )
        hits, misses = model.hits, model.misses
        results, samples = evaluate(config, model=model, judge=model if extra.get("judge") == "self" else None)
        results["config"]["command"] = command
        samples_dir = ROOT / "runs" / "bench_smollm2_samples" / name
        write_run(args.out_dir / name, results, samples, overwrite=True, samples_dir=samples_dir)
        part = {
            "tasks": tasks,
            "limit_per_task": limit,
            "settings": extra,
            "n": {t: v["effective"] for t, v in results["n-samples"].items()},
            "results": {t: {k: v for k, v in m.items() if k.endswith(",none")} for t, m in results["results"].items()},
            "groups": results["groups"],
            "ecomqa_grader": results["config"]["ecomqa_grader"],
            "wall_seconds": round(time.time() - wall, 1),
            "cpu_seconds": round(cpu_seconds() - cpu, 1),
            "requests": {"cache_hits": model.hits - hits, "computed": model.misses - misses},
            "command": command,
            "commands": "each part records the command that ran it (parts.<name>.command)",
        }
        write_json(args.out_dir / name / "part.json", part, overwrite=True)
        print(f"[{name}] done: {part['wall_seconds']} s wall, {part['cpu_seconds']} s CPU", flush=True)
    parts = {}
    for name in PARTS:
        path = args.out_dir / name / "part.json"
        if path.exists():
            parts[name] = read_json(path) | ({"note": NOTES[name]} if name in NOTES else {})
    summary = {
        "command": command,
        "model": MODEL,
        "protocols": "longlore bench defaults = the official protocols (docs/bench.md); ChineseEcomQA judged by "
        "SmolLM2-135M-Instruct itself through Chinese-SimpleQA's grader template and parser; acc_fallback is the "
        "judge-free normalised match of the same answers (not the official protocol)",
        "seed": 0,
        "batch_size": args.batch_size,
        "share_prefix_min_tokens": args.share_prefix,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "note": "shared 2-core machine, other developers' jobs alongside (load 10-17): wall >> CPU time",
        },
        "cpu_seconds_total": round(sum(p["cpu_seconds"] for p in parts.values()), 1),
        "wall_seconds_total": round(sum(p["wall_seconds"] for p in parts.values()), 1),
        "cpu_seconds_this_process": round(cpu_seconds() - start_cpu, 1),
        "prefix_tokens_saved_this_process": getattr(wrapped, "prefix_tokens_saved", 0) if wrapped else 0,
        "parts": parts,
        "parts_not_run": {name: why for name, why in NOT_RUN.items() if name not in parts},
    }
    write_json(args.summary, summary, overwrite=True)
    summary_plot(parts, args.summary.with_suffix(".png"))
    print(f"wrote {args.summary}", flush=True)


if __name__ == "__main__":
    main()
