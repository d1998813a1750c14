"""Items/s of `bench run` (the runner it calls: prompts, generation, grading) with batch 1 vs 8.

Run:  nice -n 10 .venv/bin/python benchmarks/bench_throughput.py --out benchmarks/results/bench_throughput.json
(default --out under runs/). SmolLM2-135M-Instruct on 100 ConceptMath element_en items (seeded
subset, zero-shot, greedy, new tokens capped at --max-new-tokens), no request cache. Both batch
sizes run in the same process, interleaved chunk by chunk (batch 1 then batch 8 on the same 20
items, five times), so load from other jobs on a shared machine falls on both alike. Reported:
items per CPU-second (the work; `speedup_batch8` is its ratio) and items per wall-second beside it.
Greedy answers must be identical for both batch sizes (checked, recorded).
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from longlore.bench.config import BenchConfig
from longlore.bench.runner import evaluate
from longlore.core.backends import HFTextModel
from longlore.core.io import write_json

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_throughput.json")
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=20, help="items per interleaved chunk")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = HFTextModel.from_spec("smollm2-135m", batch_size=8)
    chunks = max(1, args.items // args.chunk)
    totals = {1: {"cpu": 0.0, "wall": 0.0, "responses": {}}, 8: {"cpu": 0.0, "wall": 0.0, "responses": {}}}
    for index in range(1, chunks + 1):
        for batch in (1, 8):
            model.batch_size = batch
            # Chunk = one shard of the seeded subset (the runner's own selection), run at this batch size.
            config = BenchConfig(
                tasks=["conceptmath/element_en"],
                model="smollm2-135m",
                limit=args.items,
                shard=f"{index}/{chunks}",
                seed=0,
                batch_size=batch,
                max_new_tokens=args.max_new_tokens,
            )
            wall, cpu = time.time(), cpu_seconds()
            _, samples = evaluate(config, model=model)
            totals[batch]["cpu"] += cpu_seconds() - cpu
            totals[batch]["wall"] += time.time() - wall
            totals[batch]["responses"].update({s["doc_id"]: s["response"] for s in samples["conceptmath/element_en"]})
        print(f"chunk {index}/{chunks}: {totals[1]['cpu']:.0f} s vs {totals[8]['cpu']:.0f} s CPU", flush=True)
    n = len(totals[8]["responses"])
    per = {
        b: {"items": n, "cpu_seconds": round(t["cpu"], 1), "wall_seconds": round(t["wall"], 1)}
        for b, t in totals.items()
    }
    for b in per:
        per[b]["items_per_cpu_second"] = round(n / totals[b]["cpu"], 4)
        per[b]["items_per_wall_second"] = round(n / totals[b]["wall"], 4)
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "what": f"longlore.bench.runner.evaluate (what `bench run` calls) on {n} ConceptMath element_en items, "
        f"zero-shot, greedy, max_new_tokens={args.max_new_tokens}, SmolLM2-135M-Instruct, no request cache",
        "batch_1": per[1],
        "batch_8": per[8],
        "speedup_batch8": round(per[8]["items_per_cpu_second"] / per[1]["items_per_cpu_second"], 3),
        "speedup_batch8_wall": round(per[8]["items_per_wall_second"] / per[1]["items_per_wall_second"], 3),
        "identical_responses": totals[1]["responses"] == totals[8]["responses"],
        "interleaving": f"chunks of {args.chunk} items, batch 1 then batch 8 on each",
        "machine": {
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "note": "shared 2-core machine with other jobs (load 10-17): wall time inflated; CPU time is the measure",
        },
        "seed": 0,
    }
    write_json(args.out, result, overwrite=True)
    print(result["speedup_batch8"], result["speedup_batch8_wall"], result["identical_responses"], flush=True)


if __name__ == "__main__":
    main()
