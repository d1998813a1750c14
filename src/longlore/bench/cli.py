"""``longlore bench list | run | score | report``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from longlore.core.errors import LongloreError
from longlore.core.io import read_json
from longlore.core.progress import console

app = typer.Typer(
    help="Evaluation harness: ConceptMath, ChineseEcomQA, ECKGBench (lm-eval style).", no_args_is_help=True
)


def _command() -> str:
    return (
        "longlore bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else " ".join(sys.argv)
    )


def _check_out(out: Path, overwrite: bool) -> None:
    if (out / "results.json").exists() and not overwrite:
        raise LongloreError(
            f"{out / 'results.json'} exists; pass --overwrite to replace it (cached requests in the folder are reused)"
        )


@app.command("list")
def list_tasks(data: Optional[str] = typer.Option(None, help="benchmark data folder")) -> None:
    """Show every task and group with its size (items after the concept filter)."""
    from rich.table import Table

    from longlore.bench.data import load_benchmark
    from longlore.bench.tasks import GROUPS, TASKS

    table = Table("task", "items", "type", "description")
    cache: dict[tuple[str, str], list] = {}
    for spec in TASKS.values():
        key = (spec.benchmark, spec.split)
        try:
            if key not in cache:
                cache[key] = load_benchmark(*key, root=data)
            size = str(sum(1 for it in cache[key] if not spec.concepts or it.concept[0] in spec.concepts))
        except LongloreError:
            size = "(data not found)"
        table.add_row(spec.name, size, spec.output_type, spec.description)
    console.print(table)
    for group, subs in GROUPS.items():
        console.print(f"[bold]{group}[/bold] (group): {', '.join(subs)}")


@app.command("run")
def run(
    task: list[str] = typer.Option(..., "--task", "-t", help="task or group (repeatable)"),
    model: str = typer.Option(..., help="model spec (smollm2-135m, a checkpoint folder) or openai:MODEL@URL"),
    out: Path = typer.Option(Path("runs/bench"), help="output folder (results, samples, report, cache)"),
    shots: Optional[int] = typer.Option(None, help="few-shot examples (default: the task's)"),
    limit: Optional[int] = typer.Option(None, help="items per task (default: all)"),
    subset: str = typer.Option("seeded", help="seeded | first: how --limit picks items"),
    seed: int = typer.Option(0, help="subset, bootstrap and sampling seed"),
    judge: Optional[str] = typer.Option(None, help="ChineseEcomQA judge: model spec or openai:MODEL@URL"),
    scoring: str = typer.Option("official", help="official | strict"),
    judge_parser: str = typer.Option("robust", help="robust | official"),
    batch_size: int = typer.Option(8, help="local model batch size"),
    max_new_tokens: Optional[int] = typer.Option(None, help="cap on generation budgets (tasks keep smaller ones)"),
    data: Optional[str] = typer.Option(None, help="benchmark data folder"),
    no_cache: bool = typer.Option(False, help="do not keep a request cache in the output folder"),
    overwrite: bool = typer.Option(False, help="replace an existing results.json"),
) -> None:
    """Evaluate a model on tasks; writes results.json, samples_*.jsonl, report.md and plots."""
    from longlore.bench.config import BenchConfig
    from longlore.bench.runner import evaluate

    _check_out(out, overwrite)
    config = BenchConfig(
        tasks=task,
        model=model,
        shots=shots,
        limit=limit,
        subset=subset,
        seed=seed,  # type: ignore[arg-type]
        judge=judge,
        scoring=scoring,
        judge_parser=judge_parser,  # type: ignore[arg-type]
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        data=data,
    )
    results, samples = evaluate(config, cache=None if no_cache else out / "cache.sqlite")
    _write_and_summarise(out, results, samples, overwrite)


def _write_and_summarise(out: Path, results: dict, samples: list, overwrite: bool) -> None:
    """Shared end of `run` and `score`: record the command, write the run folder, print the summary."""
    from longlore.bench.report import write_run

    results["config"]["command"] = _command()
    write_run(out, results, samples, overwrite=overwrite)
    _print_summary(results)
    console.print(f"wrote {out / 'results.json'} and {out / 'report.md'}")


@app.command("score")
def score(
    task: str = typer.Option(..., "--task", "-t", help="one generation task, e.g. conceptmath/element_en"),
    responses: Path = typer.Option(..., help="JSONL: the benchmark's own fields plus `response`"),
    out: Path = typer.Option(Path("runs/bench_score"), help="output folder"),
    scoring: str = typer.Option("official", help="official | strict"),
    judge: Optional[str] = typer.Option(None, help="ChineseEcomQA judge: model spec or openai:MODEL@URL"),
    judge_parser: str = typer.Option("robust", help="robust | official"),
    overwrite: bool = typer.Option(False, help="replace an existing results.json"),
) -> None:
    """Score responses produced elsewhere with the same graders."""
    from longlore.bench.config import BenchConfig
    from longlore.bench.runner import score_responses

    _check_out(out, overwrite)
    config = BenchConfig(
        tasks=[task],
        model="",
        scoring=scoring,
        judge=judge,  # type: ignore[arg-type]
        judge_parser=judge_parser,
    )  # type: ignore[arg-type]
    results, samples = score_responses(task, responses, config)
    _write_and_summarise(out, results, samples, overwrite)


@app.command("report")
def report(
    results: Path = typer.Argument(..., help="a results.json written by `bench run` or `bench score`"),
    out: Optional[Path] = typer.Option(None, help="report path (default: report.md beside the results)"),
) -> None:
    """Re-render the Markdown report (and plots) of a results JSON."""
    from longlore.bench.report import make_plots, render_report
    from longlore.core.io import atomic_write_text

    data = read_json(results)
    if not isinstance(data, dict) or "results" not in data or "n-samples" not in data:
        raise LongloreError(
            f"{results}: not a bench results JSON (expected keys 'results', 'n-samples'); "
            "pass the results.json written by `longlore bench run`"
        )
    target = out or results.with_name("report.md")
    plots = make_plots(data, target.parent)
    atomic_write_text(target, render_report(data, plots), overwrite=True)
    console.print(f"wrote {target}")


def _print_summary(results: dict) -> None:
    from longlore.bench.report import _primary

    for task, metrics in results["results"].items():
        name, value, ci = _primary(metrics)
        ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        console.print(f"{task}: {name} = {value:.4f}{ci_text} (n={results['n-samples'][task]['effective']})")
    for group, g in results.get("groups", {}).items():
        console.print(f"{group} (group): acc = {g['acc,none']:.4f} (unweighted mean of {g['subtasks']})")


# Benchmark construction (build-kg, build-qa, review, review-export, weak-concepts): longlore.bench.build.
from longlore.bench.build.cli import register as _register_build  # noqa: E402

_register_build(app)
