"""``longlore bench build-kg | build-qa | review | review-export | weak-concepts``.

:func:`register` adds these commands to the ``bench`` typer app. The options of each command are
generated from its config dataclass (``longlore.core.config_cli.config_options``: type, default,
``metadata["help"]``), so no default is typed twice; every verb that loads a model also takes
``--device`` / ``--dtype``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from longlore.bench.build.config import KGBuildConfig, QABuildConfig, WeakConceptConfig
from longlore.core.config_cli import config_options, device_option, dtype_option
from longlore.core.progress import console


def _run_build_kg(config: Any, device: str, dtype: str) -> None:
    from longlore.bench.build.kg import build_kg_benchmark

    report = build_kg_benchmark(config, device=device, dtype=dtype)
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


def _run_build_qa(config: Any, device: str, dtype: str) -> None:
    from longlore.bench.build.qa import build_qa_benchmark

    report = build_qa_benchmark(config, device=device, dtype=dtype)
    console.print("kept per stage: " + ", ".join(f"{k} {v}" for k, v in report["stage_counts"].items()))
    console.print(
        f"wrote {Path(config.out) / 'chineseecomqa' / 'ChineseEcomQA.jsonl'} and "
        f"{Path(config.out) / 'review_queue.jsonl'}; score it with "
        f"`longlore bench run --task chineseecomqa --data {config.out} --model ...`"
    )


def _run_weak_concepts(config: Any, device: str, dtype: str) -> None:
    from longlore.bench.build.weak import run_weak_concepts

    summary = run_weak_concepts(config, device=device, dtype=dtype)
    if "stopped_at" in summary:
        return
    console.print(f"bottom-{config.k} concepts: {', '.join(summary['bottom_concepts'])}")
    console.print(f"fine-tuned on {summary['n_train']} problems; adapter in {summary['adapter']}")


def register(app: typer.Typer) -> None:
    """Add the construction commands to the ``bench`` app."""

    @app.command("build-kg")
    @config_options(config=KGBuildConfig)
    def build_kg(config: KGBuildConfig, device: str = device_option(), dtype: str = dtype_option()) -> None:
        """Build an ECKGBench-style benchmark from a knowledge graph (questions, 3-stage negatives,
        LLM judge, review queue)."""
        _run_build_kg(config, device, dtype)

    @app.command("build-qa")
    @config_options(config=QABuildConfig)
    def build_qa(config: QABuildConfig, device: str = device_option(), dtype: str = dtype_option()) -> None:
        """Build ChineseEcomQA-style items from a corpus (LLM generation, rule + LLM validation,
        retrieval fact check, difficulty filter, review queue)."""
        _run_build_qa(config, device, dtype)

    @app.command("weak-concepts")
    @config_options(config=WeakConceptConfig)
    def weak_concepts(config: WeakConceptConfig, device: str = device_option(), dtype: str = dtype_option()) -> None:
        """Fine-tune (LoRA) a model on pool problems matched to its bottom-k ConceptMath concepts."""
        _run_weak_concepts(config, device, dtype)

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
