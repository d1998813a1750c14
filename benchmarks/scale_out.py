"""Scale-out benchmark (issue #21): RAM training on 1 vs 2 CPU ranks, bench on 1 vs 2 endpoints.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_out.py                      # -> runs/scale_out/scale_out.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_out.py --out benchmarks/results/scale_out.json

Each setting is measured ``--repeats`` times in ABBA order (1, 2, 2, 1) so that a drift in the
machine's load does not favour either side; the speedups are ratios of the mean throughputs.

1. RAM training throughput (samples/s): the shared training loop (``longlore.core.training``)
   drives RAM's own loss (``RAMModel.forward``) under ``torchrun --standalone --nproc_per_node W``
   for W = 1 and 2 (gloo, one thread per rank), same model, data and global batch; the first
   ``--warmup`` steps are not timed. The step-0 loss of both runs is compared (they see the same
   global batch, so it must agree).
2. Bench throughput (items/s): ECKGBench items answered by ``longlore bench``'s runner against
   ``longlore serve`` processes on 127.0.0.1 (one thread each): ``openai:M@URL1`` vs
   ``openai:M@URL1,URL2`` (requests spread over both). The responses of both runs are compared.

Both are measured in one run, side by side. On a 2-core machine shared with other jobs the
ceiling is well below 2x; the JSON records what was measured, the load average and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _cpu_seconds() -> float:
    """CPU seconds of this process and of every child it has waited for (ranks, servers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# --- RAM training worker (runs under torchrun) -------------------------------------------------


def ram_worker(args: argparse.Namespace) -> None:
    import torch

    from longlore.core.distributed import dist_info
    from longlore.core.io import write_json
    from longlore.core.models import load_causal_lm
    from longlore.core.training import StepBatches, TrainingArgs, train_loop
    from longlore.ram.config import RAMConfig
    from longlore.ram.data import load_qa
    from longlore.ram.model import RAMModel

    torch.set_num_threads(1)
    examples = [record.as_example() for record in load_qa(args.data)]
    decoder, tokenizer = load_causal_lm(args.ram_model, seed=0)
    ram = RAMModel(decoder, tokenizer, RAMConfig(encoder_layers=args.encoder_layers, segment_tokens=50))
    stamps: list[float] = []

    def loss_fn(model, items, ctx):
        out = model(items, ratio=model.config.ratio)
        return out["loss"]

    batches = StepBatches(lambda rng, step: rng.sample(examples, args.batch), seed=0)
    steps = args.warmup + args.steps
    training = TrainingArgs(steps=steps, lr=1e-4, grad_clip=2.0, checkpoint_every=10**9, log_every=0)
    start = time.perf_counter()
    result = train_loop(
        ram, loss_fn, batches, training, None, on_step=lambda s, row: stamps.append(time.perf_counter()), progress=False
    )
    info = dist_info()
    if info.is_main:
        timed = stamps[-1] - stamps[args.warmup - 1] if args.warmup else stamps[-1] - start
        write_json(
            args.worker_out,
            {
                "world_size": info.world_size,
                "samples_per_s": round(args.batch * args.steps / timed, 4),
                "timed_steps": args.steps,
                "timed_seconds": round(timed, 2),
                "step0_loss": result.history[0]["loss"],
                "cpu_seconds_all_ranks": result.cost["cpu_seconds"],
            },
            overwrite=True,
        )


def measure_ram(args: argparse.Namespace, work: Path) -> dict:
    from longlore.core.io import read_json, write_jsonl
    from longlore.core.models import load_causal_lm
    from longlore.ram.data import make_dataset

    data = work / "ram_data.jsonl"
    if not data.exists():
        _, tokenizer = load_causal_lm(args.ram_model)
        rows = make_dataset(tokenizer, 32, args.doc_tokens // 2, args.doc_tokens, seed=0)
        write_jsonl(data, rows, overwrite=True)
    passes = []
    for world in abba(args.repeats):
        out = work / f"ram_{world}rank_{len(passes)}.json"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}",
            __file__, "--worker", "--data", str(data), "--worker-out", str(out), "--ram-model", args.ram_model,
            "--encoder-layers", str(args.encoder_layers), "--batch", str(args.batch), "--steps", str(args.steps),
            "--warmup", str(args.warmup),
        ]  # fmt: skip
        print(f"RAM training on {world} rank(s), pass {len(passes) + 1} ...", flush=True)
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        passes.append(read_json(out))
    one = [p["samples_per_s"] for p in passes if p["world_size"] == 1]
    two = [p["samples_per_s"] for p in passes if p["world_size"] == 2]
    losses = {p["step0_loss"] for p in passes}
    return {
        "model": f"RAM on {args.ram_model} (encoder_layers {args.encoder_layers}, segments of 50 tokens, keep 0.25)",
        "documents_tokens": [args.doc_tokens // 2, args.doc_tokens],
        "global_batch": args.batch,
        "order": "ABBA (1, 2, 2, 1 ranks per repeat pair) to cancel drift in the machine's load",
        "passes": passes,
        "samples_per_s_1rank": round(sum(one) / len(one), 4),
        "samples_per_s_2ranks": round(sum(two) / len(two), 4),
        "speedup_2ranks": round((sum(two) / len(two)) / (sum(one) / len(one)), 3),
        "step0_loss_spread": max(losses) - min(losses),
    }


def abba(repeats: int) -> list[int]:
    """1, 2, 2, 1, 1, 2, 2, 1, ... (``repeats`` passes of each setting)."""
    order = []
    for i in range(repeats):
        order += [1, 2] if i % 2 == 0 else [2, 1]
    return order


# --- bench over endpoints ----------------------------------------------------------------------


def measure_endpoints(args: argparse.Namespace, work: Path) -> dict:
    from longlore.bench.config import BenchConfig
    from longlore.bench.runner import evaluate
    from longlore.core.backends import GenerationRequest, load_text_model
    from longlore.core.serve import launch_server

    servers = []
    try:
        for i in range(2):
            print(f"starting endpoint {i + 1} ({args.endpoint_model}) ...", flush=True)
            servers.append(launch_server(args.endpoint_model, log_path=work / f"serve_{i}.log"))
        urls = [url for _, url in servers]
        for url in urls:  # first forwards are slow: warm both servers up outside the timing
            load_text_model(f"openai:{args.endpoint_model}@{url}").generate(
                [GenerationRequest("Hello", max_new_tokens=2)] * 2
            )
        passes = []
        for n in abba(args.repeats):
            spec = f"openai:{args.endpoint_model}@{','.join(urls[:n])}"
            config = BenchConfig(
                tasks=["eckgbench/main"], model=spec, limit=args.bench_items, data=args.data_dir, max_new_tokens=8
            )
            model = load_text_model(spec, concurrency=args.concurrency)
            start = time.perf_counter()
            _, samples = evaluate(config, model=model)
            seconds = time.perf_counter() - start
            items = samples["eckgbench/main"]
            passes.append(
                {
                    "endpoints": n,
                    "items": len(items),
                    "seconds": round(seconds, 2),
                    "items_per_s": round(len(items) / seconds, 4),
                    "responses": [s["response"] for s in items],
                }
            )
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(timeout=60)
    same = all(p["responses"] == passes[0]["responses"] for p in passes)
    for p in passes:
        p.pop("responses")
    one = [p["items_per_s"] for p in passes if p["endpoints"] == 1]
    two = [p["items_per_s"] for p in passes if p["endpoints"] == 2]
    return {
        "model": args.endpoint_model,
        "task": "eckgbench/main (0-shot, 8 new tokens, greedy)",
        "concurrency_per_endpoint": args.concurrency,
        "order": "ABBA (1, 2, 2, 1 endpoints per repeat pair)",
        "passes": passes,
        "items_per_s_1endpoint": round(sum(one) / len(one), 4),
        "items_per_s_2endpoints": round(sum(two) / len(two), 4),
        "speedup_2endpoints": round((sum(two) / len(two)) / (sum(one) / len(one)), 3),
        "same_responses": same,
    }


def plot(result: dict, path: Path) -> None:
    """Throughput of every pass, 1 vs 2 ranks / endpoints, in run order (the ABBA design shows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longlore.core.io import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    panels = [
        (axes[0], result["ram_training"]["passes"], "world_size", "samples_per_s", "RAM training", "samples/s", "ranks"),
        (axes[1], result["bench_endpoints"]["passes"], "endpoints", "items_per_s", "bench (ECKGBench)", "items/s", "endpoints"),
    ]  # fmt: skip
    for ax, passes, key, value, title, unit, what in panels:
        colours = ["tab:blue" if p[key] == 1 else "tab:orange" for p in passes]
        ax.bar(range(len(passes)), [p[value] for p in passes], color=colours)
        ax.set_xticks(range(len(passes)), [str(p[key]) for p in passes])
        ax.set_xlabel(f"{what} (passes in run order)")
        speedup = result["speedup_2ranks" if key == "world_size" else "speedup_2endpoints"]
        ax.set_title(f"{title}: {speedup:.2f}x with 2", fontsize=10)
        ax.set_ylabel(unit)
    load = result["machine"]["load_average_start"][0], result["machine"]["load_average_end"][0]
    fig.suptitle(f"One thread per process; 2-core machine shared with other jobs, load {load[0]:.0f}-{load[1]:.0f}")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/scale_out/scale_out.json", help="results JSON")
    parser.add_argument("--work", default="runs/scale_out", help="working folder (data, logs)")
    parser.add_argument("--ram-model", default="scratch-4x256", help="decoder spec behind RAM")
    parser.add_argument("--encoder-layers", type=int, default=2)
    parser.add_argument("--doc-tokens", type=int, default=1024, help="longest training document (tokens)")
    parser.add_argument("--batch", type=int, default=4, help="global batch (split over the ranks)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps")
    parser.add_argument("--endpoint-model", default="smollm2-135m")
    parser.add_argument("--bench-items", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight per endpoint")
    parser.add_argument("--repeats", type=int, default=2, help="passes of each setting, in ABBA order")
    parser.add_argument(
        "--data-dir", default=None, help="benchmark data (default: $LONGLORE_BENCH_DATA or beside the repo)"
    )
    parser.add_argument("--replot", help="redraw the plot of an existing results JSON and exit")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        ram_worker(args)
        return
    if args.replot:
        plot(json.loads(Path(args.replot).read_text()), Path(args.replot).with_suffix(".png"))
        return

    from longlore.core.io import write_json

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    wall0, load0 = time.perf_counter(), os.getloadavg()
    ram = measure_ram(args, work)
    endpoints = measure_endpoints(args, work)
    result = {
        "command": " ".join(["benchmarks/scale_out.py", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_start": [round(x, 2) for x in load0],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
        },
        "threads_per_process": 1,
        "seed": 0,
        "speedup_2ranks": ram["speedup_2ranks"],
        "speedup_2endpoints": endpoints["speedup_2endpoints"],
        "ram_training": ram,
        "bench_endpoints": endpoints,
        "wall_seconds": round(time.perf_counter() - wall0, 1),
        "cpu_seconds": round(_cpu_seconds(), 1),
    }
    write_json(args.out, result, overwrite=True)
    plot(result, Path(args.out).with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("speedup_2ranks", "speedup_2endpoints", "cpu_seconds")}))


if __name__ == "__main__":
    main()
