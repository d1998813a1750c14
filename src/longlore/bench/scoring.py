"""Per-sample verdicts and per-task aggregation (metrics, bootstrap intervals, concept tree).

Every sample record carries ``correct`` (0/1, or the hit-rate for the knowledge boundary) and
``concept`` (the item's concept path), so one aggregation serves all tasks: overall metrics with a
percentile-bootstrap 95% interval, plus accuracy per concept at every depth of the path, weakest
first (the order of the official ConceptMath ``msort`` file).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from longlore.bench import conceptmath, eckg, ecomqa
from longlore.bench.schema import Item
from longlore.bench.tasks import TaskSpec
from longlore.core.metrics import bootstrap_ci

VERDICT_NAMES = ecomqa.VERDICTS


def grade_conceptmath(item: Item, response: str, mode: conceptmath.Mode = "official") -> dict[str, Any]:
    """Verdict fields for one ConceptMath response."""
    out = conceptmath.score_response(item.answers[0], response, item.concept, mode=mode)
    return {
        "correct": float(out["correct"]),
        "extracted": out["extracted"],
        "verdict": "correct" if out["correct"] else "incorrect",
    }


def grade_eckg(item: Item, response: str, strict: bool = False, cut: bool = True) -> dict[str, Any]:
    """Verdict fields for one ECKGBench generation."""
    out = eckg.score_generation(item.question, item.answers[0], response, strict=strict, cut=cut)
    return {
        "correct": float(out["correct"]),
        "extracted": out["answer_span"],
        "echo": out["echo"],
        "verdict": "correct" if out["correct"] else "incorrect",
    }


def grade_letter(letter: str, parsed: bool = True) -> dict[str, Any]:
    """Verdict fields from a judge (or fallback) letter A/B/C."""
    return {"correct": float(letter == "A"), "verdict": VERDICT_NAMES[letter], "judge_parsed": parsed}


def concept_tree(samples: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Accuracy per concept at each depth ``L0``, ``L0/L1``, ...; each level weakest first."""
    buckets: dict[int, dict[tuple[str, ...], list[float]]] = defaultdict(lambda: defaultdict(list))
    for sample in samples:
        path = sample["concept"]
        for depth in range(1, len(path) + 1):
            buckets[depth][tuple(path[:depth])].append(sample["correct"])
    tree: dict[str, list[dict[str, Any]]] = {}
    for depth in sorted(buckets):
        label = "/".join(f"L{d}" for d in range(depth))
        # "concept" joins the path with '/' as the official evaluator names concepts; "path"
        # keeps the parts, since some concept names contain '/' themselves.
        rows = [
            {"concept": "/".join(path), "path": list(path), "n": len(v), "acc": sum(v) / len(v)}
            for path, v in buckets[depth].items()
        ]
        tree[label] = sorted(rows, key=lambda r: (r["acc"], r["concept"]))
    return tree


def _with_ci(name: str, values: Sequence[float], seed: int) -> dict[str, Any]:
    mean, low, high = bootstrap_ci(values, n_resamples=1000, alpha=0.05, seed=seed)
    n = len(values)
    # Standard error of a mean, as lm-eval reports it next to each metric.
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return {
        f"{name},none": mean,
        f"{name}_stderr,none": (var / n) ** 0.5 if n else float("nan"),
        f"{name}_ci95,none": [low, high],
    }


def summarize(spec: TaskSpec, samples: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """lm-eval-style metrics for one task (``"acc,none"``, ``"acc_stderr,none"``, ...)."""
    metrics: dict[str, Any] = {"alias": spec.name}
    if spec.output_type == "boundary":
        per_item = [s["sample_verdicts"] for s in samples]
        metrics.update(_with_ci("hit_rate", [s["correct"] for s in samples], seed))
        for key, value in eckg.boundary_summary(per_item).items():
            if key != "hit_rate":
                metrics[f"{key},none"] = value
        return metrics
    metrics.update(_with_ci("acc", [s["correct"] for s in samples], seed))
    if spec.output_type == "loglikelihood":
        metrics.update(_with_ci("acc_norm", [s["correct_norm"] for s in samples], seed))
    if spec.grader == "ecomqa":
        n = len(samples) or 1
        correct = sum(s["verdict"] == "correct" for s in samples) / n
        incorrect = sum(s["verdict"] == "incorrect" for s in samples) / n
        attempted = correct + incorrect
        given = correct / attempted if attempted else 0.0
        metrics.update(
            {
                "incorrect,none": incorrect,
                "not_attempted,none": sum(s["verdict"] == "not_attempted" for s in samples) / n,
                "accuracy_given_attempted,none": given,
                # Chinese-SimpleQA's F-score: harmonic mean of correct and correct-given-attempted.
                "f1,none": 2 * given * correct / (given + correct) if given + correct else 0.0,
                "unparsed_judge_replies": [s["item_id"] for s in samples if not s.get("judge_parsed", True)],
            }
        )
        if samples and all("fallback_verdict" in s for s in samples):
            # The judge-free grade of the same answers, beside the judge's (never the primary metric).
            metrics["acc_fallback,none"] = sum(s["fallback_verdict"] == "correct" for s in samples) / n
    if spec.grader == "eckg" and spec.output_type == "generate":
        metrics["echo_rate,none"] = sum(s.get("echo", False) for s in samples) / max(len(samples), 1)
    if spec.output_type == "confidence":
        rated = [s for s in samples if s.get("confidence") is not None]
        cal = ecomqa.calibration([s["confidence"] for s in rated], [s["correct"] > 0 for s in rated])
        metrics.update({"ece,none": cal["ece"], "n_with_confidence": cal["n"], "reliability_bins": cal["bins"]})
    return metrics


def group_summary(
    task_metrics: dict[str, dict[str, Any]], subtasks: list[str], sizes: dict[str, int]
) -> dict[str, Any]:
    """Group metrics: the unweighted mean of the subtasks' ``acc`` (the papers' Avg) and the
    item-weighted (micro) mean beside it."""
    accs = [task_metrics[t]["acc,none"] for t in subtasks]
    total = sum(sizes[t] for t in subtasks)
    micro = sum(task_metrics[t]["acc,none"] * sizes[t] for t in subtasks) / total if total else 0.0
    return {
        "alias": "group",
        "acc,none": sum(accs) / len(accs),
        "acc_micro,none": micro,
        "subtasks": len(subtasks),
        "n": total,
    }
