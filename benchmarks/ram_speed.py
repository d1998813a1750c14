"""RAM speed benchmark: end-to-end latency and TTFT vs full context at 4K-32K tokens.

    .venv/bin/python benchmarks/ram_speed.py [--lengths 4096,8192,16384,32768] [--keep-ratio 0.125] \
        [--out benchmarks/results/ram_speed.json]

Writes runs/ram_speed.json (+ .png) by default; resumes lengths already measured. The RAM is the
paper's form with RAMConfig defaults (speed does not depend on trained weights), or --ram-dir.
"""

import argparse

from longlore.ram.speed import run_speed_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", default="4096,8192,16384,32768")
    parser.add_argument("--keep-ratio", type=float, default=0.125, help="0.125: the 8x setting.")
    parser.add_argument("--ram-dir", default=None, help="A saved RAM to time instead.")
    parser.add_argument("--out", default="runs/ram_speed.json")
    args = parser.parse_args()
    run_speed_benchmark([int(x) for x in args.lengths.split(",")], args.keep_ratio, args.out, ram_dir=args.ram_dir)
