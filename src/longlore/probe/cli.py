"""``longlore probe``: train | eval | study | plot — the data-centric context-compression study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from longlore.core.config_cli import config_options, device_option, dtype_option
from longlore.core.errors import LongloreError
from longlore.core.progress import console
from longlore.probe.config import ProbeConfig, TrainArgs
from longlore.probe.study import STAGES, StudyConfig

app = typer.Typer(
    help="Compression probe: how well a text autoencoder (LoRA encoder -> memory slots -> frozen decoder) "
    "reconstructs each kind of text, and whether input entropy predicts it.",
    no_args_is_help=True,
)


def _folders(items: list[str]) -> dict[str, str]:
    for item in items:
        if "=" not in item:
            raise LongloreError(f"--data '{item}': expected NAME=PATH, e.g. --data mydocs=./docs")
    return dict(item.split("=", 1) for item in items)


def _names(text: str, folders: dict[str, str]) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names + [n for n in folders if n not in names]


@app.command()
@config_options(config=ProbeConfig, args=TrainArgs, exclude={"version"})
def train(
    config: ProbeConfig,
    args: TrainArgs,
    out: Path = typer.Option(..., help="Run folder (checkpoints; resumes if present); the probe lands in OUT/final."),
    model: str = typer.Option("smollm2-135m", help="Decoder model spec (frozen)."),
    encoder_base: Optional[str] = typer.Option(None, help="Model the encoder is cut from (default: the decoder)."),
    distributions: str = typer.Option("prose,chinese,code,math,random", help="Training mix (comma-separated)."),
    data: list[str] = typer.Option([], help="Your own distribution as NAME=PATH (folder of .txt/.jsonl); repeatable."),
    length: int = typer.Option(128, help="Tokens per training window."),
    amp_bf16: bool = typer.Option(False, help="bf16 autocast (fp32 master weights)."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Train an autoencoder on a mix of distributions; saves OUT/final (save_pretrained)."""
    import torch

    from longlore.core.models import load_causal_lm
    from longlore.probe.data import Distributions
    from longlore.probe.model import ProbeAutoencoder
    from longlore.probe.trainer import mixture_sampler, train_autoencoder

    folders = _folders(data)
    decoder, tokenizer = load_causal_lm(model, device=device, dtype=dtype)
    base = load_causal_lm(encoder_base, device=device, dtype=dtype)[0] if encoder_base else None
    dists = Distributions(tokenizer, folders)

    torch.manual_seed(args.seed)
    probe = ProbeAutoencoder(decoder, tokenizer, config, encoder_base=base)
    sampler = mixture_sampler(dists, _names(distributions, folders), length)
    summary = train_autoencoder(probe, sampler, out, args, amp_bf16=amp_bf16)
    if not summary["finished"]:
        console.print(f"stopped at step {summary['steps']} (--stop-after); rerun the same command to resume")
        return
    console.print(
        f"trained {summary['steps']} steps ({summary['cpu_seconds']} CPU s), final loss {summary['final_loss']:.4f}; "
        f"saved to {out / 'final'}"
    )


@app.command("eval")
def evaluate_cmd(
    probe_dir: Path = typer.Option(..., help="A folder written by save_pretrained (e.g. RUN/final)."),
    model: str = typer.Option("smollm2-135m", help="Decoder model spec the probe was trained with."),
    encoder_base: Optional[str] = typer.Option(None, help="Model the encoder was cut from (default: the decoder)."),
    distributions: str = typer.Option("prose,chinese,code,math,random", help="Distributions (comma-separated)."),
    data: list[str] = typer.Option([], help="Your own distribution as NAME=PATH; repeatable."),
    n: int = typer.Option(50, help="Held-out samples per distribution."),
    length: int = typer.Option(128, help="Tokens per sample."),
    seed: int = typer.Option(0, help="Which held-out windows are drawn."),
    batch_size: int = typer.Option(16, help="Samples per reconstruction batch."),
    amp_bf16: bool = typer.Option(False, help="bf16 autocast."),
    output: Path = typer.Option(Path("runs/probe/eval.json"), help="Metrics JSON (per-sample rows in OUTPUT.jsonl)."),
    overwrite: bool = typer.Option(False, help="Replace an existing OUTPUT."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Reconstruct held-out samples greedily; BLEU and token F1 per distribution with 95% CIs."""
    from longlore.core.io import write_json
    from longlore.core.models import load_causal_lm
    from longlore.probe.data import Distributions
    from longlore.probe.evaluate import by_distribution, cached_per_sample, reconstruction_rows, summarize_quality
    from longlore.probe.model import ProbeAutoencoder

    if output.exists() and not overwrite:
        raise LongloreError(f"{output}: already exists; pass --overwrite to replace it")
    folders = _folders(data)
    decoder, tokenizer = load_causal_lm(model, device=device, dtype=dtype)
    base = load_causal_lm(encoder_base, device=device, dtype=dtype)[0] if encoder_base else None
    probe = ProbeAutoencoder.from_pretrained(decoder, tokenizer, probe_dir, encoder_base=base)
    dists = Distributions(tokenizer, folders)
    samples = [s for name in _names(distributions, folders) for s in dists.held_out(name, n, length, seed=seed)]
    cache = output.with_suffix(".jsonl")
    if overwrite:
        cache.unlink(missing_ok=True)
    rows = cached_per_sample(samples, cache, reconstruction_rows(probe, amp_bf16), batch_size, "reconstructing")
    groups = by_distribution(rows)
    metrics = {name: summarize_quality(group, seed) for name, group in groups.items()}
    metrics["all"] = summarize_quality(rows, seed)
    write_json(output, {"probe": str(probe_dir), "model": model, "quality": metrics, "sources": dists.sources}, True)
    typer.echo(json.dumps({k: {"bleu": v["bleu"]["mean"], "f1": v["f1"]["mean"]} for k, v in metrics.items()}))


@app.command()
@config_options(study=StudyConfig, config=ProbeConfig, args=TrainArgs, exclude={"ratio", "version"})
def study(
    study: StudyConfig,
    config: ProbeConfig,
    args: TrainArgs,
    out: Path = typer.Option(Path("runs/probe/study"), help="Study folder: every cell is cached here (resumable)."),
    results: Optional[Path] = typer.Option(
        None,
        help="Also write the results JSON here, and the plots beside it (e.g. benchmarks/results/probe_study.json).",
    ),
    stages: str = typer.Option(",".join(STAGES), help=f"Stages to run, comma-separated, of: {', '.join(STAGES)}."),
    only: Optional[str] = typer.Option(
        None, help="Evaluate only these distributions (comma-separated): lets two processes share one study folder."
    ),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Run the whole grid (train, mismatch, eval, entropy, report); rerun to resume."""
    from longlore.probe.study import Study

    runner = Study(out, study, config, args, device=device, dtype=dtype)
    chosen = tuple(s.strip() for s in stages.split(",") if s.strip())
    subset = tuple(s.strip() for s in only.split(",") if s.strip()) if only else None
    result = runner.run(chosen, results_path=results, only=subset)
    if result is not None:
        quality = {k: round(v["bleu"]["mean"], 2) for k, v in result["quality"].items()}
        console.print(f"BLEU per distribution: {quality}; results in {out / 'probe_study.json'}")


@app.command()
def plot(
    results: Path = typer.Option(..., help="A probe_study.json."),
    out: Optional[Path] = typer.Option(None, help="Folder for the figures (default: beside the results)."),
) -> None:
    """Draw the study's figures from its results JSON."""
    from longlore.core.io import read_json
    from longlore.probe.plots import plot_study

    data = read_json(results)
    if "quality" not in data:
        raise LongloreError(f"{results}: no 'quality' key; expected a probe_study.json written by `probe study`")
    made = plot_study(data, out or results.parent)
    console.print("wrote " + ", ".join(str(p) for p in made))
