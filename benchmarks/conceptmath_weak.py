"""ConceptMath weak-concept training, checked: SmolLM2-135M on elementary-EN before and after a LoRA
fine-tune on pool problems matched to its bottom-10 concepts, against a control fine-tune on as
many randomly drawn pool problems.

Run:  OMP_NUM_THREADS=1 nohup .venv/bin/python benchmarks/conceptmath_weak.py \\
          [--work runs/conceptmath_weak] [--results benchmarks/results/conceptmath_weak.json] &

Stages (each resumes: evaluation requests are cached in SQLite, LoRA training checkpoints):
1. ``before``: ``bench`` evaluation of element_en (786 items), 5-shot "Therefore, the answer is X."
   exemplars, greedy, 16 new tokens, bf16 weights.
2. ``weak``: ``bench weak-concepts`` on the before run (bottom-10 leaf concepts, MiniLM concept
   classifier, reasoning-gym pool, ``--n-train`` problems, LoRA r16, 2 epochs).
3. ``control``: the same with ``control=True`` (as many problems drawn uniformly from the pool).
4. ``after_weak`` / ``after_control``: the same prompts (same exemplars) with each merged model, on
   every item of the bottom-10 concepts plus a seeded sample of ``--rest-sample`` other items (the
   CPU budget does not cover three full passes); "overall" is then the stratified estimate
   (bottom-10 and rest weighted by their sizes in the full split), computed the same way before
   and after, so the comparison is paired.
5. Analysis: accuracies with percentile-bootstrap 95% intervals (1000 resamples; stratified for
   overall) and paired intervals of the differences.

The bottom-10 are chosen on the same items that measure them afterwards, so any change of the
model moves them up by regression to the mean; the control fine-tune measures that part, and the
claim rests on weak vs control.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
from pathlib import Path

import numpy as np
import torch

from longlore.bench.build.config import WeakConceptConfig
from longlore.bench.build.weak import run_weak_concepts
from longlore.bench.config import BenchConfig
from longlore.bench.data import load_benchmark
from longlore.bench.report import write_run
from longlore.bench.runner import Grader, evaluate, run_task
from longlore.bench.tasks import TASKS
from longlore.core.backends import CachedTextModel, HFTextModel
from longlore.core.io import read_json, run_provenance, write_json, write_jsonl
from longlore.core.metrics import bootstrap_ci
from longlore.core.models import load_causal_lm

TASK = "conceptmath/element_en"
SHOTS, MAX_NEW = 5, 16


def release_memory() -> None:
    """Hand freed memory back to the OS between stages (glibc keeps it otherwise; the machine is shared)."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _model(spec: str, cache: Path) -> CachedTextModel:
    model, tokenizer = load_causal_lm(spec, dtype=torch.bfloat16)
    return CachedTextModel(HFTextModel(model, tokenizer, batch_size=8, model_id=f"{spec}:bfloat16"), cache)


def _config(spec: str, data: str | None) -> BenchConfig:
    return BenchConfig(tasks=[TASK], model=f"{spec}:bfloat16", shots=SHOTS, max_new_tokens=MAX_NEW, data=data)


def evaluate_full(spec: str, folder: Path, cache: Path, data: str | None) -> None:
    """The whole split through the harness (results.json, samples, report under ``folder``)."""
    if (folder / "results.json").exists():
        return
    results, samples = evaluate(_config(spec, data), model=_model(spec, cache))
    write_run(folder, results, samples, overwrite=True)


def evaluate_subset(spec: str, ids: set[str], folder: Path, cache: Path, data: str | None) -> None:
    """The items ``ids`` with exactly the prompts of the full run (exemplars drawn from the whole split)."""
    if (folder / "samples.jsonl").exists():
        return
    config = _config(spec, data)
    split = load_benchmark("conceptmath", "element_en", data)
    subset = [it for it in split if it.id in ids]
    samples, _ = run_task(TASKS[TASK], subset, split, _model(spec, cache), Grader(config, None), config)
    write_jsonl(folder / "samples.jsonl", samples, overwrite=True)


def per_item(path: Path) -> dict[str, tuple[str, float]]:
    """item id -> (leaf concept, correct) from a samples file."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["item_id"]: ("/".join(r["concept"]), float(r["correct"])) for r in rows}


def summarise(values: list[float], seed: int = 0) -> dict:
    mean, low, high = bootstrap_ci(values, n_resamples=1000, seed=seed)
    return {"acc": mean, "ci95": [low, high], "n": len(values)}


def stratified(strata: list[tuple[list[float], int]], seed: int = 0, resamples: int = 1000) -> dict:
    """Weighted mean of strata means (weights: full-split sizes) with a percentile bootstrap that
    resamples inside each stratum."""
    total = sum(w for _, w in strata)
    rng = np.random.default_rng(seed)
    point = sum(np.mean(v) * w for v, w in strata) / total
    draws = np.zeros(resamples)
    for values, weight in strata:
        data = np.asarray(values, dtype=float)
        draws += data[rng.integers(0, data.size, size=(resamples, data.size))].mean(1) * weight / total
    low, high = np.quantile(draws, [0.025, 0.975])
    return {
        "acc": float(point),
        "ci95": [float(low), float(high)],
        "n": sum(len(v) for v, _ in strata),
        "estimator": "stratified (bottom-10 all items, rest sampled), weights = full-split sizes",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/conceptmath_weak"))
    parser.add_argument("--results", type=Path, default=None, help="results JSON (default: WORK/results.json)")
    parser.add_argument("--data", default=None, help="benchmark data folder")
    parser.add_argument("--before-cache", type=Path, default=None, help="request cache of the before run")
    parser.add_argument("--n-train", type=int, default=120, help="fine-tuning problems per arm")
    parser.add_argument("--rest-sample", type=int, default=120, help="items outside the bottom-10 evaluated after")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = args.work
    stage_file = work / "stage_cpu.json"
    stage_cpu = read_json(stage_file) if stage_file.exists() else {}

    def stage(name: str, fn):
        start = cpu_seconds()
        out = fn()
        release_memory()
        # A resumed stage adds what this process spent on it (a finished one adds ~0).
        stage_cpu[name] = round(stage_cpu.get(name, 0.0) + cpu_seconds() - start, 1)
        write_json(stage_file, stage_cpu, overwrite=True)
        return out

    before_cache = args.before_cache or work / "before" / "cache.sqlite"
    stage("before", lambda: evaluate_full("smollm2-135m", work / "before", before_cache, args.data))
    before = per_item(work / "before" / "samples_conceptmath__element_en.jsonl")

    arms = {}
    for arm, control in (("weak", False), ("control", True)):
        folder = work / arm
        config = WeakConceptConfig(
            results=str(work / "before"),
            out=str(folder),
            control=control,
            n_train=args.n_train,
            data=args.data,
            gradient_checkpointing=True,  # same updates; keeps the fine-tune under ~1 GB on a shared machine
        )
        if (folder / "summary.json").exists():
            arms[arm] = read_json(folder / "summary.json")
        else:
            arms[arm] = stage(arm, lambda c=config: run_weak_concepts(c, dtype="bfloat16"))
    bottom = set(arms["weak"]["bottom_concepts"])
    in_bottom = sorted(i for i, (c, _) in before.items() if c in bottom)
    rest_all = sorted(i for i, (c, _) in before.items() if c not in bottom)
    rest = sorted(random.Random(0).sample(rest_all, min(args.rest_sample, len(rest_all))))
    for arm in arms:
        stage(
            f"after_{arm}",
            lambda a=arm: evaluate_subset(
                str(work / a / "final"),
                set(in_bottom + rest),
                work / f"after_{a}",
                work / f"cache_{a}.sqlite",
                args.data,
            ),
        )
    runs = {"before": before}
    runs.update({f"after_{a}": per_item(work / f"after_{a}" / "samples.jsonl") for a in arms})

    def acc(run: str, subset: list[str]) -> dict:
        return summarise([runs[run][i][1] for i in subset])

    def diff(a: str, b: str, subset: list[str]) -> dict:
        return summarise([runs[a][i][1] - runs[b][i][1] for i in subset])

    def overall(run: str, minus: str | None = None) -> dict:
        def values(subset):
            return [runs[run][i][1] - (runs[minus][i][1] if minus else 0.0) for i in subset]

        return stratified([(values(in_bottom), len(in_bottom)), (values(rest), len(rest_all))])

    per_concept = {
        c: {run: float(np.mean([runs[run][i][1] for i in in_bottom if runs[run][i][0] == c])) for run in runs}
        for c in sorted(bottom)
    }
    result = {
        "bottom10_before": acc("before", in_bottom),
        "bottom10_after": acc("after_weak", in_bottom),
        "control_bottom10_after": acc("after_control", in_bottom),
        "overall_before": overall("before"),
        "overall_after": overall("after_weak"),
        "control_overall_after": overall("after_control"),
        "overall_before_exact_full_split": acc("before", sorted(before)),
        "rest_before": acc("before", rest),
        "rest_after": acc("after_weak", rest),
        "control_rest_after": acc("after_control", rest),
        "paired_differences": {
            "bottom10_after_minus_before": diff("after_weak", "before", in_bottom),
            "bottom10_after_minus_control": diff("after_weak", "after_control", in_bottom),
            "control_bottom10_after_minus_before": diff("after_control", "before", in_bottom),
            "rest_after_minus_before": diff("after_weak", "before", rest),
            "overall_after_minus_before": overall("after_weak", "before"),
            "overall_after_minus_control": overall("after_weak", "after_control"),
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
                    "train_cost",
                    "loss_first",
                    "loss_last",
                )
            }
            | {"gradient_checkpointing": s["config"].get("gradient_checkpointing", False)}
            for arm, s in arms.items()
        },
        "setup": {
            "model": "SmolLM2-135M-Instruct (bf16 weights)",
            "task": TASK,
            "prompt": f"{SHOTS}-shot, exemplars answered 'Therefore, the answer is X.', greedy, {MAX_NEW} new tokens",
            "evaluated_after": f"{len(in_bottom)} bottom-10 items + {len(rest)} of {len(rest_all)} other items (seed 0)",
            "fine_tune": {
                k: v for k, v in arms["weak"]["config"].items() if k not in ("results", "out", "control", "data")
            },
            "bootstrap": "percentile, 1000 resamples over items, seed 0; differences are paired per item",
        },
        "cpu_seconds": stage_cpu,
        "cpu_seconds_total": round(sum(stage_cpu.values()), 1),
        "cpu_seconds_note": "per stage, the CPU of the process that finished it: a stage resumed after an "
        "interruption counts only the resuming process (train.*.train_cost holds each fine-tune's whole CPU, "
        "carried in its checkpoint), and `before` counts only what its --before-cache did not already hold",
        **run_provenance(seed=0),
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
