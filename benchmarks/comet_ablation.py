"""CoMeT passkey ablation: why does the model learn the key slowly? One knob at a time, minutes each.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/comet_ablation.py --variant recipe --variant gate_official
    .venv/bin/python benchmarks/comet_ablation.py --table runs/comet/ablation/*.json \\
        --out benchmarks/results/comet_ablation.json

Every variant trains the same from-scratch backbone (seed 0) on passkey samples with a short
curriculum over the number of chunks (``--curriculum``, default 100 steps of 1 chunk then 250 of 2;
depth and key random), then measures:

* ``answer_nll``: mean teacher-forced NLL per answer token on held-out prompts at the training
  length with the key in an earlier chunk (continuous; less noisy than exact match);
* ``memory_exact`` at the training length and at 8 and 64 chunks (key in the first chunks, so past
  the FIFO's span when there is one), greedy, 95% Wilson interval;

with the CPU seconds of training and evaluation. ``recipe`` is the fixed recipe (gate started at
hold, LM + 4 x answer loss, 5-digit keys one token per digit, no temporary memory, 30% of samples
from earlier stages); every other variant changes one knob of it, and ``v4_recipe`` restores the
previous session's recipe. Outputs go under ``runs/comet/ablation`` unless ``--out`` says otherwise.
"""

import argparse
import platform
import random
import sys
import time
from pathlib import Path

import torch

from longlore.comet import CometConfig, CometModel
from longlore.comet.passkey import (
    PasskeyPieces,
    PasskeyTask,
    curriculum_batches,
    evaluate_grid,
    parse_curriculum,
    passkey_prompt,
    stage_starts,
    wilson,
)
from longlore.comet.trainer import TrainArgs, train
from longlore.core.io import read_json, write_json
from longlore.core.models import load_causal_lm

# The reference: the fixed recipe (the long run's settings at 1-2 chunks). Each variant changes one knob.
BASE = {
    "backbone": "scratch-4x128",
    "chunk_size": 128,
    "num_global": 16,
    "temp_stride": -1,
    "temp_budget": 64,
    "rank": 8,
    "lr": 1e-3,
    "memory_lr_multiplier": 5.0,
    "gate_bias": 6.0,
    "batch_size": 8,
    "key_digits": 5,
    "split_digits": True,
    "answer_weight": 4.0,
    "mix_earlier": 0.3,
}
V4 = {  # the previous session's recipe: official gate, answer-only loss, Landmark keys, FIFO of 64
    "gate_bias": None,
    "answer_weight": None,
    "key_digits": 0,
    "split_digits": False,
    "mix_earlier": 0.0,
    "temp_stride": 8,
    "temp_budget": 64,
}
VARIANTS = {
    "recipe": {},
    "v4_recipe": V4,
    "gate_official": {"gate_bias": None},
    "answer_only": {"answer_weight": None},
    "lm_only": {"answer_weight": 0.0},
    "keys_landmark": {"key_digits": 0, "split_digits": False},
    "keys_bpe_split": {"split_digits": False},
    "fifo64": {"temp_stride": 8, "temp_budget": 64},
    "fifo16": {"temp_stride": 8, "temp_budget": 16},
    "global4": {"num_global": 4},
    "global64": {"num_global": 64},
    "memlr1": {"memory_lr_multiplier": 1.0},
    "memlr20": {"memory_lr_multiplier": 20.0},
    "no_mix": {"mix_earlier": 0.0},
}


def build(opts: dict, seed: int) -> tuple[CometModel, PasskeyTask]:
    base, tokenizer = load_causal_lm(opts["backbone"], seed=seed)
    config = CometConfig(
        num_global=opts["num_global"],
        temp_stride=opts["temp_stride"],
        temp_budget=opts["temp_budget"],
        chunk_size=opts["chunk_size"],
        rank=opts["rank"],
        lr=opts["lr"],
        memory_lr_multiplier=opts["memory_lr_multiplier"],
        gate_bias=opts["gate_bias"],
        warmup_steps=20,
    )
    task = PasskeyTask(
        key_digits=opts["key_digits"],
        split_digits=opts["split_digits"],
        answer_weight=opts["answer_weight"],
        mix_earlier=opts["mix_earlier"],
    )
    return CometModel(base, tokenizer, config, seed=seed), task


@torch.no_grad()
def answer_nll(model: CometModel, task: PasskeyTask, n_tokens: int, prompts: int, seed: int) -> float:
    """Mean NLL per answer token, teacher-forced, key line before the last chunk."""
    pieces = PasskeyPieces.build(model, task.split_digits)
    rng = random.Random(seed)
    total, count = 0.0, 0
    for _ in range(prompts):
        key = task.draw_key(rng)
        prompt = passkey_prompt(model, pieces, n_tokens, rng.uniform(0.0, 0.3), key)
        answer = pieces.answer(key)
        labels = [-100] * len(prompt) + answer
        size = model.config.chunk_size
        n = len(prompt) + len(answer)
        out = model.forward(
            model.prepare([prompt + answer], [labels], sizes=[[size] * (n // size) + [n % size] * (n % size > 0)])
        )
        total, count = total + float(out.loss_sum), count + out.n_tokens
    return total / count


def run_variant(name: str, args: argparse.Namespace) -> dict:
    opts = {**BASE, **VARIANTS[name]}
    torch.manual_seed(args.seed)
    model, task = build(opts, args.seed)
    run_dir = Path(args.runs) / name
    stages = parse_curriculum(args.curriculum)
    batches, steps = curriculum_batches(model, stages, opts["batch_size"], task)
    summary = train(
        model,
        batches,
        run_dir,
        TrainArgs(steps=steps, seed=args.seed, checkpoint_every=100, restarts=stage_starts(stages)),
    )
    chunks = stages[-1][0]
    model.eval()
    cpu0 = time.process_time()
    size = opts["chunk_size"]
    nll = answer_nll(model, task, chunks * size, 32, seed=1234)
    result = {"variant": name, "changes": VARIANTS[name], "options": opts, "nll_answer_token": round(nll, 4)}
    for label, n_chunks, depths, per in (
        ("train_len", chunks, [0.0, 0.15, 0.3], 12),
        ("8_chunks", 8, [0.0, 0.2], 8),
        ("64_chunks", 64, [0.0, 0.5], 6),
    ):
        length = n_chunks * size - 8
        grid = evaluate_grid(
            model,
            [length],
            depths,
            per,
            run_dir / f"eval_{label}.json",
            seed=99,
            task=task,
            batch_size=12,
        )
        mem = [r for r in grid["records"] if r["memory"]]
        k = sum(r["correct"] for r in mem)
        result[f"memory_exact_{label}"] = round(k / max(1, len(mem)), 4)
        result[f"memory_ci_{label}"] = [round(x, 4) for x in wilson(k, len(mem))]
        result[f"memory_n_{label}"] = len(mem)
        result[f"digit_accuracy_{label}"] = grid["digit_accuracy"][str(length)]["all"]
    history = read_json(run_dir / "train_history.json")
    result.update(
        {
            "curriculum": args.curriculum,
            "train_cpu_seconds": history.get("cpu_seconds_total"),
            "train_wall_seconds": history.get("wall_seconds_total"),
            "eval_cpu_seconds": round(time.process_time() - cpu0, 1),
            "final_train_loss_mean50": round(sum(history["loss"][-50:]) / len(history["loss"][-50:]), 4),
            "loss_curve_every50": [
                round(sum(history["loss"][i : i + 50]) / len(history["loss"][i : i + 50]), 4)
                for i in range(0, len(history["loss"]), 50)
            ],
            "summary": {k: v for k, v in summary.items() if k not in ("config", "args")},
            "command": " ".join([sys.executable, *sys.argv]),
            "machine": platform.platform(),
            "threads": torch.get_num_threads(),
            "seed": args.seed,
        }
    )
    write_json(Path(args.runs) / f"{name}.json", result, overwrite=True)
    print({k: v for k, v in result.items() if k.startswith(("memory_exact", "nll", "train_cpu", "digit"))})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append", help="Repeat to run several.")
    parser.add_argument("--curriculum", default="1:100,2:250", help="'chunks:steps,...' (short: minutes of CPU).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="runs/comet/ablation", help="Checkpoints and per-variant JSON.")
    parser.add_argument("--table", nargs="+", default=None, help="Collect per-variant JSON files into --out.")
    parser.add_argument("--out", default="runs/comet/ablation/comet_ablation.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.table:
        rows = [read_json(Path(p)) for p in args.table]
        write_json(Path(args.out), {"variants": rows}, overwrite=True)
        for r in rows:
            print(
                f"{r['variant']:>14}: nll {r['nll_answer_token']:.3f}  exact(train len) {r['memory_exact_train_len']:.2f}"
                f"  exact(8 chunks) {r['memory_exact_8_chunks']:.2f}  exact(64 chunks) {r['memory_exact_64_chunks']:.2f}"
                f"  train CPU {r['train_cpu_seconds']:.0f}s"
            )
        return
    for name in args.variant or ["baseline"]:
        run_variant(name, args)


if __name__ == "__main__":
    main()
