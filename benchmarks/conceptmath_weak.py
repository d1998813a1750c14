"""ConceptMath weak-concept training, checked: SmolLM2-135M on elementary-EN before and after a LoRA
fine-tune on pool problems matched to its bottom-10 concepts, against a control fine-tune on as
many randomly drawn pool problems.

Run:  OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/conceptmath_weak.py \\
          [--work runs/conceptmath_weak] [--results benchmarks/results/conceptmath_weak.json] &

Stages (each resumes: evaluation requests are cached in SQLite, LoRA training checkpoints):
1. ``before``: ``bench`` evaluation of element_en (786 items), 5-shot "Therefore, the answer is X."
   exemplars, greedy, 16 new tokens, bf16 weights.
2. ``weak``: ``bench weak-concepts`` on the before run (bottom-10 leaf concepts, MiniLM concept
   classifier, reasoning-gym pool, 240 problems, LoRA r16, 2 epochs).
3. ``control``: the same with ``control=True`` (as many problems drawn uniformly from the pool).
4. ``after_weak`` / ``after_control``: the same evaluation with each merged model.
5. Analysis: accuracy on the bottom-10 concepts' items and overall, with percentile-bootstrap 95%
   intervals (1000 resamples) and paired intervals of the differences.

The bottom-10 are chosen on the same items that measure them afterwards, so any change of the
model moves them up by regression to the mean; the control fine-tune measures that part, and the
claim rests on weak vs control.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import torch

from longlore.bench.build.config import WeakConceptConfig
from longlore.bench.build.weak import run_weak_concepts
from longlore.bench.config import BenchConfig
from longlore.bench.report import write_run
from longlore.bench.runner import evaluate
from longlore.core.backends import CachedTextModel, HFTextModel
from longlore.core.io import read_json, write_json
from longlore.core.metrics import bootstrap_ci
from longlore.core.models import load_causal_lm

TASK = "conceptmath/element_en"
SHOTS, MAX_NEW = 5, 16


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def evaluate_model(spec: str, folder: Path, cache: Path, data: str | None) -> dict:
    """Evaluate one model (bf16) on element_en; results + samples under ``folder``."""
    if (folder / "results.json").exists():
        return read_json(folder / "results.json")
    model, tokenizer = load_causal_lm(spec, dtype=torch.bfloat16)
    inner = HFTextModel(model, tokenizer, batch_size=8, model_id=f"{spec}:bfloat16")
    config = BenchConfig(tasks=[TASK], model=f"{spec}:bfloat16", shots=SHOTS, max_new_tokens=MAX_NEW, data=data)
    start = cpu_seconds()
    results, samples = evaluate(config, model=CachedTextModel(inner, cache))
    results["cpu_seconds"] = round(cpu_seconds() - start, 1)
    write_run(folder, results, samples, overwrite=True)
    return results


def per_item(folder: Path) -> dict[str, tuple[str, float]]:
    """item id -> (leaf concept, correct) from a run's samples."""
    import json

    rows = [json.loads(line) for line in (folder / "samples_conceptmath__element_en.jsonl").read_text().splitlines()]
    return {r["item_id"]: ("/".join(r["concept"]), float(r["correct"])) for r in rows}


def summarise(values: list[float], seed: int = 0) -> dict:
    mean, low, high = bootstrap_ci(values, n_resamples=1000, seed=seed)
    return {"acc": mean, "ci95": [low, high], "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/conceptmath_weak"))
    parser.add_argument("--results", type=Path, default=None, help="results JSON (default: WORK/results.json)")
    parser.add_argument("--data", default=None, help="benchmark data folder")
    parser.add_argument("--before-cache", type=Path, default=None, help="request cache of the before run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work, stage_cpu = args.work, {}
    stage_file = work / "stage_cpu.json"
    if stage_file.exists():
        stage_cpu = read_json(stage_file)

    def stage(name: str, fn):
        start = cpu_seconds()
        out = fn()
        # A resumed stage adds what this process spent on it (a finished one adds ~0).
        stage_cpu[name] = round(stage_cpu.get(name, 0.0) + cpu_seconds() - start, 1)
        write_json(stage_file, stage_cpu, overwrite=True)
        return out

    before_cache = args.before_cache or work / "before" / "cache.sqlite"
    stage("before", lambda: evaluate_model("smollm2-135m", work / "before", before_cache, args.data))
    arms = {}
    for arm, control in (("weak", False), ("control", True)):
        folder = work / arm
        config = WeakConceptConfig(results=str(work / "before"), out=str(folder), control=control, data=args.data)
        arms[arm] = (
            read_json(folder / "summary.json")
            if (folder / "summary.json").exists()
            else stage(arm, lambda c=config: run_weak_concepts(c))
        )
        stage(
            f"after_{arm}",
            lambda f=folder, a=arm: evaluate_model(
                str(f / "merged"), work / f"after_{a}", work / f"cache_{a}.sqlite", args.data
            ),
        )

    bottom = set(arms["weak"]["bottom_concepts"])
    runs = {name: per_item(work / name) for name in ("before", "after_weak", "after_control")}
    ids = sorted(runs["before"])
    in_bottom = [i for i in ids if runs["before"][i][0] in bottom]
    rest = [i for i in ids if runs["before"][i][0] not in bottom]

    def acc(run: str, subset: list[str]) -> dict:
        return summarise([runs[run][i][1] for i in subset])

    def diff(a: str, b: str, subset: list[str]) -> dict:
        return summarise([runs[a][i][1] - runs[b][i][1] for i in subset])

    per_concept = {
        c: {
            run: sum(runs[run][i][1] for i in ids if runs[run][i][0] == c) / sum(runs[run][i][0] == c for i in ids)
            for run in runs
        }
        for c in sorted(bottom)
    }
    result = {
        "bottom10_before": acc("before", in_bottom),
        "bottom10_after": acc("after_weak", in_bottom),
        "control_bottom10_after": acc("after_control", in_bottom),
        "overall_before": acc("before", ids),
        "overall_after": acc("after_weak", ids),
        "control_overall_after": acc("after_control", ids),
        "rest_before": acc("before", rest),
        "rest_after": acc("after_weak", rest),
        "control_rest_after": acc("after_control", rest),
        "paired_differences": {
            "bottom10_after_minus_before": diff("after_weak", "before", in_bottom),
            "bottom10_after_minus_control": diff("after_weak", "after_control", in_bottom),
            "control_bottom10_after_minus_before": diff("after_control", "before", in_bottom),
            "overall_after_minus_before": diff("after_weak", "before", ids),
            "overall_after_minus_control": diff("after_weak", "after_control", ids),
        },
        "bottom10_concepts": sorted(bottom),
        "per_concept_bottom10": per_concept,
        "train": {
            arm: {
                k: s[k]
                for k in (
                    "n_train",
                    "train_concepts",
                    "train_generators",
                    "pool_size",
                    "train_cpu_seconds",
                    "loss_first",
                    "loss_last",
                )
            }
            for arm, s in arms.items()
        },
        "setup": {
            "model": "SmolLM2-135M-Instruct (bf16 weights)",
            "task": TASK,
            "prompt": f"{SHOTS}-shot, exemplars answered 'Therefore, the answer is X.', greedy, {MAX_NEW} new tokens",
            "fine_tune": {
                k: v for k, v in arms["weak"]["config"].items() if k not in ("results", "out", "control", "data")
            },
            "bootstrap": "percentile, 1000 resamples over items, seed 0; differences are paired per item",
        },
        "cpu_seconds": stage_cpu,
        "cpu_seconds_total": round(sum(stage_cpu.values()), 1),
        "command": "OMP_NUM_THREADS=1 python " + " ".join(sys.argv),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": 1,
        },
        "seed": 0,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    target = args.results or work / "results.json"
    write_json(target, result, overwrite=True)
    plot(result, target.with_suffix(".png"))
    print(f"wrote {target}")


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longlore.core.io import save_figure

    groups = [
        ("bottom-10", "bottom10_before", "bottom10_after", "control_bottom10_after"),
        ("rest", "rest_before", "rest_after", "control_rest_after"),
        ("overall", "overall_before", "overall_after", "control_overall_after"),
    ]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.26
    for j, (label, color) in enumerate(
        (("before", "#999"), ("after weak-concept FT", "#1f77b4"), ("after control FT", "#ff7f0e"))
    ):
        xs = [i + (j - 1) * width for i in range(len(groups))]
        vals = [result[g[j + 1]]["acc"] for g in groups]
        errs = [
            [v - result[g[j + 1]]["ci95"][0] for v, g in zip(vals, groups)],
            [result[g[j + 1]]["ci95"][1] - v for v, g in zip(vals, groups)],
        ]
        ax.bar(xs, vals, width, yerr=errs, capsize=3, label=label, color=color)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups])
    ax.set_ylabel("accuracy (95% bootstrap CI)")
    ax.set_title("SmolLM2-135M, ConceptMath elementary-EN, 5-shot")
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
