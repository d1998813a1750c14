"""The ``longlore`` command line: a thin layer over the Python API.

Core commands live here (``assets``, ``generate``, ``serve``, ``quickstart``); every system adds
its own group from ``longlore.<system>.cli:app``, imported only when one of its commands runs (so
``longlore --help`` answers without loading torch). User errors (:class:`LongloreError`) print one
red line and exit 2 — never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperGroup

from longlore.core.config_cli import device_option, dtype_option, help_text
from longlore.core.errors import LongloreError
from longlore.core.progress import console

# Systems in the order the README lists them; a group appears once its package exists.
SYSTEMS = {
    "ram": "RAM: query-aware context compression (close reading + skimming)",
    "comet": "CoMeT: plug-in collaborative memory for long inputs",
    "probe": "Compression probe: autoencoder quality vs entropy",
    "pretrainrl": "PretrainRL: debias-then-learn against factual hallucination",
    "bench": "Evaluation harness: ConceptMath, ChineseEcomQA, ECKGBench",
    "recgpt": "RecGPT: intent-centric recommendation",
    "lstner": "LST-NER: cross-domain NER by label-graph matching",
    "cet": "CET: causal effect tuning for multiple-choice QA",
}


def available_systems() -> list[str]:
    """Systems whose package (with a ``cli`` module) is present in this install; found on disk,
    without importing them."""
    root = Path(__file__).resolve().parent
    return [name for name in SYSTEMS if (root / name / "cli.py").is_file()]


class _SystemStub(TyperGroup):
    """What ``longlore --help`` lists for a system: its name and one line, nothing imported."""


class LazySystemsGroup(TyperGroup):
    """The root group: each system's ``longlore.<system>.cli:app`` is imported only when that
    system's command runs (or its own ``--help`` is asked for), so ``longlore --help`` stays fast."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in available_systems():
            self.commands.setdefault(name, _SystemStub(name=name, help=SYSTEMS[name]))

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[Any, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, _SystemStub):
            command = self.load_system(name)
        return name, command, rest

    def load_system(self, name: str) -> Any:
        """Import ``longlore.<name>.cli`` and put its group in place of the stub."""
        group = typer.main.get_command(importlib.import_module(f"longlore.{name}.cli").app)
        group.name, group.help = name, SYSTEMS[name]
        # built as a stand-alone app it has shell-completion options; mounted here it must not
        group.params = [p for p in group.params if p.name not in ("install_completion", "show_completion")]
        self.commands[name] = group
        return group


app = typer.Typer(
    cls=LazySystemsGroup,
    help="longlore: ten recent LLM research systems on PyTorch + transformers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
assets_app = typer.Typer(
    help="The real offline assets: list them, prepare SmolLM2 once, verify each loads.", no_args_is_help=True
)
app.add_typer(assets_app, name="assets")


@assets_app.command("list")
def assets_list() -> None:
    """Each real asset: where it comes from, its size and whether it is ready."""
    from rich.table import Table

    from longlore.core import assets

    table = Table(title="longlore assets")
    for column in ("name", "package", "size MB", "ready", "what / where"):
        table.add_column(column)
    for row in assets.status():
        table.add_row(
            row["name"],
            row["package"],
            str(row["size_mb"]),
            "[green]yes" if row["ready"] else "[red]no",
            f"{row['description']}\n[dim]{row['path']}",
        )
    console.print(table)


@assets_app.command("prepare")
def assets_prepare(force: bool = typer.Option(False, help="Convert again even if a verified copy exists.")) -> None:
    """Convert SmolLM2-135M-Instruct from GGUF to safetensors under $LONGLORE_HOME (once, checksummed)."""
    from longlore.core import assets

    assets.asset_path("smollm2-135m")
    if assets.smollm2_ready() and not force:
        console.print(f"[green]ready[/green] {assets.smollm2_dir()} (checksum verified)")
        return
    with console.status("converting SmolLM2-135M-Instruct from GGUF (about 30 s) ..."):
        folder = assets.prepare_smollm2(force=force)
    console.print(f"[green]prepared[/green] {folder}")


@assets_app.command("verify")
def assets_verify() -> None:
    """Load every asset offline and check it works (exit 1 if any fails)."""
    from rich.table import Table

    from longlore.core.verify import verify_all

    results = verify_all()
    table = Table(title="asset verification (offline)")
    for column in ("asset", "ok", "check"):
        table.add_column(column)
    for name, ok, detail in results:
        table.add_row(name, "[green]yes" if ok else "[red]NO", detail)
    console.print(table)
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)


@app.command()
def generate(
    model: str = typer.Option(
        ...,
        help="Model spec (smollm2-135m, tiny-llama, a folder) or an endpoint openai:MODEL@URL[,URL2] "
        "(several URLs: requests spread over them, a dead one's requests retried on the others).",
    ),
    prompt: Optional[str] = typer.Option(None, help="One prompt (else --input)."),
    input: Optional[Path] = typer.Option(
        None,
        help=help_text(
            "JSONL of {prompt, [id], [system], [max_new_tokens], [temperature], [stop], [n], [seed], [chat]} "
            "records; a generation field on a record overrides the option for that record, "
            "any other field is an error."
        ),
    ),
    output: Optional[Path] = typer.Option(
        None, help=help_text("Write {id, prompt, completion, [completions]} JSONL here (else print).")
    ),
    max_new_tokens: int = typer.Option(64, help="Token limit per completion."),
    temperature: float = typer.Option(0.0, help="Sampling temperature (0: greedy)."),
    chat: bool = typer.Option(True, help="Wrap prompts in the model's chat template."),
    batch_size: int = typer.Option(8, help="Prompts per forward pass (local models)."),
    concurrency: int = typer.Option(4, help="Requests in flight per endpoint (openai: models)."),
    cache: Optional[Path] = typer.Option(None, help="SQLite request cache (resume an interrupted run)."),
    overwrite: bool = typer.Option(False, help="Replace an existing --output."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Generate completions with any backend (a quick check of a model or an endpoint)."""
    from longlore.core.backends import GenerationRequest, load_text_model
    from longlore.core.io import read_jsonl, write_jsonl
    from longlore.core.schemas import PromptRecord

    if (prompt is None) == (input is None):
        raise LongloreError("give exactly one of --prompt or --input")
    records = [PromptRecord(id="0", prompt=prompt)] if prompt is not None else read_jsonl(input, PromptRecord)
    if output is not None and output.exists() and not overwrite:
        raise LongloreError(f"{output}: already exists; pass --overwrite to replace it")
    text_model = load_text_model(
        model, batch_size=batch_size, cache=cache, device=device, dtype=dtype, concurrency=concurrency
    )
    defaults = {"chat": chat, "max_new_tokens": max_new_tokens, "temperature": temperature}
    requests = [GenerationRequest(r.prompt, system=r.system, **{**defaults, **r.overrides()}) for r in records]
    completions = text_model.generate(requests)
    rows = [
        {"id": r.id, "prompt": r.prompt, "completion": c[0], **({"completions": c} if len(c) > 1 else {})}
        for r, c in zip(records, completions)
    ]
    if output is not None:
        write_jsonl(output, rows, overwrite=overwrite)
        console.print(f"wrote {len(rows)} completions to {output}")
    else:
        for row in rows:
            typer.echo(row["completion"])


@app.command()
def serve(
    model: str = typer.Option("smollm2-135m", help="Model spec to serve."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, help="Port (0: a free one; the URL is printed)."),
    batch_size: int = typer.Option(8, help="Prompts per forward pass."),
    api_key: Optional[str] = typer.Option(None, help="Require this bearer key."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Serve a local model over a minimal OpenAI-compatible API (chat, completions, echo logprobs)."""
    from longlore.core.backends import HFTextModel
    from longlore.core.serve import serve_openai

    text_model = HFTextModel.from_spec(model, batch_size=batch_size, device=device, dtype=dtype)
    serve_openai(
        text_model,
        host=host,
        port=port,
        api_key=api_key,
        background=False,
        on_ready=lambda url: console.print(
            f"serving {model} at {url} (Ctrl-C to stop)", highlight=False, soft_wrap=True
        ),
    )


@app.command()
def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), help="Output folder for REPORT.md and plots."),
    systems: Optional[str] = typer.Option(None, help="Comma-separated subset of systems (default: all built)."),
) -> None:
    """Run every built system's small end-to-end demo on real assets; write OUT/REPORT.md."""
    from longlore.quickstart import run_quickstart

    chosen = systems.split(",") if systems else None
    report, failures = run_quickstart(out, chosen)
    console.print(f"[bold green]report:[/bold green] {report}")
    if failures:
        raise LongloreError(f"quickstart: {len(failures)} demo(s) failed ({', '.join(failures)}); see {report}")


def main() -> None:
    """Console entry point: user errors become one line and exit code 2."""
    try:
        app()
    except LongloreError as err:
        console.print(f"[bold red]error:[/bold red] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: rerun the same command to resume from its cache/checkpoint")
        sys.exit(130)


if __name__ == "__main__":
    main()
