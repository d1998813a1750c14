"""PretrainRL on a synthetic world: tail Hit@1 and the probability state, five methods x seeds.

A small Llama (``small-llama``, d 128, 4 layers) is pretrained from scratch on the world's corpus
(cached checkpoint), which leaves tail facts in the "high-probability falsehood / low-probability
truth" state. From that one base, every method continues for the same number of optimizer steps
with the same corpus and fact batch sizes: continued NTP, SFT on question forms, PretrainRL
(debias then learn), PretrainRL without debias, debias only. All runs are scored against the
negatives mined from the base model, on the cloze form (and on the question form), with held-out
perplexity. Each (method, seed) result is saved as it completes; a rerun resumes.

    nice -n 10 .venv/bin/python benchmarks/pretrainrl_synthetic.py          # see the JSON for the budget
    .venv/bin/python benchmarks/pretrainrl_synthetic.py --seeds 0 --methods pretrainrl   # one run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import torch

from longlore.core.io import save_figure, write_json
from longlore.pretrainrl.base import load_model, save_model
from longlore.pretrainrl.config import METHODS, PretrainRLConfig, WorldConfig, method_config
from longlore.pretrainrl.metrics import evaluate_facts, summarize
from longlore.pretrainrl.mining import load_negatives, mine_negatives, save_negatives
from longlore.pretrainrl.scoring import make_blocks, perplexity
from longlore.pretrainrl.trainer import train
from longlore.pretrainrl.world import SyntheticWorld

ROOT = Path(__file__).resolve().parent
BUCKETS = ("head", "torso", "tail", "all")


def evaluate(model, tok, world, negatives, heldout) -> dict:
    cloze = summarize(evaluate_facts(model, tok, world.facts, negatives))
    question = summarize(evaluate_facts(model, tok, world.facts, prompt_field="question"))
    return {
        "cloze": cloze,
        "question": {b: {"hit1": question[b]["hit1"]} for b in question},
        "perplexity": perplexity(model, heldout),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--steps", type=int, default=150, help="continuation steps (equal for every method)")
    ap.add_argument("--fact-batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--work", type=Path, default=ROOT / "checkpoints" / "pretrainrl")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "pretrainrl_synthetic.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    world = SyntheticWorld.generate(WorldConfig())
    base_dir = args.work / f"base{args.pretrain_steps}"
    runs_dir = (
        args.out.parent / "pretrainrl_runs" / f"base{args.pretrain_steps}_steps{args.steps}_fb{args.fact_batch_size}"
    )
    runs_dir.mkdir(parents=True, exist_ok=True)

    # 1. the pretrained base (cached)
    if not (base_dir / "config.json").exists():
        model, tok = load_model("small-llama:seed=0")
        pre = PretrainRLConfig(
            fact_objective="none",
            steps=args.pretrain_steps,
            lr=3e-3,
            warmup=30,
            batch_size=15,
            fact_batch_size=1,
            seed=0,
        )
        t0 = time.time()
        train(model, tok, pre, blocks=make_blocks(tok, world.corpus, pre.block_size), progress=True)
        save_model(model, tok, base_dir, overwrite=True)
        write_json(base_dir / "pretrain.json", {"config": pre.to_dict(), "seconds": time.time() - t0}, overwrite=True)
    model, tok = load_model(str(base_dir))
    blocks = make_blocks(tok, world.corpus, 64)
    heldout = make_blocks(tok, world.heldout, 64)
    neg_path = base_dir / "negatives.jsonl"
    base_cfg = PretrainRLConfig(steps=args.steps, fact_batch_size=args.fact_batch_size, lr=args.lr)
    if not neg_path.exists():
        save_negatives(neg_path, mine_negatives(model, tok, world.facts, base_cfg), overwrite=True)
    negatives = load_negatives(neg_path)
    base_eval_path = runs_dir / "base.json"
    if not base_eval_path.exists():
        write_json(base_eval_path, evaluate(model, tok, world, negatives, heldout))

    # 2. every (method, seed) from the same base
    for method in args.methods:
        for seed in args.seeds:
            path = runs_dir / f"{method}_s{seed}.json"
            if path.exists():
                continue
            model, tok = load_model(str(base_dir))
            cfg = method_config(method, PretrainRLConfig(**{**asdict(base_cfg), "seed": seed}))
            print(f"== {method} seed {seed}", flush=True)
            result = train(model, tok, cfg, blocks=blocks, facts=world.facts, negatives=negatives, progress=False)
            t0 = time.time()
            record = {
                "method": method,
                "seed": seed,
                "config": cfg.to_dict(),
                "train_seconds": result.seconds,
                "mined_rounds": result.mined_rounds,
                "history": result.history,
                **evaluate(model, tok, world, negatives, heldout),
            }
            record["eval_seconds"] = time.time() - t0
            write_json(path, record, overwrite=True)
            print(
                f"   tail hit1 {record['cloze']['tail']['hit1']:.3f} ppl {record['perplexity']:.3f} "
                f"({result.seconds:.0f}s)",
                flush=True,
            )

    # 3. aggregate
    base = json.loads(base_eval_path.read_text())
    table: dict = {}
    for method in METHODS:
        runs = [json.loads(p.read_text()) for p in sorted(runs_dir.glob(f"{method}_s*.json"))]
        if not runs:
            continue

        def stat(values: list[float]) -> dict:
            return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}

        table[method] = {
            "seeds": [r["seed"] for r in runs],
            "train_seconds": stat([r["train_seconds"] for r in runs]),
            "perplexity": stat([r["perplexity"] for r in runs]),
            "perplexity_increase_pct": stat([100 * (r["perplexity"] / base["perplexity"] - 1) for r in runs]),
            "cloze": {
                b: {
                    k: stat([r["cloze"][b][k] for r in runs])
                    for k in (
                        "hit1",
                        "hit5",
                        "p_truth",
                        "rank",
                        "margin",
                        "max_p_false",
                        "low_truth_count",
                        "high_false_count",
                    )
                }
                for b in BUCKETS
            },
            "question_hit1": {b: stat([r["question"][b]["hit1"] for r in runs]) for b in BUCKETS},
        }
    tail = {m: v["cloze"]["tail"]["hit1"]["mean"] for m, v in table.items()}
    target = None
    if {"pretrainrl", "ntp", "sft"} <= set(tail):
        gain = 100 * (tail["pretrainrl"] - max(tail["ntp"], tail["sft"]))
        target = {
            "tail_hit1_gain_points_vs_best_baseline": gain,
            "perplexity_increase_pct": table["pretrainrl"]["perplexity_increase_pct"]["mean"],
            "met": gain >= 10 and table["pretrainrl"]["perplexity_increase_pct"]["mean"] <= 5,
        }
    pre = json.loads((base_dir / "pretrain.json").read_text()) if (base_dir / "pretrain.json").exists() else {}
    write_json(
        args.out,
        {
            "command": " ".join(["python", *sys.argv]),
            "machine": f"{platform.machine()} {platform.processor() or ''}, torch threads {args.threads}, shared 2-core CPU",
            "seeds": args.seeds,
            "world": asdict(world.config),
            "facts_per_bucket": dict(Counter(f.bucket for f in world.facts)),
            "model": "small-llama (Llama, d128, 4 layers, 1024-token BPE), pretrained from scratch",
            "pretrain": pre,
            "budget": {
                "steps": args.steps,
                "corpus_blocks_per_step": base_cfg.batch_size,
                "block_size": base_cfg.block_size,
                "facts_per_step": args.fact_batch_size,
            },
            "base": base,
            "methods": table,
            "target": target,
        },
        overwrite=True,
    )
    plot(table, base, args.out.with_suffix(".png"))
    print(json.dumps({"tail_hit1": tail, "target": target}, indent=1))


def plot(table: dict, base: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(table)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    width = 0.8 / (len(methods) + 1)
    for j, (name, get_m, get_s, base_v) in enumerate(
        [
            (
                "Hit@1 (cloze)",
                lambda m, b: table[m]["cloze"][b]["hit1"]["mean"],
                lambda m, b: table[m]["cloze"][b]["hit1"]["std"],
                lambda b: base["cloze"][b]["hit1"],
            ),
            (
                "P(truth) - max P(falsehood)",
                lambda m, b: table[m]["cloze"][b]["margin"]["mean"],
                lambda m, b: table[m]["cloze"][b]["margin"]["std"],
                lambda b: base["cloze"][b]["margin"],
            ),
        ]
    ):
        ax = axes[j]
        xs = range(len(BUCKETS))
        ax.bar([x - 0.4 for x in xs], [base_v(b) for b in BUCKETS], width, label="base", color="grey")
        for i, m in enumerate(methods):
            ax.bar(
                [x - 0.4 + (i + 1) * width for x in xs],
                [get_m(m, b) for b in BUCKETS],
                width,
                yerr=[get_s(m, b) for b in BUCKETS],
                label=m,
                capsize=2,
            )
        ax.set_xticks([x - 0.4 + width * len(methods) / 2 for x in xs], BUCKETS)
        ax.set_title(name)
    fig.legend(
        *axes[0].get_legend_handles_labels(),
        loc="lower center",
        ncol=len(methods) + 1,
        fontsize=8,
        bbox_to_anchor=(0.5, -0.08),
    )
    ax = axes[2]
    ax.bar(
        ["base", *methods],
        [base["perplexity"], *[table[m]["perplexity"]["mean"] for m in methods]],
        yerr=[0, *[table[m]["perplexity"]["std"] for m in methods]],
        color="tab:purple",
        capsize=2,
    )
    ax.set_title("held-out perplexity")
    ax.set_ylim(min(base["perplexity"], *[table[m]["perplexity"]["mean"] for m in methods]) * 0.95, None)
    ax.tick_params(axis="x", rotation=30)
    fig.suptitle("PretrainRL on the synthetic world (mean ± std over seeds)")
    save_figure(fig, path)


if __name__ == "__main__":
    main()
