"""CoMeT on a real pretrained backbone: next-chunk perplexity with memory vs the chunk alone vs full attention.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/comet_ppl.py --out runs/comet/ppl.json
    .venv/bin/python benchmarks/comet_ppl.py --smoke      # tiny model, seconds

SmolLM2-135M-Instruct stays frozen (mode ``memory-only``): only CoMeT's memory nets and new-token
embeddings train, on windows of the first 90% of the shipped public-domain text (resumable, step s
drawn from (seed, s)). So "chunk alone" and "full attention" are the untouched backbone, and every
difference between them and CoMeT comes from the memory: the comparison spends the same (zero)
training on the backbone in every arm. Held-out spans from the final 10% are scored on their last
chunk (first token excluded) three ways (see ``longlore.comet.perplexity``). The JSON records the
CPU seconds of training and of each evaluation; the trained memory modules are saved (without the
backbone) to ``<ckpt>/final``.
"""

import argparse
import platform
import random
import sys
import time
from pathlib import Path

import torch

from longlore.comet import CometConfig, CometModel
from longlore.comet.perplexity import next_chunk_nll, perplexities
from longlore.comet.trainer import TrainArgs, text_windows, train
from longlore.core.io import read_json, write_json
from longlore.core.models import load_causal_lm
from longlore.core.progress import track
from longlore.core.text import public_domain_text

FULL = {
    "model": "smollm2-135m",
    "chunk_size": 128,
    "num_global": 16,
    "temp_stride": 8,
    "temp_budget": 32,
    "rank": 8,
    "train_chunks": 3,
    "eval_chunks": 4,
    "steps": 40,
    "spans": 8,
    "mode": "memory-only",
    "lr": 2e-4,
}
SMOKE = dict(
    FULL,
    model="tiny-llama",
    chunk_size=32,
    num_global=4,
    temp_budget=16,
    rank=2,
    train_chunks=2,
    eval_chunks=3,
    steps=3,
    spans=2,
    lr=1e-3,
)


def score(model: CometModel, spans: list[list[int]], methods: tuple[str, ...], label: str) -> tuple[dict, float]:
    """Summed NLL and token counts per method over ``spans``, and the CPU seconds it took."""
    cpu = time.process_time()
    totals = {m: [0.0, 0] for m in methods}
    for piece in track(spans, f"scoring ({label})"):
        for k, (s, n) in next_chunk_nll(model, piece, methods).items():
            totals[k][0] += s
            totals[k][1] += n
    return {k: tuple(v) for k, v in totals.items()}, round(time.process_time() - cpu, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ckpt", default=None, help="Training folder (default runs/comet/ppl[_smoke]_ckpt).")
    parser.add_argument("--out", default=None, help="Results JSON (default runs/comet/ppl[_smoke].json).")
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None, help=f"default {value}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    opts = {
        k: getattr(args, k) if getattr(args, k) is not None else v for k, v in (SMOKE if args.smoke else FULL).items()
    }
    suffix = "_smoke" if args.smoke else ""
    ckpt = Path(args.ckpt or f"runs/comet/ppl{suffix}_ckpt")
    out = Path(args.out or f"runs/comet/ppl{suffix}.json")
    base, tokenizer = load_causal_lm(opts["model"], seed=args.seed)
    config = CometConfig(
        num_global=opts["num_global"],
        temp_stride=opts["temp_stride"],
        temp_budget=opts["temp_budget"],
        chunk_size=opts["chunk_size"],
        rank=opts["rank"],
        mode=opts["mode"],
        lr=opts["lr"],
        gradient_checkpointing=not args.smoke,
    )
    model = CometModel(base, tokenizer, config, seed=args.seed)
    ids = model.encode(public_domain_text())
    split = int(0.9 * len(ids))
    span = opts["chunk_size"] * opts["eval_chunks"]
    rng = random.Random(args.seed)
    held_out = [ids[s : s + span] for s in sorted(rng.sample(range(split, len(ids) - span), opts["spans"]))]
    model.eval()
    before, before_cpu = score(model, held_out, ("comet",), "untrained memory")
    summary = train(
        model,
        text_windows(ids[:split], opts["chunk_size"] * opts["train_chunks"], 1),
        ckpt,
        TrainArgs(steps=opts["steps"], seed=args.seed, checkpoint_every=10),
    )
    model.eval()
    after, after_cpu = score(model, held_out, ("comet", "no_memory", "full"), "trained memory")
    model.save_pretrained(ckpt / "final", include_backbone=opts["mode"] != "memory-only")
    history = read_json(ckpt / "train_history.json")
    result = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "seed": args.seed,
        "options": opts,
        "backbone_frozen": opts["mode"] == "memory-only",
        "train": {
            "steps_done": summary["steps_done"],
            "tokens_per_step": opts["chunk_size"] * opts["train_chunks"],
            "final_loss_mean10": round(sum(history["loss"][-10:]) / max(1, len(history["loss"][-10:])), 4),
            "cpu_seconds_total": summary.get("cpu_seconds_total"),
            "wall_seconds_total": summary.get("wall_seconds_total"),
        },
        "eval_cpu_seconds": {"untrained": before_cpu, "trained": after_cpu},
        "scored_tokens": after["comet"][1],
        "perplexity": {
            "comet_untrained_memory": perplexities({"x": before["comet"]})["x"],
            **{f"{k}{'_trained_memory' if k == 'comet' else ''}": v for k, v in perplexities(after).items()},
        },
        "memory_modules": str(ckpt / "final"),
    }
    write_json(out, result, overwrite=True)
    print(result["perplexity"])


if __name__ == "__main__":
    main()
