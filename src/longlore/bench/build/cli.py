"""``longlore bench build-kg | build-qa | review | review-export | weak-concepts``.

:func:`register` adds these commands to the ``bench`` typer app. The options of each command are
generated from its config dataclass (type, default, ``metadata["help"]``), so no default is typed
twice.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

from longlore.core.progress import console


def _option_type(tp: Any) -> Any:
    """The type typer sees for a config field: Literal -> str, ``X | None`` -> Optional[X]."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return str
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return Optional[_option_type(inner[0])]  # typer reads Optional
    return tp


def config_command(app: typer.Typer, name: str, config_cls: type, run: Callable[[Any], None], help: str) -> None:
    """Register ``name`` on ``app`` with one option per field of ``config_cls``; ``run`` receives
    the built config."""
    hints = typing.get_type_hints(config_cls)
    params = []
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        literal = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is typing.Literal else ()
        text = f.metadata.get("help", "") + (f" [{' | '.join(literal)}]" if literal else "")
        text = text.replace("[", "\\[")  # rich markup would swallow square brackets
        default = ... if f.default is dataclasses.MISSING else f.default
        option = typer.Option(default, flag, help=text, show_default=default is not ...)
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=_option_type(hints[f.name])
            )
        )

    def command(**kwargs: Any) -> None:
        run(config_cls(**kwargs))

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__doc__ = help
    command.__name__ = name.replace("-", "_")
    app.command(name, help=help)(command)


def _run_build_kg(config: Any) -> None:
    from longlore.bench.build.kg import build_kg_benchmark

    report = build_kg_benchmark(config)
    c = report["counts"]
    console.print(
        f"{c['questions']} questions ({c['is_a_questions']} is-a) from {c['true_triples']} true triples; "
        f"stage 2 dropped {c['dropped_candidates']} candidates in {c['with_dropped_candidates']} questions; "
        f"negatives by {c['negatives_by']}; judge {c['judge']}"
    )
    console.print(
        f"wrote {Path(config.out) / 'eckgbench' / 'ECKGBench.jsonl'} ({c['benchmark_items']} items) and "
        f"{Path(config.out) / 'review_queue.jsonl'}; score it with "
        f"`longlore bench run --task eckgbench/main_mc --data {config.out} --model ...`"
    )


def _run_build_qa(config: Any) -> None:
    from longlore.bench.build.qa import build_qa_benchmark

    report = build_qa_benchmark(config)
    console.print("kept per stage: " + ", ".join(f"{k} {v}" for k, v in report["stage_counts"].items()))
    console.print(
        f"wrote {Path(config.out) / 'chineseecomqa' / 'ChineseEcomQA.jsonl'} and "
        f"{Path(config.out) / 'review_queue.jsonl'}; score it with "
        f"`longlore bench run --task chineseecomqa --data {config.out} --model ...`"
    )


def _run_weak_concepts(config: Any) -> None:
    from longlore.bench.build.weak import run_weak_concepts

    summary = run_weak_concepts(config)
    console.print(f"bottom-{config.k} concepts: {', '.join(summary['bottom_concepts'])}")
    console.print(f"fine-tuned on {summary['n_train']} problems; adapter in {summary['adapter']}")


def register(app: typer.Typer) -> None:
    """Add the construction commands to the ``bench`` app."""
    from longlore.bench.build.config import KGBuildConfig, QABuildConfig, WeakConceptConfig

    config_command(
        app,
        "build-kg",
        KGBuildConfig,
        _run_build_kg,
        "Build an ECKGBench-style benchmark from a knowledge graph (questions, 3-stage negatives, judge, review queue).",
    )

    config_command(
        app,
        "build-qa",
        QABuildConfig,
        _run_build_qa,
        "Build ChineseEcomQA-style items from a corpus (LLM generation, rule + LLM validation, retrieval fact "
        "check, difficulty filter, review queue).",
    )
    config_command(
        app,
        "weak-concepts",
        WeakConceptConfig,
        _run_weak_concepts,
        "Fine-tune (LoRA) a model on pool problems matched to its bottom-k ConceptMath concepts.",
    )

    @app.command("review")
    def review(
        queue: Path = typer.Argument(..., help="review queue JSONL written by build-kg / build-qa"),
        port: int = typer.Option(8765, help="port on 127.0.0.1"),
        export_dir: Optional[Path] = typer.Option(
            None, help="where Export writes the accepted items (default: QUEUE's folder /reviewed)"
        ),
    ) -> None:
        """Serve the review web UI for a queue on 127.0.0.1 (accept / reject / edit, kappa, export)."""
        from longlore.bench.build.review_app import serve

        serve(queue, port=port, export_dir=export_dir)

    @app.command("review-export")
    def review_export(
        queue: Path = typer.Argument(..., help="review queue JSONL"),
        out: Path = typer.Option(..., help="folder for the accepted items (a `bench run --data` folder)"),
        policy: str = typer.Option("consensus", help="consensus | any | reviewer:NAME"),
    ) -> None:
        """Write the accepted items of a reviewed queue in the benchmark's official format."""
        from longlore.bench.build.queue import agreement, export_accepted, load_reviews

        result = export_accepted(queue, out, policy)
        for benchmark, info in result["written"].items():
            console.print(f"{benchmark}: {info['count']} accepted items -> {info['path']}")
        agree = agreement(load_reviews(queue)["decisions"])
        if agree["n_both"]:
            console.print(
                f"agreement {agree['reviewers'][0]} vs {agree['reviewers'][1]} on {agree['n_both']} items: "
                f"kappa {agree['kappa']}, keep/reject kappa {agree['kappa_keep']}"
            )
