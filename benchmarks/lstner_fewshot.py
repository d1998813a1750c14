"""LST-NER few-shot transfer benchmark: strict span F1 vs number of target sentences.

Source domain: PER/ORG/LOC/MISC templated over real KJV names and MovieLens titles; target
domain: the shared e-commerce world (BRAND/PRODUCT/CATEGORY/ATTRIBUTE/ORIGIN/AUDIENCE), test
brands unseen in training (see ``longlore.lstner.synth``). MiniLM encoder. The source tagger is
trained once and cached; every (method, shots, seed) result is saved as it completes, so an
interrupted run resumes where it stopped.

Every run gets the same number of optimiser steps (``--steps``, rounded up to whole epochs), so
the methods differ only in what they start from and what they optimise.

    nice -n 10 .venv/bin/python benchmarks/lstner_fewshot.py          # ~40 min on 2 shared cores
    .venv/bin/python benchmarks/lstner_fewshot.py --seeds 0 --shots 50 --test 100   # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from longlore.core.io import save_figure, write_json
from longlore.lstner.config import LSTNERConfig
from longlore.lstner.data import LabelSet
from longlore.lstner.pipeline import NERPipeline
from longlore.lstner.synth import TARGET_TYPES, source_corpus, target_corpus
from longlore.lstner.trainer import train_source, train_target

ROOT = Path(__file__).resolve().parent
# method name -> (trainer method, config overrides)
METHODS = {
    "target-only": ("target-only", {}),
    "source-then-target": ("source-then-target", {}),
    "multi-task": ("multi-task", {}),
    "lstner": ("lstner", {}),
    "lstner-no-gw": ("lstner", {"l_gw": 0.0}),
    "lstner-no-graph": ("lstner", {"use_graph": False}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--shots", type=int, nargs="+", default=[50, 100, 200])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--steps", type=int, default=32, help="optimiser steps per target run (rounded up to epochs)")
    ap.add_argument("--batch-size", type=int, default=8, help="target sentences per step")
    ap.add_argument("--source-sentences", type=int, default=1200)
    ap.add_argument("--source-epochs", type=int, default=1)
    ap.add_argument("--test", type=int, default=200, help="held-out target test sentences")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--work", type=Path, default=ROOT / "checkpoints" / "lstner")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "lstner_fewshot.json")
    ap.add_argument("--aggregate-only", action="store_true", help="only summarise the runs saved so far")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    base = LSTNERConfig(encoder=args.encoder, max_len=48, batch_size=args.batch_size)

    # 1. the source tagger, trained once and cached.
    source_dir = args.work / f"source-{args.encoder}-{args.source_sentences}x{args.source_epochs}"
    source_train = source_corpus(args.source_sentences, seed=0, split="train")
    source_test = source_corpus(200, seed=0, split="test")
    if (source_dir / "lstner.json").is_file():
        source = NERPipeline.from_pretrained(source_dir)
    else:
        t0 = time.time()
        source = train_source(
            source_train, replace(base, epochs=args.source_epochs, batch_size=16), dev=source_test[:100]
        )
        source.extra["train_seconds"] = round(time.time() - t0, 1)
        source.extra["test"] = source.evaluate(source_test[100:])
        source.save_pretrained(source_dir, overwrite=True)
    print(f"source tagger: strict F1 {source.extra['test']['f1']} on 100 held-out source sentences", flush=True)

    # 2. few-shot target runs, one result file each.
    labels = LabelSet(TARGET_TYPES)
    test = target_corpus(args.test, seed=0, split="test")
    runs_dir = args.work / "runs"
    # Shots-major order: if the budget runs out, the smaller (headline) shot counts are complete.
    for shots in args.shots if not args.aggregate_only else []:
        for seed in args.seeds:
            train = target_corpus(shots, seed=seed + 1, split="train")
            epochs = math.ceil(args.steps / math.ceil(shots / base.batch_size))
            for name in args.methods:
                path = runs_dir / f"{name}_{shots}_{seed}.json"
                if path.is_file():
                    continue
                method, overrides = METHODS[name]
                cfg = replace(base, epochs=epochs, seed=seed, **overrides)
                t0 = time.time()
                pipe = train_target(train, cfg, method, source, source_train, labels=labels)
                scores = pipe.evaluate(test)
                record = {
                    "method": name,
                    "shots": shots,
                    "seed": seed,
                    "epochs": epochs,
                    "train_seconds": round(time.time() - t0, 1),
                    **scores,
                    "final_epoch_losses": pipe.extra["history"][-1],
                }
                write_json(path, record, overwrite=True)
                print(
                    f"{name:20s} shots={shots:3d} seed={seed} F1={scores['f1']:6.2f} ({record['train_seconds']}s)",
                    flush=True,
                )

    # 3. aggregate whatever is complete (also after a partial run) and plot.
    summary = aggregate(runs_dir, args)
    summary.update(
        {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "threads": args.threads,
                "cpu_cores_shared": True,
            },
            "budget": {
                "steps_per_run": args.steps,
                "source_sentences": args.source_sentences,
                "source_epochs": args.source_epochs,
                "source_batch_size": 16,
                "max_len": base.max_len,
                "batch_size": base.batch_size,
                "lr": base.lr,
                "head_lr": base.head_lr,
                "this_invocation_seconds": round(time.time() - started, 1),
            },
            "source_tagger": source.extra.get("test"),
            "data": "source: templates over KJV person/place/gentilic names + MovieLens titles (MISC); "
            "target: core.text.EcomWorld sentences, test brands disjoint from train brands",
            "test_sentences": args.test,
        }
    )
    write_json(args.out, summary, overwrite=True)
    plot(summary, args.out.with_suffix(".png"))
    print(json.dumps(summary["table"], indent=1))


def aggregate(runs_dir: Path, args: argparse.Namespace) -> dict:
    runs = [json.loads(p.read_text()) for p in sorted(runs_dir.glob("*.json"))]
    table: dict[str, dict[str, dict]] = {}
    for name in args.methods:
        for shots in args.shots:
            f1s = [r["f1"] for r in runs if r["method"] == name and r["shots"] == shots and r["seed"] in args.seeds]
            if f1s:
                table.setdefault(name, {})[str(shots)] = {
                    "mean": round(statistics.mean(f1s), 2),
                    "std": round(statistics.stdev(f1s), 2) if len(f1s) > 1 else 0.0,
                    "n_seeds": len(f1s),
                }
    return {
        "metric": "strict span F1 (seqeval IOB2 strict), %",
        "table": table,
        "seeds": args.seeds,
        "runs": [r for r in runs if r["seed"] in args.seeds and r["shots"] in args.shots],
    }


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, by_shots in summary["table"].items():
        xs = sorted(int(s) for s in by_shots)
        ys = [by_shots[str(x)]["mean"] for x in xs]
        err = [by_shots[str(x)]["std"] for x in xs]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name, linewidth=2.5 if name == "lstner" else 1.2)
    ax.set_xlabel("target training sentences")
    ax.set_ylabel("strict span F1 (%)")
    ax.set_xscale("log")
    ax.set_xticks([50, 100, 200], ["50", "100", "200"])
    ax.minorticks_off()
    ax.set_title("Few-shot cross-domain NER (MiniLM), mean ± std over seeds")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
