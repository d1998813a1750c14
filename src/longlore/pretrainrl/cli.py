"""`longlore pretrainrl ...`: make a synthetic world, mine negatives, train, evaluate the fact state."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text, write_json
from longlore.core.progress import console
from longlore.pretrainrl.config import METHODS, PretrainRLConfig, WorldConfig, method_config

app = typer.Typer(
    help="PretrainRL: debias-then-learn against factual hallucination (arXiv 2602.01875).", no_args_is_help=True
)

_FACTS_HELP = "facts: a .jsonl/.tsv file, 'movielens', or kg-nations / kg-kinships / kg-umls"
_MODEL_HELP = "model: small-llama[:seed=N] (fresh), tiny-llama, smollm2-135m or a checkpoint folder"


def read_docs(path: Path) -> list[str]:
    """Documents of a text corpus file, separated by blank lines."""
    if not path.is_file():
        raise LongloreError(f"{path}: no such corpus file; give a text file with documents separated by blank lines")
    docs = [d.strip() for d in path.read_text(encoding="utf-8").split("\n\n") if d.strip()]
    if not docs:
        raise LongloreError(f"{path}: the corpus is empty")
    return docs


@app.command("make-world")
def make_world(
    out: Path = typer.Option(..., help="folder for facts.jsonl, corpus.txt, heldout.txt, world.json"),
    n_entities: int = typer.Option(150, help="people in the world (3 facts each)"),
    max_count: int = typer.Option(120, help="corpus mentions of the most frequent person"),
    zipf_s: float = typer.Option(1.1, help="Zipf exponent of mention counts"),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, help="replace existing files"),
) -> None:
    """Write a seeded synthetic world whose tail facts are shadowed by a popular falsehood."""
    from longlore.pretrainrl.facts import save_facts
    from longlore.pretrainrl.world import SyntheticWorld

    world = SyntheticWorld.generate(WorldConfig(n_entities=n_entities, max_count=max_count, zipf_s=zipf_s, seed=seed))
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
def mine(
    model: str = typer.Option(..., help=_MODEL_HELP),
    facts: str = typer.Option(..., help=_FACTS_HELP),
    out: Path = typer.Option(..., help="negatives cache (.jsonl)"),
    method: str = typer.Option("beam", help="beam, sample or candidates"),
    k: int = typer.Option(4, help="negatives per fact"),
    max_new_tokens: int = typer.Option(8, help="generated tokens per continuation"),
    limit: Optional[int] = typer.Option(None, help="use a seeded sample of this many facts"),
    overwrite: bool = typer.Option(False),
) -> None:
    """Mine each fact prompt's high-probability wrong continuations and cache them."""
    from longlore.pretrainrl.base import load_model
    from longlore.pretrainrl.facts import load_facts
    from longlore.pretrainrl.mining import mine_negatives, save_negatives

    fact_set = load_facts(facts, limit=limit)
    lm, tok = load_model(model)
    cfg = PretrainRLConfig(mine_method=method, num_negatives=k, mine_max_new_tokens=max_new_tokens)
    negatives = mine_negatives(lm, tok, fact_set, cfg)
    save_negatives(out, negatives, overwrite=overwrite)
    found = sum(len(n.negatives) for n in negatives.values())
    console.print(f"{out}: {found} negatives for {len(fact_set)} facts")


@app.command("train")
def train_cmd(
    model: str = typer.Option(..., help=_MODEL_HELP),
    corpus: Path = typer.Option(..., help="pretraining text: documents separated by blank lines"),
    out: Path = typer.Option(..., help="output checkpoint folder (+ train_log.json inside)"),
    facts: Optional[str] = typer.Option(None, help=f"{_FACTS_HELP} (needed unless --method ntp)"),
    method: str = typer.Option("pretrainrl", help=f"one of {', '.join(METHODS)}"),
    steps: int = typer.Option(200, help="optimizer steps"),
    lr: float = typer.Option(1e-3),
    batch_size: int = typer.Option(16, help="corpus blocks per step"),
    fact_batch_size: int = typer.Option(16, help="facts per step"),
    block_size: int = typer.Option(64, help="tokens per corpus block"),
    beta: float = typer.Option(0.1, help="DPO beta"),
    debias_loss: str = typer.Option("dpo", help="dpo, unlikelihood or reinforce"),
    schedule: str = typer.Option("phased", help="phased (debias then learn) or interleaved"),
    debias_fraction: float = typer.Option(0.4, help="phased: share of steps that debias"),
    mine_every: int = typer.Option(50, help="re-mine negatives every N steps (0 = once)"),
    negatives: Optional[Path] = typer.Option(None, help="start from this negatives cache instead of mining"),
    train_layers: int = typer.Option(0, help="train only the top N layers (0 = all)"),
    warmup: int = typer.Option(10),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False),
) -> None:
    """Continue training a model with one of the five methods and save it."""
    import torch

    from longlore.pretrainrl.base import load_model, save_model
    from longlore.pretrainrl.facts import load_facts
    from longlore.pretrainrl.mining import load_negatives
    from longlore.pretrainrl.scoring import make_blocks
    from longlore.pretrainrl.trainer import train

    if out.exists() and not overwrite:
        raise LongloreError(f"{out}: already exists; pass --overwrite or choose another folder")
    base = PretrainRLConfig(
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        fact_batch_size=fact_batch_size,
        block_size=block_size,
        beta=beta,
        debias_loss=debias_loss,
        schedule=schedule,
        debias_fraction=debias_fraction,
        mine_every=mine_every,
        train_layers=train_layers,
        warmup=warmup,
        seed=seed,
    )
    cfg = method_config(method, base)
    if cfg.fact_objective != "none" and not facts:
        raise LongloreError(f"--method {method} trains on facts; pass --facts")
    fact_set = load_facts(facts) if facts else []
    torch.manual_seed(seed)
    lm, tok = load_model(model, seed=seed)
    blocks = make_blocks(tok, read_docs(corpus), cfg.block_size)
    result = train(
        lm, tok, cfg, blocks=blocks, facts=fact_set, negatives=load_negatives(negatives) if negatives else None
    )
    save_model(lm, tok, out, overwrite=overwrite)
    write_json(
        out / "train_log.json",
        {
            "method": method,
            "model": model,
            "config": cfg.to_dict(),
            "seconds": round(result.seconds, 1),
            "mined_rounds": result.mined_rounds,
            "history": result.history,
        },
        overwrite=True,
    )
    console.print(f"{out}: trained {cfg.steps} steps ({method}) in {result.seconds:.0f}s")


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
    overwrite: bool = typer.Option(False),
) -> None:
    """P(truth), rank, margin, Hit@1/5 and the two counts per frequency bucket; perplexity."""
    from longlore.pretrainrl.base import load_model
    from longlore.pretrainrl.facts import load_facts
    from longlore.pretrainrl.metrics import evaluate_facts, summarize
    from longlore.pretrainrl.mining import load_negatives
    from longlore.pretrainrl.scoring import make_blocks, perplexity

    if prompt not in ("prompt", "question"):
        raise LongloreError(f"--prompt is '{prompt}'; use 'prompt' or 'question'")
    lm, tok = load_model(model)
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
