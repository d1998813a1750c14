"""`longlore pretrainrl ...`: make a synthetic world, mine negatives, train, evaluate the fact state."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from longlore.core.config_cli import config_options, device_option, dtype_option
from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text, write_json
from longlore.core.progress import console
from longlore.pretrainrl.config import METHODS, PretrainRLConfig, WorldConfig, method_config

app = typer.Typer(
    help="PretrainRL: debias-then-learn against factual hallucination (arXiv 2602.01875).", no_args_is_help=True
)

_FACTS_HELP = "facts: a .jsonl/.tsv file, 'movielens', or kg-nations / kg-kinships / kg-umls"
_MODEL_HELP = (
    "model: small-llama[:seed=N] (fresh), tiny-llama, smollm2-135m, a model folder or a run folder (its final/)"
)
# `mine` exposes only the mining fields of PretrainRLConfig; the rest is training
_MINE_FIELDS = {"mine_method", "num_negatives", "mine_max_new_tokens", "mine_batch_size", "eval_batch_size", "seed"}


def read_docs(path: Path) -> list[str]:
    """Documents of a text corpus file, separated by blank lines."""
    if not path.is_file():
        raise LongloreError(f"{path}: no such corpus file; give a text file with documents separated by blank lines")
    docs = [d.strip() for d in path.read_text(encoding="utf-8").split("\n\n") if d.strip()]
    if not docs:
        raise LongloreError(f"{path}: the corpus is empty")
    return docs


@app.command("make-world")
@config_options(config=WorldConfig)
def make_world(
    config: WorldConfig,
    out: Path = typer.Option(..., help="folder for facts.jsonl, corpus.txt, heldout.txt, world.json"),
    overwrite: bool = typer.Option(False, help="replace existing files"),
) -> None:
    """Write a seeded synthetic world whose tail facts are shadowed by a popular falsehood
    (plus, with --n-entrenched, people whose false biography outnumbers the true one)."""
    from longlore.pretrainrl.facts import save_facts
    from longlore.pretrainrl.world import SyntheticWorld

    world = SyntheticWorld.generate(config)
    save_facts(out / "facts.jsonl", world.facts, overwrite=overwrite)
    atomic_write_text(out / "corpus.txt", "\n\n".join(world.corpus) + "\n", overwrite=overwrite)
    atomic_write_text(out / "heldout.txt", "\n\n".join(world.heldout) + "\n", overwrite=overwrite)
    buckets = Counter(f.bucket for f in world.facts)
    write_json(
        out / "world.json",
        {
            "config": asdict(world.config),
            "facts_per_bucket": dict(buckets),
            "corpus_docs": len(world.corpus),
            "corpus_chars": sum(map(len, world.corpus)),
        },
        overwrite=overwrite,
    )
    console.print(f"{out}: {len(world.facts)} facts {dict(buckets)}, {len(world.corpus)} corpus documents")


@app.command("mine")
@config_options(config=PretrainRLConfig, exclude=set(PretrainRLConfig.__dataclass_fields__) - _MINE_FIELDS)
def mine(
    config: PretrainRLConfig,
    model: str = typer.Option(..., help=_MODEL_HELP),
    facts: str = typer.Option(..., help=_FACTS_HELP),
    out: Path = typer.Option(..., help="negatives cache (.jsonl)"),
    limit: Optional[int] = typer.Option(None, help="use a seeded sample of this many facts"),
    overwrite: bool = typer.Option(False, help="replace an existing negatives file"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Mine each fact prompt's high-probability wrong continuations and cache them."""
    from longlore.core.models import load_causal_lm
    from longlore.pretrainrl.facts import load_facts
    from longlore.pretrainrl.mining import mine_negatives, save_negatives

    fact_set = load_facts(facts, limit=limit, seed=config.seed)
    lm, tok = load_causal_lm(model, device=device, dtype=dtype)
    negatives = mine_negatives(lm, tok, fact_set, config, seed=config.seed)
    save_negatives(out, negatives, overwrite=overwrite)
    found = sum(len(n.negatives) for n in negatives.values())
    console.print(f"{out}: {found} negatives for {len(fact_set)} facts")


@app.command("train")
@config_options(config=PretrainRLConfig)
def train_cmd(
    config: PretrainRLConfig,
    model: str = typer.Option(..., help=_MODEL_HELP),
    corpus: Path = typer.Option(..., help="pretraining text: documents separated by blank lines"),
    out: Path = typer.Option(
        ..., help="run folder: the trained model goes to OUT/final, the log to OUT/train_log.json"
    ),
    facts: Optional[str] = typer.Option(None, help=f"{_FACTS_HELP} (needed unless --method ntp)"),
    method: str = typer.Option(
        "pretrainrl", help=f"one of {', '.join(METHODS)}; its overrides (config.METHODS) apply on top of the options"
    ),
    negatives: Optional[Path] = typer.Option(None, help="start from this negatives cache instead of mining"),
    overwrite: bool = typer.Option(False, help="replace an existing OUT/final"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Continue training a model with one of the methods and save it to OUT/final."""
    import torch

    from longlore.core.models import load_causal_lm
    from longlore.pretrainrl.base import save_pretrained
    from longlore.pretrainrl.facts import load_facts
    from longlore.pretrainrl.mining import load_negatives
    from longlore.pretrainrl.scoring import make_blocks
    from longlore.pretrainrl.trainer import train

    if (out / "final").exists() and not overwrite:
        raise LongloreError(f"{out / 'final'}: already exists; pass --overwrite or choose another folder")
    cfg = method_config(method, config)
    if cfg.fact_objective != "none" and not facts:
        raise LongloreError(f"--method {method} trains on facts; pass --facts")
    fact_set = load_facts(facts) if facts else []
    torch.manual_seed(cfg.seed)
    lm, tok = load_causal_lm(model, seed=cfg.seed, device=device, dtype=dtype)
    blocks = make_blocks(tok, read_docs(corpus), cfg.block_size)
    # OUT holds the loop's checkpoint and the mined negatives: rerunning the command resumes
    result = train(
        lm,
        tok,
        cfg,
        blocks=blocks,
        facts=fact_set,
        negatives=load_negatives(negatives) if negatives else None,
        out_dir=out,
    )
    from longlore.core.distributed import dist_info

    if not dist_info().is_main:  # under torchrun every rank holds the same model; rank 0 saves it
        return
    save_pretrained(lm, tok, out / "final", overwrite=True)
    write_json(
        out / "train_log.json",
        {
            "method": method,
            "model": model,
            "config": cfg.to_dict(),
            "seconds": round(result.seconds, 1),
            "cpu_seconds": round(result.cpu_seconds, 1),
            "mined_rounds": result.mined_rounds,
            "history": result.history,
        },
        overwrite=True,
    )
    console.print(f"{out / 'final'}: trained {cfg.steps} steps ({method}) in {result.seconds:.0f}s")


@app.command("eval")
def eval_cmd(
    model: str = typer.Option(..., help=_MODEL_HELP),
    facts: str = typer.Option(..., help=_FACTS_HELP),
    out: Optional[Path] = typer.Option(None, help="write metrics (per bucket) and per-fact states here (.json)"),
    negatives: Optional[Path] = typer.Option(None, help="mined negatives to include among the falsehoods"),
    heldout: Optional[Path] = typer.Option(
        None, help="held-out text for perplexity (documents separated by blank lines)"
    ),
    prompt: str = typer.Option("prompt", help="'prompt' (cloze) or 'question' (the SFT form)"),
    low_truth: float = typer.Option(0.1, help="a truth below this probability counts as low-probability"),
    high_false: float = typer.Option(0.3, help="a falsehood above this probability counts as high-probability"),
    block_size: int = typer.Option(64, help="tokens per perplexity block"),
    overwrite: bool = typer.Option(False, help="replace an existing --out file"),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """P(truth), rank, margin, Hit@1/5 and the two counts per frequency bucket; perplexity."""
    from longlore.core.models import load_causal_lm
    from longlore.pretrainrl.facts import load_facts
    from longlore.pretrainrl.metrics import evaluate_facts, summarize
    from longlore.pretrainrl.mining import load_negatives
    from longlore.pretrainrl.scoring import make_blocks, perplexity

    if prompt not in ("prompt", "question"):
        raise LongloreError(f"--prompt is '{prompt}'; use 'prompt' or 'question'")
    lm, tok = load_causal_lm(model, device=device, dtype=dtype)
    states = evaluate_facts(
        lm,
        tok,
        load_facts(facts),
        load_negatives(negatives) if negatives else None,
        prompt_field=prompt,
        low_truth=low_truth,
        high_false=high_false,
    )
    summary = summarize(states)
    ppl = perplexity(lm, make_blocks(tok, read_docs(heldout), block_size)) if heldout else None
    table = Table(title=f"fact state of {model}" + (f" (held-out perplexity {ppl:.2f})" if ppl else ""))
    columns = ("n", "hit1", "hit5", "p_truth", "rank", "margin", "max_p_false", "low_truth_count", "high_false_count")
    table.add_column("bucket")
    for column in columns:
        table.add_column(column, justify="right")
    for bucket, row in summary.items():
        table.add_row(bucket, *(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns))
    console.print(table)
    if out:
        write_json(
            out,
            {
                "model": model,
                "facts": facts,
                "perplexity": ppl,
                "summary": summary,
                "states": [asdict(s) for s in states],
            },
            overwrite=overwrite,
        )
