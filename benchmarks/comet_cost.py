"""CoMeT cost vs length: peak RSS and wall time, CoMeT streaming vs plain full attention, same backbone.

    .venv/bin/python benchmarks/comet_cost.py               # 4K -> 64K tokens, SmolLM2-135M backbone
    .venv/bin/python benchmarks/comet_cost.py --lengths 4096,65536,1048576 --full-max 65536   # to 1M
    .venv/bin/python benchmarks/comet_cost.py --smoke       # tiny model, 1K-4K tokens, seconds

Each point runs in a fresh subprocess (its own peak RSS). Full attention stops at its first
failure (out of memory or --timeout). Resumes points already in the JSON. Writes
runs/comet/cost[_smoke].json (pass --out for another path) and a .png (RSS and time vs length) beside it.
"""

import argparse
import sys
from pathlib import Path

from longlore.comet.cost import run_cost_benchmark

FULL = {
    "model": "smollm2-135m",
    "lengths": "4096,16384,65536",  # 262144,1048576 on request (minutes to an hour per point)
    "num_global": 64,
    "temp_stride": 8,
    "temp_budget": 256,
    "chunk_size": 2048,
    "rank": 8,
}
SMOKE = dict(FULL, model="tiny-llama", lengths="1024,2048,4096", num_global=8, temp_budget=32, chunk_size=256, rank=2)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument("--full-max", type=int, default=None, help="Skip full attention above this length.")
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds per point before it counts as failed.")
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None, help=f"default {value}")
    args = parser.parse_args()
    preset = SMOKE if args.smoke else FULL
    opts = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in preset.items()}
    out = Path(args.out or f"runs/comet/cost{'_smoke' if args.smoke else ''}.json")
    comet = {k: opts[k] for k in ("num_global", "temp_stride", "temp_budget", "chunk_size", "rank")}
    result = run_cost_benchmark(
        [int(x) for x in opts["lengths"].split(",")],
        opts["model"],
        comet,
        out,
        full_max=args.full_max,
        timeout=args.timeout,
        command=" ".join([sys.executable, *sys.argv]),
    )
    print(result.get("summary"))
