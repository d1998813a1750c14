"""RAM speed benchmark: end-to-end latency and TTFT vs full context at 4K-32K tokens.

    .venv/bin/python benchmarks/ram_speed.py [--lengths 4096,8192,16384,32768] [--ratio 0.125]

Writes benchmarks/results/ram_speed.json (+ .png); resumes lengths already measured.
"""

import argparse

from longlore.ram.speed import run_speed_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", default="4096,8192,16384,32768")
    parser.add_argument("--ratio", type=float, default=0.125)
    parser.add_argument("--out", default="benchmarks/results/ram_speed.json")
    args = parser.parse_args()
    run_speed_benchmark([int(x) for x in args.lengths.split(",")], args.ratio, args.out)
