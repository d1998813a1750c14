"""CoMeT on a real pretrained backbone: next-chunk perplexity with memory vs without vs full attention.

    .venv/bin/python benchmarks/comet_ppl.py              # SmolLM2-135M-Instruct, brief fine-tune, held-out text
    .venv/bin/python benchmarks/comet_ppl.py --smoke      # tiny model, seconds

Fine-tunes CoMeT (resumable, from (seed, step)) on windows of the first 90% of the shipped
public-domain text, then scores the last chunk of held-out spans from the final 10% three ways (see
longlore.comet.perplexity). Writes benchmarks/results/comet_ppl[_smoke].json.
"""

import argparse
import platform
import random
import sys
import time
from pathlib import Path

import torch

from longlore.comet import CometConfig, CometModel
from longlore.comet.backbone import load_backbone
from longlore.comet.perplexity import next_chunk_nll, perplexities
from longlore.comet.trainer import TrainArgs, text_windows, train
from longlore.core.io import write_json
from longlore.core.progress import track
from longlore.core.text import public_domain_text

FULL = {
    "model": "smollm2-135m",
    "chunk_size": 512,
    "num_global": 64,
    "temp_stride": 8,
    "temp_budget": 256,
    "rank": 8,
    "train_chunks": 4,
    "eval_chunks": 8,
    "steps": 100,
    "spans": 16,
    "mode": "full",
    "lr": 5e-5,
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

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    for key, value in FULL.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=None, help=f"default {value}")
    args = parser.parse_args()
    opts = {
        k: getattr(args, k) if getattr(args, k) is not None else v for k, v in (SMOKE if args.smoke else FULL).items()
    }
    suffix = "_smoke" if args.smoke else ""
    ckpt, out = Path(f"benchmarks/checkpoints/comet_ppl{suffix}"), Path(f"benchmarks/results/comet_ppl{suffix}.json")
    base, tokenizer = load_backbone(opts["model"], seed=args.seed)
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
    start = time.perf_counter()
    model.eval()
    before = {"comet": [0.0, 0], "no_memory": [0.0, 0], "full": [0.0, 0]}
    for piece in track(held_out, "scoring (before fine-tuning)"):
        for k, (s, n) in next_chunk_nll(model, piece).items():
            before[k][0] += s
            before[k][1] += n
    summary = train(
        model,
        text_windows(ids[:split], opts["chunk_size"] * opts["train_chunks"], 1),
        ckpt,
        TrainArgs(steps=opts["steps"], seed=args.seed, checkpoint_every=10),
    )
    model.eval()
    after = {"comet": [0.0, 0], "no_memory": [0.0, 0], "full": [0.0, 0]}
    for piece in track(held_out, "scoring (after fine-tuning)"):
        for k, (s, n) in next_chunk_nll(model, piece).items():
            after[k][0] += s
            after[k][1] += n
    result = {
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "seed": args.seed,
        "options": opts,
        "train": {k: summary[k] for k in ("steps_done", "final_loss", "seconds_this_run")},
        "eval_seconds_total": round(time.perf_counter() - start - summary["seconds_this_run"], 1),
        "scored_tokens": after["comet"][1],
        "perplexity_before_finetune": perplexities({k: tuple(v) for k, v in before.items()}),
        "perplexity_after_finetune": perplexities({k: tuple(v) for k, v in after.items()}),
    }
    write_json(out, result, overwrite=True)
    print(result["perplexity_before_finetune"], result["perplexity_after_finetune"])
