"""CoMeT passkey benchmark: train a small model from scratch on <= 2K-token passkey samples with a
curriculum over the number of chunks, then evaluate far beyond that length (lengths x depths).

    .venv/bin/python benchmarks/comet_passkey.py            # the full run (hours on 2 CPU cores)
    .venv/bin/python benchmarks/comet_passkey.py --smoke    # a seconds-long check of the pipeline

One command reproduces the trained weights: each training step draws its data from (seed, step),
training resumes from <ckpt>/checkpoint.pt, and evaluation resumes from the results JSON. Writes
benchmarks/results/comet_passkey.json (+ .png heatmap) and <ckpt>/final (the trained CoMeT).
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from longlore.comet import CometConfig, CometModel
from longlore.comet.backbone import load_backbone
from longlore.comet.passkey import (
    accuracy_table,
    curriculum_batches,
    evaluate_grid,
    heatmap,
    parse_curriculum,
    stage_starts,
)
from longlore.comet.trainer import TrainArgs, train
from longlore.core.io import read_json, write_json

FULL = {
    "backbone": "scratch-4x128",
    "chunk_size": 128,
    "num_global": 16,
    "temp_stride": 8,
    "temp_budget": 64,
    "rank": 8,
    "curriculum": "1:2000,2:3000,4:3000,8:2000,16:1000",
    "batch_size": 4,
    "lr": 1e-3,
    "lengths": "4096,16384,65536,262144,1048576",
    "depths": "0,25,50,75,100",
    "keys": 4,
}
SMOKE = dict(
    FULL,
    backbone="scratch-1x64",
    chunk_size=32,
    num_global=4,
    temp_budget=16,
    rank=2,
    curriculum="1:3,2:3",
    batch_size=2,
    lengths="256,1024",
    depths="0,100",
    keys=1,
)


def merge_results(parts: list[Path], out: Path) -> None:
    """One results file from several partial runs of the grid (first file's metadata, records
    de-duplicated by (length, depth, i), each part's command kept)."""
    results = [read_json(part) for part in parts]
    records = {(r["length"], r["depth"], r["i"]): r for result in results for r in result["records"]}
    merged = {
        **{k: v for k, v in results[0].items() if k not in ("records", "accuracy")},
        "parts": [{"file": str(part), "command": result.get("command")} for part, result in zip(parts, results)],
        "records": sorted(records.values(), key=lambda r: (r["length"], r["depth"], r["i"])),
    }
    merged["accuracy"] = accuracy_table(merged["records"])
    merged["digit_accuracy"] = accuracy_table(merged["records"], "digits")
    write_json(out, merged, overwrite=True)
    report(merged, out)


def report(result: dict, out: Path) -> None:
    """Heatmaps of exact-match and digit accuracy beside ``out``, and the table on stdout."""
    opts = result.get("options", {})
    title = f"CoMeT passkey, trained <= {result.get('max_train_tokens')} tokens ({opts.get('backbone')})"
    heatmap(result["accuracy"], out.with_suffix(".png"), title)
    heatmap(result["digit_accuracy"], out.with_name(out.stem + "_digits.png"), title + ": key digits right")
    for n, cells in result["accuracy"].items():
        print(
            f"{int(n):>8} tokens: accuracy {cells['all']:.2f}  "
            + " ".join(f"{d}:{v:.2f}" for d, v in cells.items() if d != "all")
            + f"  | digit accuracy {result['digit_accuracy'][n]['all']:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes, a few steps: checks the pipeline only.")
    parser.add_argument(
        "--ckpt", default=None, help="Training folder (default benchmarks/checkpoints/comet_passkey[_smoke])."
    )
    parser.add_argument(
        "--out", default=None, help="Results JSON (default benchmarks/results/comet_passkey[_smoke].json)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-eval", action="store_true", help="Train (or resume) only.")
    parser.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="End training at this step (the lr schedule still spans the whole curriculum), "
        "e.g. to stop after a curriculum stage when the CPU budget is spent.",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="JSON",
        help="Only merge the records of these partial results (e.g. lengths run as parallel "
        "processes) into --out, with the accuracy table and heatmap; no training.",
    )
    parser.add_argument(
        "--lr-restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Restart warm-up + cosine at every curriculum stage (the default); "
        "--no-lr-restart runs one schedule over all stages.",
    )
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None, help=f"default {value}")
    args = parser.parse_args()
    preset = SMOKE if args.smoke else FULL
    opts = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in preset.items()}
    suffix = "_smoke" if args.smoke else ""
    ckpt = Path(args.ckpt or f"benchmarks/checkpoints/comet_passkey{suffix}")
    out = Path(args.out or f"benchmarks/results/comet_passkey{suffix}.json")

    if args.merge:
        merge_results([Path(m) for m in args.merge], out)
        return
    torch.manual_seed(args.seed)
    base, tokenizer = load_backbone(opts["backbone"], seed=args.seed)
    config = CometConfig(
        num_global=opts["num_global"],
        temp_stride=opts["temp_stride"],
        temp_budget=opts["temp_budget"],
        chunk_size=opts["chunk_size"],
        rank=opts["rank"],
        lr=opts["lr"],
        warmup_steps=20,
    )
    model = CometModel(base, tokenizer, config, seed=args.seed)
    stages = parse_curriculum(opts["curriculum"])
    batches, total = curriculum_batches(model, stages, opts["batch_size"])
    restarts = stage_starts(stages) if args.lr_restart else None
    start = time.perf_counter()
    train(
        model,
        batches,
        ckpt,
        TrainArgs(
            steps=total,
            seed=args.seed,
            checkpoint_every=50 if not args.smoke else 2,
            stop_after=args.stop_after,
            restarts=restarts,
        ),
    )
    trained = min(total, args.stop_after or total)
    trained_stages, end = [], 0
    for chunks, steps in stages:
        if end < trained:
            trained_stages.append(chunks)
        end += steps
    model.save_pretrained(ckpt / "final", include_backbone=True)
    history = read_json(ckpt / "train_history.json")
    if args.skip_eval:
        return
    meta = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "seed": args.seed,
        "options": opts,
        "config": config.to_dict(),
        "train_steps": trained,
        "curriculum_steps": total,
        "train_seconds_last_invocation": round(time.perf_counter() - start, 1),
        "train_cost_total": {k: history.get(f"{k}_total") for k in ("wall_seconds", "cpu_seconds")},
        "train_final_loss": history.get("final_loss"),
        "checkpoint": str(ckpt / "final"),
        "max_train_tokens": trained_stages[-1] * opts["chunk_size"],
        "lr_restarts": restarts,
    }
    result = evaluate_grid(
        model.eval(),
        [int(x) for x in opts["lengths"].split(",")],
        [int(d) / 100 for d in opts["depths"].split(",")],
        opts["keys"],
        out,
        seed=args.seed,
        meta=meta,
    )
    report(result, out)


if __name__ == "__main__":
    main()
