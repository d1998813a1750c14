"""build-kg, shown: 300 English questions from the MovieLens-Freebase KG and 300 from UMLS, scored
with the existing ECKGBench tasks on SmolLM2-135M-Instruct, plus how often the stage-2 filter
removed a real synonym of the answer (hand-checked).

Run:  OMP_NUM_THREADS=1 nohup nice -n 5 .venv/bin/python benchmarks/build_kg_smollm2.py \\
          [--work runs/build_kg_smollm2] [--results benchmarks/results/build_kg_smollm2.json] &

1. ``bench build-kg`` on each source (seed 0, 300 questions, MiniLM stage-2 filter at 0.80, the
   MMR heuristic for stage 3 since no LLM picker is given, no judge).
2. ``eckgbench/main`` on every question (0-shot generation, system "直接输出答案。", greedy, 8 new
   tokens, the official substring-and-no-echo rule) and ``eckgbench/main_mc`` (log-likelihood of
   each option) on a seeded ``--mc-limit`` of them; bf16 weights, requests cached in WORK.
3. Accuracy overall, per dimension and per relation (percentile-bootstrap 95% intervals).
4. Stage 2: how many candidates it dropped; the distinct (answer, dropped candidate) pairs are
   written to WORK/stage2_dropped_pairs.json, and the labels in
   ``benchmarks/build_kg_synonym_labels.json`` (30 pairs read and labelled by hand: is the
   candidate a synonym / same referent as the answer?) give the synonym rate.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
from collections import defaultdict
from pathlib import Path

import torch

from longlore.bench.build.config import KGBuildConfig
from longlore.bench.build.kg import build_kg_benchmark
from longlore.bench.config import BenchConfig
from longlore.bench.report import write_run
from longlore.bench.runner import evaluate
from longlore.core.backends import CachedTextModel, HFTextModel
from longlore.core.io import read_json, run_provenance, write_json
from longlore.core.metrics import bootstrap_ci
from longlore.core.models import load_causal_lm

SOURCES = ("movielens-freebase", "umls")
LABELS = Path(__file__).with_name("build_kg_synonym_labels.json")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ci(values: list[float]) -> dict:
    mean, low, high = bootstrap_ci(values, n_resamples=1000, seed=0)
    return {"acc": mean, "ci95": [low, high], "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/build_kg_smollm2"))
    parser.add_argument("--results", type=Path, default=None, help="results JSON (default: WORK/results.json)")
    parser.add_argument("--n-questions", type=int, default=300)
    parser.add_argument("--mc-limit", type=int, default=100, help="questions per source for the log-likelihood task")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot of an existing --results file")
    args = parser.parse_args()
    if args.replot:
        target = args.results or args.work / "results.json"
        plot(read_json(target), target.with_suffix(".png"))
        return
    torch.set_num_threads(1)
    work, cpu = args.work, {}
    model = None
    result: dict = {"sources": {}}
    pairs_out = []
    for source in SOURCES:
        folder = work / source
        start = cpu_seconds()
        report = build_kg_benchmark(KGBuildConfig(triples=source, out=str(folder), n_questions=args.n_questions))
        cpu[f"build_{source}"] = round(cpu_seconds() - start, 1)
        records = {
            r["id"]: r for r in map(json.loads, (folder / "eckgbench" / "ECKGBench.jsonl").read_text().splitlines())
        }
        start = cpu_seconds()
        runs = {}
        for name, task, limit in (
            ("generation", "eckgbench/main", None),
            ("loglikelihood", "eckgbench/main_mc", args.mc_limit),
        ):
            run_dir = folder / f"eval_{name}"
            if not (run_dir / "results.json").exists():
                if model is None:
                    lm, tok = load_causal_lm("smollm2-135m", dtype="bfloat16")
                    model = HFTextModel(lm, tok, batch_size=8, model_id="smollm2-135m:bfloat16")
                config = BenchConfig(
                    tasks=[task], model="smollm2-135m:bfloat16", shots=0, limit=limit, data=str(folder)
                )
                res, samples = evaluate(config, model=CachedTextModel(model, work / "cache.sqlite"))
                write_run(run_dir, res, samples, overwrite=True)
            samples_file = run_dir / f"samples_{task.replace('/', '__')}.jsonl"
            runs[name] = [json.loads(line) for line in samples_file.read_text().splitlines()]
        cpu[f"eval_{source}"] = round(cpu_seconds() - start, 1)

        summary = {"build": report["counts"], "per_relation_count": report["per_relation"]}
        for name, samples in runs.items():
            by_rel, by_dim = defaultdict(list), defaultdict(list)
            for s in samples:
                record = records[int(s["item_id"].split("-", 1)[1])]
                by_rel[record["relation"]].append(float(s["correct"]))
                by_dim[record["dim"]].append(float(s["correct"]))
            summary[name] = {
                "overall": ci([float(s["correct"]) for s in samples]),
                "per_dim": {d: ci(v) for d, v in sorted(by_dim.items())},
                "per_relation": {r: ci(v) for r, v in sorted(by_rel.items(), key=lambda kv: -len(kv[1]))},
            }
            if name == "generation":
                summary[name]["echo_rate"] = sum(bool(s.get("echo")) for s in samples) / len(samples)
        stages = [json.loads(line) for line in (folder / "stages.jsonl").read_text().splitlines()]
        distinct = sorted(
            {(s["answer"], c, round(cos, 3), s["relation"]) for s in stages for c, cos in s["stage2_dropped"]}
        )
        summary["stage2"] = {
            "questions": len(stages),
            "questions_with_a_dropped_candidate": sum(bool(s["stage2_dropped"]) for s in stages),
            "dropped_candidates": sum(len(s["stage2_dropped"]) for s in stages),
            "distinct_dropped_pairs": len(distinct),
            "filter_skipped": sum(s["stage2_filter_skipped"] for s in stages),
        }
        pairs_out += [
            {"source": source, "answer": a, "candidate": c, "cosine": cos, "relation": r} for a, c, cos, r in distinct
        ]
        result["sources"][source] = summary
    write_json(work / "stage2_dropped_pairs.json", pairs_out, overwrite=True)

    if LABELS.exists():
        labels = read_json(LABELS)
        checked = labels["pairs"]
        result["synonym_check"] = {
            "checked": len(checked),
            "synonym_or_same_referent": sum(p["synonym"] for p in checked),
            "rate": sum(p["synonym"] for p in checked) / len(checked),
            "how": labels["how"],
            "kinds": dict(sorted(_count(p["kind"] for p in checked).items())),
        }
    result.update(
        {
            "setup": {
                "model": "SmolLM2-135M-Instruct (bf16 weights)",
                "build": "seed 0, 300 questions per source, is-a share 0.46, MiniLM stage-2 filter (drop >= 0.80, keep 15), "
                "stage 3 MMR heuristic (lambda 0.7), no judge",
                "generation": "eckgbench/main, 0-shot, greedy, 8 new tokens, official substring-and-no-echo rule",
                "loglikelihood": f"eckgbench/main_mc on a seeded {args.mc_limit} questions per source",
                "bootstrap": "percentile, 1000 resamples, seed 0",
            },
            "cpu_seconds": cpu,
            "cpu_seconds_total": round(sum(cpu.values()), 1),
            **run_provenance(seed=0),
        }
    )
    target = args.results or work / "results.json"
    write_json(target, result, overwrite=True)
    plot(result, target.with_suffix(".png"))
    print(f"wrote {target}")


def plot(result: dict, path: Path, min_n: int = 10) -> None:
    """Generation and log-likelihood accuracy per relation (relations with >= ``min_n`` generation
    questions), 95% bootstrap intervals, chance (1 in 4) marked for the option task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longlore.core.io import save_figure

    sources = list(result["sources"])
    fig, axes = plt.subplots(1, len(sources), figsize=(5.2 * len(sources), 3.8), squeeze=False)
    for ax, source in zip(axes[0], sources):
        summary = result["sources"][source]
        rels = [r for r, v in summary["generation"]["per_relation"].items() if v["n"] >= min_n]
        for j, (name, color) in enumerate((("generation", "#1f77b4"), ("loglikelihood", "#ff7f0e"))):
            rows = [summary[name]["per_relation"].get(r, {"acc": 0.0, "ci95": [0.0, 0.0], "n": 0}) for r in rels]
            xs = [i + (j - 0.5) * 0.38 for i in range(len(rels))]
            errs = [[v["acc"] - v["ci95"][0] for v in rows], [v["ci95"][1] - v["acc"] for v in rows]]
            label = {"generation": "generation (0-shot)", "loglikelihood": "options (log-likelihood)"}[name]
            ax.bar(xs, [v["acc"] for v in rows], 0.38, yerr=errs, capsize=2, color=color, label=label)
        ax.axhline(0.25, color="#777", linestyle=":", linewidth=1, label="chance, 4 options")
        ax.set_xticks(range(len(rels)), [r.replace("_", " ") for r in rels], rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{source}: {summary['build']['questions']} built questions", fontsize=10)
    axes[0][0].set_ylabel("SmolLM2-135M accuracy (95% CI)")
    axes[0][0].legend(fontsize=7, loc="upper left")
    save_figure(fig, path)


def _count(values) -> dict:
    out: dict = defaultdict(int)
    for v in values:
        out[v] += 1
    return out


if __name__ == "__main__":
    random.seed(0)
    main()
