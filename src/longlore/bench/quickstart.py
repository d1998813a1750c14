"""Quickstart section: SmolLM2-135M-Instruct on a handful of real benchmark items (~1-2 min)."""

from __future__ import annotations

from pathlib import Path


def run(out_dir: Path) -> str:
    """Evaluate SmolLM2 on 4 ECKGBench and 4 ConceptMath items (the data shipped with longlore,
    official protocols); returns a Markdown section."""
    from longlore.bench.config import BenchConfig
    from longlore.bench.report import write_run
    from longlore.bench.runner import evaluate

    out = Path(out_dir) / "bench"
    config = BenchConfig(
        tasks=["eckgbench/main", "conceptmath/element_en"], model="smollm2-135m", limit=4, max_new_tokens=64, seed=0
    )
    results, samples = evaluate(config, cache=out / "cache.sqlite")
    results["config"]["command"] = "longlore quickstart (bench section)"
    write_run(out, results, samples, overwrite=True)
    rows = []
    for task, metrics in results["results"].items():
        low, high = metrics["acc_ci95,none"]
        rows.append(
            f"| {task} | {results['n-samples'][task]['effective']} | {metrics['acc,none']:.3f} "
            f"| [{low:.2f}, {high:.2f}] |"
        )
    example = samples["conceptmath/element_en"][0]
    return "\n".join(
        [
            "## bench: evaluation harness",
            "",
            "SmolLM2-135M-Instruct on 4 seeded items per task (a smoke run, not a measurement; see "
            "benchmarks/results/bench_smollm2.json for the recorded run).",
            "",
            "| task | n | acc | 95% bootstrap CI |",
            "|---|---|---|---|",
            *rows,
            "",
            f"ConceptMath example: gold `{example['gold'][0]}`, extracted `{example['extracted'][:6]}`, "
            f"verdict **{example['verdict']}**.",
            "",
            f"Full report: `{out / 'report.md'}`; rerun: `longlore bench run --task eckgbench/main "
            "--model smollm2-135m --limit 4`.",
            "",
        ]
    )
