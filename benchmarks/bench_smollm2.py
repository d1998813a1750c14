"""SmolLM2-135M-Instruct on ConceptMath, ECKGBench and ChineseEcomQA, on a fixed stated subset.

Run:  nice -n 10 .venv/bin/python benchmarks/bench_smollm2.py [--data DIR]
Writes benchmarks/results/bench_smollm2/<part>/{results.json,report.md,*.png}, the summary
benchmarks/results/bench_smollm2.json and the per-sample JSONL (which quote benchmark items, so
they stay out of the repository) under runs/bench_smollm2_samples/<part>/. Requests are cached in
runs/bench_smollm2_cache.sqlite, so an interrupted run resumes where it stopped.

Subset (a full run is many hours on a shared 2-core CPU): seeded samples (seed 0, kept in file
order; see PARTS) of 25 items per ConceptMath split (new tokens capped at 96), 200 ECKGBench
main items 0-shot, 100 for 2-shot and for log-likelihood, 40 for the knowledge boundary
(5 samples, T=0.2), 5 per ChineseEcomQA sub-concept (new tokens capped at 32; no judge:
normalised-match fallback) and 20 for calibration. Seeded subsets are nested, so a smaller
limit reruns from the cache of a larger one.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

from longlore.bench.config import BenchConfig
from longlore.bench.report import write_run
from longlore.bench.runner import evaluate
from longlore.core.backends import load_text_model
from longlore.core.io import read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "bench_smollm2"
MODEL = "smollm2-135m"

# (part, tasks, limit per task, shots, new-token cap, batch size). Sized for ~60 min on a
# shared 2-core CPU: SmolLM2's tokenizer spends ~1.5 tokens per Chinese character, so the
# Chinese prompts cost far more than their length suggests (PC prompts are ~6.5K tokens).
PARTS = [
    ("eckgbench_0shot", ["eckgbench/main"], 200, 0, None, 8),
    ("eckgbench_mc", ["eckgbench/main_mc"], 100, 0, None, 8),
    ("eckgbench_2shot", ["eckgbench/main"], 100, 2, None, 8),
    ("eckgbench_boundary", ["eckgbench/main_boundary"], 40, 0, None, 4),
    ("conceptmath", ["conceptmath"], 25, 0, 96, 8),
    ("chineseecomqa", ["chineseecomqa"], 5, 0, 32, 2),
    ("chineseecomqa_calibration", ["chineseecomqa/calibration"], 20, 0, 64, 4),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="benchmark data folder")
    parser.add_argument("--parts", nargs="*", default=[p[0] for p in PARTS])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; on a loaded shared 2-core machine 1 thread ran 3.3x "
        "faster than 2 (8 ECKGBench prompts: 31 s vs 102 s)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache = ROOT / "runs" / "bench_smollm2_cache.sqlite"
    model = load_text_model(MODEL, batch_size=8, cache=cache)
    summary: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "model": MODEL,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "note": "shared machine: other jobs ran alongside (load ~8-12)",
        },
        "seed": 0,
        "parts": {},
    }
    summary_path = ROOT / "benchmarks" / "results" / "bench_smollm2.json"
    if summary_path.exists():  # keep the parts of an earlier (partial) run
        summary["parts"] = read_json(summary_path).get("parts", {})
    for name, tasks, limit, shots, cap, batch in PARTS:
        if name not in args.parts:
            continue
        model.inner.batch_size = batch
        start = time.time()
        config = BenchConfig(
            tasks=tasks,
            model=MODEL,
            limit=limit,
            shots=shots,
            seed=0,
            max_new_tokens=cap,
            batch_size=batch,
            data=args.data,
        )
        results, samples = evaluate(config, model=model)
        results["config"]["command"] = summary["command"]
        # Samples quote benchmark items, which stay out of the repository: they go under runs/.
        write_run(
            OUT / name, results, samples, overwrite=True, samples_dir=ROOT / "runs" / "bench_smollm2_samples" / name
        )
        summary["parts"][name] = {
            "tasks": tasks,
            "limit_per_task": limit,
            "shots": shots,
            "new_token_cap": cap,
            "wall_seconds": round(time.time() - start, 1),
            "results": {t: {k: v for k, v in m.items() if k.endswith(",none")} for t, m in results["results"].items()},
            "groups": results["groups"],
            "n": {t: v["effective"] for t, v in results["n-samples"].items()},
        }
        summary["request_cache"] = {"hits": model.hits, "misses": model.misses}
        write_json(summary_path, summary, overwrite=True)
        print(f"[{name}] done in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
