"""CoMeT passkey benchmark: train a small model from scratch on <= 2K-token passkey samples with a
curriculum over the number of chunks, then evaluate far beyond that length.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/comet_passkey.py --out runs/comet/passkey.json
    .venv/bin/python benchmarks/comet_passkey.py --smoke        # a seconds-long check of the pipeline

The evaluation separates memory from local attention: depths 0/25/50/75% put the key line before
the last chunk, so it can only come back through memory (the headline, ``memory_exact``); depth
100% (and any prompt whose key line reaches into the last chunk) is read by plain attention and is
reported apart (``local_exact``). Every prompt has its own key; each per-length figure carries its
count and 95% Wilson interval. ``--memory-prompts`` / ``--local-prompts`` set the prompts per
length (the memory ones are spread evenly over the four depths).

One command reproduces the trained weights: step s draws its data from (seed, s), training resumes
from <ckpt>/checkpoint.pt, and evaluation resumes from the results JSON. The checkpoint and the
JSON carry the training cost (wall and CPU seconds summed over every resumed invocation).
``--eval-lengths`` runs a part of the grid (keys are planned over the whole grid, so parallel
processes never share a key); ``--merge`` joins the parts. Outputs default to ``runs/comet/``.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from longlore.comet import CometConfig, CometModel
from longlore.comet.passkey import (
    PasskeyTask,
    curriculum_batches,
    evaluate_grid,
    heatmap,
    parse_curriculum,
    stage_starts,
    summarize,
)
from longlore.comet.trainer import TrainArgs, train
from longlore.core.io import read_json, write_json
from longlore.core.models import load_causal_lm
from longlore.core.saving import find_model_folder

MEMORY_DEPTHS = (0.0, 0.25, 0.5, 0.75)
FULL = {
    "backbone": "scratch-4x128",
    "chunk_size": 128,
    "num_global": 16,
    "temp_stride": -1,
    "temp_budget": 64,
    "rank": 8,
    "gate_bias": "6",
    "curriculum": "1:200,2:400,4:600,8:300,16:150",
    "batch_size": 8,
    "lr": 1e-3,
    "memory_lr_multiplier": 5.0,
    "key_digits": 5,
    "split_digits": "true",
    "answer_weight": "4",
    "mix_earlier": 0.3,
    "lengths": "4096,16384,65536",  # the headline adds 262144,1048576 (minutes per 1M-token prompt)
    "memory_prompts": "4096:40,16384:40,65536:40,262144:20,1048576:20",
    "local_prompts": "4096:8,16384:8,65536:8,262144:4,1048576:4",
}
SMOKE = dict(
    FULL,
    backbone="scratch-1x64",
    chunk_size=32,
    num_global=4,
    temp_stride=8,
    temp_budget=16,
    rank=2,
    curriculum="1:3,2:3",
    batch_size=2,
    lengths="256,1024",
    memory_prompts="256:4,1024:4",
    local_prompts="256:1,1024:1",
)


def _optional_float(text: str) -> float | None:
    return None if str(text).lower() == "none" else float(text)


def _flag(text: str) -> bool:
    return str(text).lower() in ("1", "true", "yes")


def _per_length(text: str) -> dict[int, int]:
    return {int(a): int(b) for a, b in (part.split(":") for part in text.split(",") if part.strip())}


def grid_cells(opts: dict) -> dict:
    """{(length, depth): prompts}: the memory prompts spread over the four memory depths, the
    local ones at depth 100%."""
    cells = {}
    for n, count in _per_length(opts["memory_prompts"]).items():
        for j, d in enumerate(MEMORY_DEPTHS):
            cells[(n, d)] = count // len(MEMORY_DEPTHS) + (j < count % len(MEMORY_DEPTHS))
    for n, count in _per_length(opts["local_prompts"]).items():
        cells[(n, 1.0)] = count
    return cells


def merge_results(parts: list[Path], out: Path) -> None:
    """One results file from partial runs of the grid (first file's metadata, records de-duplicated
    by (length, depth, i), each part's command kept)."""
    results = [read_json(part) for part in parts]
    records = {(r["length"], r["depth"], r["i"]): r for result in results for r in result["records"]}
    keep = ("records", "accuracy", "digit_accuracy") + tuple(
        k for k in results[0] if k.startswith(("memory_", "local_"))
    )
    merged = {
        **{k: v for k, v in results[0].items() if k not in keep},
        "parts": [{"file": str(part), "command": result.get("command")} for part, result in zip(parts, results)],
        "records": sorted(records.values(), key=lambda r: (r["length"], r["depth"], r["i"])),
    }
    merged.update(summarize(merged["records"]))
    merged["eval_cpu_seconds"] = eval_cost(merged["records"])
    write_json(out, merged, overwrite=True)
    report(merged, out)


def eval_cost(records: list[dict]) -> dict[str, float]:
    """CPU seconds of evaluation per length (each record carries its share of its batch)."""
    cost: dict[str, float] = {}
    for r in records:
        cost[str(r["length"])] = round(cost.get(str(r["length"]), 0.0) + r.get("cpu_seconds", 0.0), 1)
    return cost


def report(result: dict, out: Path) -> None:
    """Heatmaps (exact match with Wilson intervals; digit accuracy) beside ``out``, a table on stdout."""
    opts = result.get("options", {})
    title = f"CoMeT passkey, trained on <= {result.get('max_train_tokens')} tokens ({opts.get('backbone')})"
    heatmap(result["records"], out.with_suffix(".png"), title + "\nexact match, k/n [95% Wilson]")
    heatmap(result["records"], out.with_name(out.stem + "_digits.png"), title + ": key digits right", "digits")
    for n in sorted(result["memory_exact"], key=int):
        lo, hi = result["memory_ci"][n]
        local = result["local_exact"].get(n)
        print(
            f"{int(n):>8} tokens: memory exact {result['memory_exact'][n]:.2f} [{lo:.2f}, {hi:.2f}] "
            f"(n={result['memory_n'][n]})"
            + (f" | local exact {local:.2f} (n={result['local_n'][n]})" if local is not None else "")
        )


def ship(result: dict, results_path: Path, dest: Path) -> None:
    """Copy the trained model (memory modules + its small backbone) to ``dest`` and write a
    MODEL_CARD.md beside it from the measured results (nothing in it is typed by hand)."""
    import shutil

    from longlore.comet.model import CometModel

    src = Path(result["checkpoint"])
    model = CometModel.from_pretrained(src)  # re-saved in the current (versioned) layout
    model.save_pretrained(dest, include_backbone=True)
    card = read_json(src / "comet_config.json").get("trained_on", {})
    meta = read_json(dest / "comet_config.json")
    meta["trained_on"] = card
    write_json(dest / "comet_config.json", meta, overwrite=True)
    size_mb = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file()) / 1e6
    rows = []
    for n in sorted(result["memory_exact"], key=int):
        lo, hi = result["memory_ci"][n]
        local = result["local_exact"].get(n)
        local_text = f"{local:.2f} (n={result['local_n'][n]})" if local is not None else "-"
        rows.append(
            f"| {int(n):,} | {result['memory_exact'][n]:.2f} [{lo:.2f}, {hi:.2f}] (n={result['memory_n'][n]}) "
            f"| {local_text} |"
        )
    cfg = result["config"]
    cost = card.get("train_cost_total", {})
    held = [int(n) for n in result["memory_exact"] if result["memory_exact"][n] >= 0.95]
    reach = (
        f"memory exact match >= 0.95 up to {max(held):,} tokens, not beyond (see the table)"
        if held
        else "memory exact match below 0.95 at every length measured"
    )
    text = f"""# CoMeT passkey model (from-scratch {result["options"]["backbone"]} Llama + CoMeT memory)

What it is: a {result["options"]["backbone"]} Llama (random init, the tiny 1,024-token BPE tokenizer)
trained from scratch together with CoMeT memory (G = {cfg["num_global"]} global slots per layer,
{"no temporary memory" if cfg["temp_stride"] == -1 else f"FIFO of {cfg['temp_budget']}"}, {cfg["chunk_size"]}-token
chunks, gate bias started at {cfg["gate_bias"]}) on synthetic passkey prompts (Landmark text, 5-digit
keys written one token per digit). Files: `comet_model.safetensors` + `comet_config.json` (memory
modules, new-token embeddings, config) and `backbone/` (the trained Llama + tokenizer); {size_mb:.1f} MB in all.

Load: `CometModel.from_pretrained("{dest.as_posix()}")` (the backbone is inside).

Trained on: samples of at most {card.get("max_train_tokens")} tokens, curriculum {card.get("curriculum")}
(chunks:steps), batch {card.get("batch_size")}, {card.get("steps")} steps, loss = LM + {card.get("task_options", {}).get("answer_weight")} x answer;
{cost.get("cpu_seconds", 0) / 3600:.2f} CPU-hours of training ({cost.get("wall_seconds", 0) / 3600:.1f} h wall on a
shared 2-core machine, one thread).

Reproduce (training is deterministic: step s draws its data from (seed, s)): train, then evaluate and ship

    OMP_NUM_THREADS=1 python {card.get("command", "benchmarks/comet_passkey.py --ckpt runs/comet/passkey_ckpt")}
    OMP_NUM_THREADS=1 python {_eval_command(result, results_path, dest)}

Measured (greedy, exact match of the 5-digit key, 95% Wilson interval; memory = key line wholly
before the last chunk, read back through the memory; local = key in the last chunk):

| prompt tokens | memory exact | local exact |
|---|---|---|
{chr(10).join(rows)}

Results file: `{results_path.as_posix()}`. Limits: {reach}; trained on synthetic passkey text only,
it is a demonstration of the mechanism, not a language model.
"""
    (dest / "MODEL_CARD.md").write_text(text, encoding="utf-8")
    shutil.rmtree(dest / "__pycache__", ignore_errors=True)
    print(f"shipped {dest} ({size_mb:.1f} MB)")


def _portable(arg: str) -> str:
    """A path under the current folder written relative to it, so a model card's command runs in any clone."""
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        return path.relative_to(Path.cwd()).as_posix()
    return arg


def _eval_command(result: dict, results_path: Path, dest: Path) -> str:
    """One evaluation command that remakes ``result`` (its lengths and prompt counts read from the
    records, so a merged grid gets one command), pointed at the committed results and artifact."""
    words = result.get("command", "").split()[1:]  # without the interpreter
    drop = {"--out", "--ship", "--model-dir", "--lengths", "--memory-prompts", "--local-prompts", "--eval-lengths"}
    kept = [w for i, w in enumerate(words) if w not in drop and (i == 0 or words[i - 1] not in drop)]
    memory, local = {}, {}
    for r in result["records"]:
        counts = local if r["depth"] == 1.0 else memory
        counts[r["length"]] = counts.get(r["length"], 0) + 1
    lengths = sorted({*memory, *local})
    return " ".join(
        [
            *kept,
            "--lengths",
            ",".join(str(n) for n in lengths),
            "--memory-prompts",
            ",".join(f"{n}:{memory[n]}" for n in lengths if n in memory),
            "--local-prompts",
            ",".join(f"{n}:{local[n]}" for n in lengths if n in local),
            "--model-dir",
            "runs/comet/passkey_ckpt/final",
            "--out",
            results_path.as_posix(),
            "--ship",
            dest.as_posix(),
        ]
    )


def train_and_save(model: CometModel, task: PasskeyTask, opts: dict, args: argparse.Namespace, ckpt: Path):
    """Train (or resume) the curriculum, save <ckpt>/final with its training card; (card, meta)."""
    stages = parse_curriculum(opts["curriculum"])
    batches, total = curriculum_batches(model, stages, opts["batch_size"], task)
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
    history = read_json(ckpt / "train_history.json")
    max_train_tokens = max(trained_stages) * opts["chunk_size"]
    model.save_pretrained(ckpt / "final", include_backbone=True)
    card = read_json(ckpt / "final" / "comet_config.json")
    card["trained_on"] = {
        "task": "passkey (Landmark prompt)",
        "task_options": {k: getattr(task, k) for k in ("key_digits", "split_digits", "answer_weight", "mix_earlier")},
        "curriculum": opts["curriculum"],
        "steps": trained,
        "batch_size": opts["batch_size"],
        "max_train_tokens": max_train_tokens,
        "train_cost_total": {k: history.get(f"{k}_total") for k in ("wall_seconds", "cpu_seconds")},
        "command": " ".join(["benchmarks/comet_passkey.py", *(_portable(a) for a in sys.argv[1:])]),
    }
    write_json(ckpt / "final" / "comet_config.json", card, overwrite=True)
    meta = {
        "train_steps": trained,
        "curriculum_steps": total,
        "train_seconds_last_invocation": round(time.perf_counter() - start, 1),
        "train_final_loss": history.get("final_loss"),
        "checkpoint": str(ckpt / "final"),
        "lr_restarts": restarts,
    }
    return card["trained_on"], meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes, a few steps: checks the pipeline only.")
    parser.add_argument("--ckpt", default=None, help="Training folder (default runs/comet/passkey[_smoke]_ckpt).")
    parser.add_argument("--out", default=None, help="Results JSON (default runs/comet/passkey[_smoke].json).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-eval", action="store_true", help="Train (or resume) only.")
    parser.add_argument("--model-dir", default=None, help="Evaluate this saved CoMeT folder instead of training.")
    parser.add_argument("--stop-after", type=int, default=None, help="End training at this step (resume later).")
    parser.add_argument("--eval-lengths", default=None, help="Run only these lengths of the grid (comma list).")
    parser.add_argument("--eval-batch", type=int, default=10, help="Prompts streamed together.")
    parser.add_argument(
        "--merge", nargs="+", default=None, metavar="JSON", help="Only merge partial results into --out."
    )
    parser.add_argument(
        "--ship",
        default=None,
        help="After evaluation, copy the model + a MODEL_CARD.md from the results to this folder.",
    )
    parser.add_argument(
        "--lr-restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Restart warm-up + cosine at every curriculum stage (default); --no-lr-restart: one schedule.",
    )
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None, help=f"default {value}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = SMOKE if args.smoke else FULL
    opts = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in preset.items()}
    suffix = "_smoke" if args.smoke else ""
    ckpt = Path(args.ckpt or f"runs/comet/passkey{suffix}_ckpt")
    out = Path(args.out or f"runs/comet/passkey{suffix}.json")
    if args.merge:
        merge_results([Path(m) for m in args.merge], out)
        if args.ship:
            ship(read_json(out), out, Path(args.ship))
        return

    torch.manual_seed(args.seed)
    base, tokenizer = load_causal_lm(opts["backbone"], seed=args.seed)
    config = CometConfig(
        num_global=opts["num_global"],
        temp_stride=opts["temp_stride"],
        temp_budget=opts["temp_budget"],
        chunk_size=opts["chunk_size"],
        rank=opts["rank"],
        gate_bias=_optional_float(opts["gate_bias"]),
        lr=opts["lr"],
        memory_lr_multiplier=opts["memory_lr_multiplier"],
        warmup_steps=20,
    )
    task = PasskeyTask(
        key_digits=opts["key_digits"],
        split_digits=_flag(opts["split_digits"]),
        answer_weight=_optional_float(opts["answer_weight"]),
        mix_earlier=opts["mix_earlier"],
    )
    if args.model_dir:  # evaluate a saved model (e.g. an earlier stage of the run), no training
        model = CometModel.from_pretrained(args.model_dir)
        card = read_json(find_model_folder(args.model_dir, "comet_config.json") / "comet_config.json").get(
            "trained_on", {}
        )
        meta = {"checkpoint": str(args.model_dir), "train_steps": card.get("steps")}
    else:
        model = CometModel(base, tokenizer, config, seed=args.seed)
        card, meta = train_and_save(model, task, opts, args, ckpt)
    if args.skip_eval:
        return
    meta = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "seed": args.seed,
        "options": opts,
        "config": model.config.to_dict(),
        **meta,
        "train_cost_total": card.get("train_cost_total"),
        "max_train_tokens": card.get("max_train_tokens"),
        "trained_on": card,
    }
    lengths = [int(x) for x in opts["lengths"].split(",")]
    only = [int(x) for x in args.eval_lengths.split(",")] if args.eval_lengths else None
    result = evaluate_grid(
        model.eval(),
        lengths,
        [*MEMORY_DEPTHS, 1.0],
        grid_cells(opts),
        out,
        seed=args.seed,
        meta=meta,
        batch_size=args.eval_batch,
        task=task,
        only_lengths=only,
    )
    result["eval_cpu_seconds"] = eval_cost(result["records"])
    write_json(out, result, overwrite=True)
    report(result, out)
    if args.ship:
        ship(result, out, Path(args.ship))


if __name__ == "__main__":
    main()
