"""Knowledge infusion into SmolLM2-135M-Instruct: continued NTP vs PretrainRL at equal steps.

Facts: MovieLens-100k release years (1989-1998, so every fact has the same 10 candidate years),
rendered as text. SmolLM2 is scored on a seeded sample; the facts it gets wrong (Hit@1 = 0) are the
ones to infuse. Both methods train on the same corpus — each unknown fact written in three sentence
forms (one of them the cloze form), mixed with general English (KJV) — for the same number of
steps; PretrainRL adds its debias-then-learn fact objective on the cloze prompts. Only the top
``--train-layers`` decoder layers are trained (CPU budget). Reported: Hit@1 / P(truth) / margin on
the infused facts, and perplexity on held-out KJV passages (forgetting).

    nice -n 10 .venv/bin/python benchmarks/pretrainrl_smollm2.py      # budget recorded in the JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

import torch

from longlore.core.io import write_json
from longlore.core.text import filler_text
from longlore.pretrainrl.base import load_model
from longlore.pretrainrl.config import PretrainRLConfig, method_config
from longlore.pretrainrl.facts import movielens_facts
from longlore.pretrainrl.metrics import evaluate_facts, summarize
from longlore.pretrainrl.mining import Negatives, mine_negatives
from longlore.pretrainrl.scoring import make_blocks, perplexity
from longlore.pretrainrl.trainer import train

ROOT = Path(__file__).resolve().parent
YEARS = [str(y) for y in range(1989, 1999)]
FORMS = ["The movie {s} was released in the year {o}.", "{s} came out in {o}.", "In {o}, the film {s} reached cinemas."]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", type=int, default=150, help="movies scored to find unknown facts")
    ap.add_argument("--facts", type=int, default=60, help="unknown facts to infuse")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--train-layers", type=int, default=6)
    ap.add_argument("--methods", nargs="+", default=["ntp", "pretrainrl"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "pretrainrl_smollm2.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs_dir = args.out.parent / "pretrainrl_runs" / f"smollm2_f{args.facts}_steps{args.steps}_l{args.train_layers}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()

    years = [f for f in movielens_facts(seed=args.seed) if f.relation == "release_year" and f.object in YEARS]
    probe = random.Random(args.seed).sample(years, min(args.probe, len(years)))
    probe = [f.model_copy(update={"candidates": YEARS}) for f in probe]
    model, tok = load_model("smollm2-135m")
    base_path = runs_dir / "base.json"
    if base_path.exists():
        base = json.loads(base_path.read_text())
    else:
        states = evaluate_facts(model, tok, probe, batch_size=32)
        unknown = [f.id for f, s in zip(probe, states) if not s.hit1][: args.facts]
        base = {"probe": len(probe), "probe_hit1": sum(s.hit1 for s in states) / len(states), "unknown_ids": unknown}
        write_json(base_path, base)
    facts = [f for f in probe if f.id in set(base["unknown_ids"])]
    rng = random.Random(args.seed)
    docs = [form.format(s=f.subject, o=f.object) for f in facts for form in FORMS]
    docs += [filler_text(600, seed=1000 + k) for k in range(len(docs) // 3)]
    rng.shuffle(docs)
    blocks = make_blocks(tok, docs, 64)
    heldout = make_blocks(tok, [filler_text(600, seed=50_000 + k) for k in range(12)], 64)
    cfg0 = PretrainRLConfig(
        steps=args.steps,
        lr=args.lr,
        batch_size=4,
        fact_batch_size=8,
        train_layers=args.train_layers,
        mine_max_new_tokens=6,
        mine_every=0,
        eval_batch_size=32,
        warmup=5,
        seed=args.seed,
        log_every=10,
    )
    if "negatives" not in base:
        t0 = time.time()
        negatives = mine_negatives(model, tok, facts, cfg0)
        base["negatives"] = {k: v.model_dump() for k, v in negatives.items()}
        base["mine_seconds"] = time.time() - t0
        write_json(base_path, base, overwrite=True)
    negatives = {k: Negatives(**v) for k, v in base["negatives"].items()}
    if "state" not in base:
        base["state"] = summarize(evaluate_facts(model, tok, facts, negatives, batch_size=32))["all"]
        base["perplexity"] = perplexity(model, heldout, batch_size=4)
        write_json(base_path, base, overwrite=True)
    print(
        f"base: {len(facts)} unknown facts of {len(probe)} probed; state {base['state']}; ppl {base['perplexity']:.2f}",
        flush=True,
    )
    for method in args.methods:
        path = runs_dir / f"{method}_s{args.seed}.json"
        if path.exists():
            continue
        model, tok = load_model("smollm2-135m")
        cfg = method_config(method, cfg0)
        result = train(model, tok, cfg, blocks=blocks, facts=facts, negatives=negatives, progress=True)
        record = {
            "method": method,
            "config": cfg.to_dict(),
            "train_seconds": result.seconds,
            "history": result.history,
            "state": summarize(evaluate_facts(model, tok, facts, negatives, batch_size=32))["all"],
            "perplexity": perplexity(model, heldout, batch_size=4),
        }
        write_json(path, record, overwrite=True)
        print(
            f"{method}: hit1 {record['state']['hit1']:.3f} ppl {record['perplexity']:.2f} ({result.seconds:.0f}s)",
            flush=True,
        )
    runs = {
        m: json.loads((runs_dir / f"{m}_s{args.seed}.json").read_text())
        for m in args.methods
        if (runs_dir / f"{m}_s{args.seed}.json").exists()
    }
    write_json(
        args.out,
        {
            "command": " ".join(["python", *sys.argv]),
            "machine": f"{platform.machine()}, torch threads {args.threads}, shared 2-core CPU",
            "seed": args.seed,
            "model": "SmolLM2-135M-Instruct (core asset smollm2-135m), top layers trained: " + str(args.train_layers),
            "facts": "MovieLens-100k release years 1989-1998 (10 candidate years), cloze: "
            "'The movie {title} was released in the year' -> ' {year}'",
            "budget": {
                "steps": args.steps,
                "corpus_blocks_per_step": cfg0.batch_size,
                "block_size": cfg0.block_size,
                "facts_per_step": cfg0.fact_batch_size,
                "lr": args.lr,
            },
            "base": {k: v for k, v in base.items() if k != "negatives"},
            "runs": {m: {k: r[k] for k in ("state", "perplexity", "train_seconds")} for m, r in runs.items()},
            "wall_seconds_this_invocation": time.time() - t_start,
        },
        overwrite=True,
    )
    print(json.dumps({m: {"hit1": r["state"]["hit1"], "ppl": r["perplexity"]} for m, r in runs.items()}, indent=1))


if __name__ == "__main__":
    main()
