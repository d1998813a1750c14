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


def _field(name: str) -> tuple[object, str]:
    """Default and help of a :class:`BenchConfig` field, so the CLI never types a default twice."""
    from dataclasses import MISSING, fields

    from longlore.bench.config import BenchConfig

    for f in fields(BenchConfig):
        if f.name == name:
            return (None if f.default is MISSING else f.default), f.metadata.get("help", "")
    raise KeyError(name)


def _opt(name: str, *flags: str) -> object:
    default, help_text = _field(name)
    return typer.Option(default, *flags, help=help_text)


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
def run(
    task: list[str] = typer.Option(..., "--task", "-t", help="task or group (repeatable)"),
    model: str = typer.Option(..., help="model spec (smollm2-135m, a checkpoint folder) or openai:MODEL@URL"),
    out: Path = typer.Option(Path("runs/bench"), help="output folder (results, samples, report, cache)"),
    shots: Optional[int] = _opt("shots"),
    limit: Optional[int] = _opt("limit"),
    subset: str = _opt("subset"),
    shard: Optional[str] = _opt("shard"),
    seed: int = _opt("seed"),
    judge: Optional[str] = _opt("judge"),
    judge_template: str = _opt("judge_template"),
    judge_parser: str = _opt("judge_parser"),
    judge_max_new_tokens: int = _opt("judge_max_new_tokens"),
    fallback_grader: bool = _opt("fallback_grader"),
    scoring: str = _opt("scoring"),
    repetition_penalty: Optional[float] = _opt("repetition_penalty"),
    batch_size: int = _opt("batch_size"),
    share_prefix: int = _opt("share_prefix"),
    max_new_tokens: Optional[int] = _opt("max_new_tokens"),
    data: Optional[str] = _opt("data"),
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
        subset=subset,  # type: ignore[arg-type]
        shard=shard,
        seed=seed,
        judge=judge,
        judge_template=judge_template,  # type: ignore[arg-type]
        judge_parser=judge_parser,  # type: ignore[arg-type]
        judge_max_new_tokens=judge_max_new_tokens,
        fallback_grader=fallback_grader,
        scoring=scoring,  # type: ignore[arg-type]
        repetition_penalty=repetition_penalty,
        batch_size=batch_size,
        share_prefix=share_prefix,
        max_new_tokens=max_new_tokens,
        data=data,
    )
    results, samples = evaluate(config, cache=None if no_cache else out / "cache.sqlite")
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
    overwrite: bool = typer.Option(False, help="replace an existing results.json"),
) -> None:
    """Score responses produced elsewhere with the same graders."""
    from longlore.bench.config import BenchConfig
    from longlore.bench.runner import score_responses

    out = out or default_score_out(task, responses)
    _check_out(out, overwrite)
    config = BenchConfig(
        tasks=[task],
        model="",
        scoring=scoring,  # type: ignore[arg-type]
        judge=judge,
        judge_template=judge_template,  # type: ignore[arg-type]
        judge_parser=judge_parser,  # type: ignore[arg-type]
        judge_max_new_tokens=judge_max_new_tokens,
        fallback_grader=fallback_grader,
    )
    results, samples = score_responses(task, responses, config)
    _write_and_summarise(out, results, samples, overwrite)


@app.command("merge")
def merge(
    shards: list[Path] = typer.Argument(..., help="the --out folders of `bench run --shard i/n` (all n of them)"),
    out: Path = typer.Option(..., help="folder for the merged run"),
    overwrite: bool = typer.Option(False, help="replace an existing results.json"),
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
