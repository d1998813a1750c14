"""``longlore bench list | run | score | report``."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from longlore.bench.config import BenchConfig
from longlore.core.config_cli import (
    config_options,
    device_option,
    dtype_option,
    help_text,
    register_config_command,
)
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


def _opt(name: str) -> Any:
    """A typer option whose default and help are those of a :class:`BenchConfig` field."""
    f = next(f for f in dataclasses.fields(BenchConfig) if f.name == name)
    flag = "--" + name.replace("_", "-")
    decls = f"{flag}/--no-{flag[2:]}" if isinstance(f.default, bool) else flag
    return typer.Option(f.default, decls, help=help_text(f.metadata["help"]))


@app.command("list")
def list_tasks(data: Optional[str] = _opt("data")) -> None:
    """Show every task and group with its size (items after the concept filter) and where the data is."""
    from rich.table import Table

    from longlore.bench.data import data_source, load_benchmark
    from longlore.bench.tasks import GROUPS, TASKS

    source = data_source(data)
    table = Table("task", "items", "type", "description")
    cache: dict[tuple[str, str], list] = {}
    for spec in TASKS.values():
        key = (spec.benchmark, spec.split)
        try:
            if key not in cache:
                cache[key] = load_benchmark(*key, root=data)
            size = str(sum(1 for it in cache[key] if not spec.concepts or it.concept[0] in spec.concepts))
        except LongloreError as err:
            size = "(missing)"
            console.print(f"[yellow]{spec.name}: {err}")
        table.add_row(spec.name, size, spec.output_type, spec.description)
    console.print(table)
    for group, subs in GROUPS.items():
        console.print(f"[bold]{group}[/bold] (group): {', '.join(subs)}")
    console.print(f"data: {source}")


@app.command("run")
@config_options(config=BenchConfig, exclude={"tasks", "model"})
def run(
    config: BenchConfig,
    task: list[str] = typer.Option(..., "--task", "-t", help="task or group (repeatable)"),
    model: str = typer.Option(..., help="model spec (smollm2-135m, a checkpoint folder) or openai:MODEL@URL"),
    out: Path = typer.Option(Path("runs/bench"), help="output folder (results, samples, report, cache)"),
    no_cache: bool = typer.Option(False, "--no-cache/--cache", help="do not keep a request cache in the output folder"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing results.json"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Evaluate a model on tasks; writes results.json, samples_*.jsonl, report.md and plots."""
    from longlore.bench.runner import evaluate

    _check_out(out, overwrite)
    config = dataclasses.replace(config, tasks=task, model=model)
    results, samples = evaluate(config, cache=None if no_cache else out / "cache.sqlite", device=device, dtype=dtype)
    _write_and_summarise(out, results, samples, overwrite)


def _write_and_summarise(out: Path, results: dict, samples: dict, overwrite: bool) -> None:
    """Shared end of `run`, `score` and `merge`: record the command, write the folder, print the summary."""
    from longlore.bench.report import write_run

    results["config"]["command"] = _command()
    write_run(out, results, samples, overwrite=overwrite)
    _print_summary(results)
    console.print(f"wrote {out / 'results.json'} and {out / 'report.md'}")


def default_score_out(task: str, responses: Path) -> Path:
    """Where `bench score` writes without --out: one folder per task and responses file."""
    from longlore.bench.report import task_file_stem

    name = responses.name.removesuffix(".gz").removesuffix(".jsonl")
    return Path("runs") / "bench_score" / f"{task_file_stem(task)}__{name}"


# `score` grades answers that exist: only the grading fields of BenchConfig apply to it.
_SCORE_FIELDS = ("scoring", "judge", "judge_template", "judge_parser", "judge_max_new_tokens", "fallback_grader")


@app.command("score")
def score(
    task: str = typer.Option(..., "--task", "-t", help="one generation task, e.g. conceptmath/element_en"),
    responses: Path = typer.Option(..., help="JSONL: the benchmark's own fields plus `response`"),
    out: Optional[Path] = typer.Option(
        None, help="output folder (default: runs/bench_score/<task>__<responses file name>)"
    ),
    scoring: str = _opt("scoring"),
    judge: Optional[str] = _opt("judge"),
    judge_template: str = _opt("judge_template"),
    judge_parser: str = _opt("judge_parser"),
    judge_max_new_tokens: int = _opt("judge_max_new_tokens"),
    fallback_grader: bool = _opt("fallback_grader"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing results.json"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Score responses produced elsewhere with the same graders."""
    from longlore.bench.runner import score_responses

    out = out or default_score_out(task, responses)
    _check_out(out, overwrite)
    config = BenchConfig(
        tasks=[task],
        scoring=scoring,  # type: ignore[arg-type]
        judge=judge,
        judge_template=judge_template,  # type: ignore[arg-type]
        judge_parser=judge_parser,  # type: ignore[arg-type]
        judge_max_new_tokens=judge_max_new_tokens,
        fallback_grader=fallback_grader,
    )
    results, samples = score_responses(task, responses, config, device=device, dtype=dtype)
    _write_and_summarise(out, results, samples, overwrite)


register_config_command(
    BenchConfig, score, exclude={f.name for f in dataclasses.fields(BenchConfig)} - set(_SCORE_FIELDS)
)


@app.command("merge")
def merge(
    shards: list[Path] = typer.Argument(..., help="the --out folders of `bench run --shard i/n` (all n of them)"),
    out: Path = typer.Option(..., help="folder for the merged run"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing results.json"),
) -> None:
    """Combine shard runs into one run, identical to running the tasks unsharded."""
    from longlore.bench.merge import merge_runs

    _check_out(out, overwrite)
    results, samples = merge_runs(list(shards))
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
