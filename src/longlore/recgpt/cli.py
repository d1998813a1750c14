"""``longlore recgpt``: prepare | mine | train | explain | evaluate | serve."""

from __future__ import annotations

import json
import random
from pathlib import Path

import typer

from longlore.core.config_cli import config_options, device_option, dtype_option
from longlore.core.errors import LongloreError
from longlore.core.progress import console
from longlore.recgpt.config import RecGPTConfig

# Which RecGPTConfig fields each verb exposes (one option per field, default and help from the
# dataclass): the LLM stages, the three-tower retriever, and what serving/evaluation reads.
_BEHAVIOUR = {"strong_rating", "min_rating", "history_token_budget"}
_LLM = {
    "model",
    "prefill",
    "structured",
    "domain",
    "max_retries",
    "retry_temperature",
    "n_interests",
    "n_tags",
    "interest_tokens",
    "tag_tokens",
    "llm_batch",
}
_RETRIEVER = {
    "dim",
    "history_len",
    "alpha",
    "semantic_weight",
    "temperature",
    "n_negatives",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "beta",
    "tag_merge",
    "merge_depth",
    "tag_embedder",
    "seed",
}
_ALL = set(RecGPTConfig.__dataclass_fields__)

app = typer.Typer(
    help="RecGPT: intent-centric recommendation (interests -> tags -> three-tower retrieval -> explanations).",
    no_args_is_help=True,
)

DATA_HELP = "movielens-100k, or a folder of RecBole atomic files (*.inter, ...) or JSONL (interactions.jsonl, ...)."


def _pick_users(split, users: int, user_ids: str | None, seed: int) -> list[str]:
    if user_ids:
        chosen = [u.strip() for u in user_ids.split(",") if u.strip()]
        for u in chosen:
            if u not in split.test and u not in split.train:
                raise LongloreError(f"--user-ids: unknown user id '{u}'")
        return chosen
    from longlore.recgpt.data import _natural

    pool = sorted(split.test, key=_natural)
    return random.Random(seed).sample(pool, min(users, len(pool)))


@app.command()
def prepare(
    data: str = typer.Option("movielens-100k", help=DATA_HELP),
    out: Path = typer.Option(..., help="Output folder for the JSONL form and split summary."),
    overwrite: bool = typer.Option(False),
) -> None:
    """Validate a dataset, write it in JSONL form and summarise the leave-last-out split."""
    from longlore.core.io import write_json
    from longlore.recgpt.data import leave_last_out, load_dataset, write_jsonl_folder

    dataset = load_dataset(data)
    split = leave_last_out(dataset)
    write_jsonl_folder(dataset, out, overwrite=overwrite)
    summary = {
        "source": dataset.source,
        "users": dataset.n_users,
        "items": dataset.n_items,
        "interactions": len(dataset.interactions),
        "genres": dataset.genres,
        "items_with_kg_attributes": sum(bool(i.attributes) for i in dataset.items.values()),
        "train_interactions": sum(len(v) for v in split.train.values()),
        "test_users": len(split.test),
    }
    write_json(out / "summary.json", summary, overwrite=overwrite)
    typer.echo(json.dumps(summary))


@app.command()
@config_options(config=RecGPTConfig, exclude=_ALL - _BEHAVIOUR - _LLM - {"seed"})
def mine(
    config: RecGPTConfig,
    data: str = typer.Option("movielens-100k", help=DATA_HELP),
    run_dir: Path = typer.Option(..., help="Run folder: mined.json and mine_outcomes.json are written here."),
    users: int = typer.Option(8, help="Seeded random test users to mine (ignored with --user-ids)."),
    user_ids: str | None = typer.Option(None, help="Comma-separated user ids."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Interest mining and tag prediction through the request cache (rerun to resume).

    --model openai:MODEL@URL needs --no-prefill (an endpoint cannot continue a pre-filled reply)."""
    from longlore.core.backends import load_text_model
    from longlore.core.io import read_json, write_json
    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.llm import stage_stats
    from longlore.recgpt.mining import run_interest_and_tags, to_mined

    dataset = load_dataset(data)
    split = leave_last_out(dataset)
    chosen = _pick_users(split, users, user_ids, config.seed)
    text_model = load_text_model(
        config.model, cache=run_dir / "llm_cache.sqlite", batch_size=config.llm_batch, device=device, dtype=dtype
    )
    result = run_interest_and_tags(text_model, dataset, split.train, chosen, config)
    outcomes = {
        u: {
            "history": result["histories"][u],
            "interests": result["interests"][u].to_dict(),
            "tags": result["tags"][u].to_dict(),
        }
        for u in chosen
    }
    previous = read_json(run_dir / "mine_outcomes.json") if (run_dir / "mine_outcomes.json").exists() else {}
    previous.update(outcomes)
    write_json(run_dir / "mine_outcomes.json", previous, overwrite=True)
    write_json(run_dir / "mined.json", to_mined(previous), overwrite=True)
    stats = {s: stage_stats(result[s]) for s in ("interests", "tags")}
    write_json(run_dir / "mine_stats.json", stats, overwrite=True)
    typer.echo(json.dumps(stats))


@app.command()
@config_options(config=RecGPTConfig, exclude=_ALL - _RETRIEVER)
def train(
    config: RecGPTConfig,
    data: str = typer.Option("movielens-100k", help=DATA_HELP),
    run_dir: Path = typer.Option(..., help="The retriever is saved to RUN_DIR/retriever."),
) -> None:
    """Train the user-item-tag three-tower retriever on the training logs (--semantic-weight 0:
    the collaborative tower alone, the baseline)."""
    from longlore.core.io import write_json
    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.trainer import train_retriever

    dataset = load_dataset(data)
    retriever, summary = train_retriever(dataset, leave_last_out(dataset), config, log_every=1)
    retriever.save(run_dir / "retriever")
    write_json(run_dir / "train_summary.json", summary, overwrite=True)
    console.print(f"trained on {summary['pairs']} pairs in {summary['seconds']} s; saved to {run_dir / 'retriever'}")


@app.command()
@config_options(config=RecGPTConfig, exclude=_ALL - _LLM - {"n_explain", "explain_tokens", "min_rating"})
def explain(
    config: RecGPTConfig,
    data: str = typer.Option("movielens-100k", help=DATA_HELP),
    run_dir: Path = typer.Option(..., help="Run folder with retriever/ and mined.json."),
    device: str = device_option(),
    dtype: str = dtype_option(),
) -> None:
    """Explanation table for the mined users' top recommendations (RUN_DIR/explanations.json)."""
    from longlore.core.backends import load_text_model
    from longlore.core.io import write_json
    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.llm import stage_stats
    from longlore.recgpt.mining import explain_top_items
    from longlore.recgpt.pipeline import recommend
    from longlore.recgpt.serve import load_run

    dataset = load_dataset(data)
    split = leave_last_out(dataset)
    retriever, mined, _ = load_run(run_dir)
    k = config.n_explain
    top = {u: recommend(retriever, dataset, split, u, k, [t["tag"] for t in m["tags"]]) for u, m in mined.items()}
    text_model = load_text_model(
        config.model, cache=run_dir / "llm_cache.sqlite", batch_size=config.llm_batch, device=device, dtype=dtype
    )
    table, outcomes = explain_top_items(text_model, dataset, mined, top, config, split.train)
    write_json(run_dir / "explanations.json", table, overwrite=True)
    typer.echo(json.dumps(stage_stats(outcomes)))


@app.command()
def evaluate(
    data: str = typer.Option("movielens-100k", help=DATA_HELP),
    run_dir: Path = typer.Option(...),
    collab_run: Path | None = typer.Option(None, help="A run trained with --semantic-weight 0."),
    betas: str = typer.Option("1,0.9,0.8,0.7,0.5"),
    only_mined: bool = typer.Option(True, help="Evaluate on the users in mined.json (else all test users)."),
    output: Path | None = typer.Option(None, help="Write the table JSON here."),
) -> None:
    """Full-ranking comparison on the test users: popularity, item-KNN, collab tower, RecGPT fusion."""
    from longlore.core.io import write_json
    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.pipeline import compare_methods
    from longlore.recgpt.serve import load_run
    from longlore.recgpt.trainer import Retriever

    dataset = load_dataset(data)
    split = leave_last_out(dataset)
    retriever, mined, _ = load_run(run_dir)
    collab = Retriever.load(collab_run / "retriever", retriever.embedder) if collab_run else None
    users = [u for u in mined if u in split.test] if only_mined else sorted(split.test, key=int)
    if not users:
        raise LongloreError(
            f"{run_dir}/mined.json has no test users; run `longlore recgpt mine` first or pass --no-only-mined"
        )
    tags = {u: [t["tag"] for t in mined.get(u, {}).get("tags", [])] for u in users}
    table = compare_methods(dataset, split, users, retriever, collab, tags, [float(b) for b in betas.split(",")])
    if output:
        write_json(output, table, overwrite=True)
    typer.echo(json.dumps(table))


@app.command()
def serve(
    data: str = typer.Option("movielens-100k", help=DATA_HELP),
    run_dir: Path = typer.Option(...),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
) -> None:
    """Serve GET /users/{id}/recommendations?k= (FastAPI + uvicorn) from a run folder."""
    import uvicorn

    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.serve import create_app, load_run

    dataset = load_dataset(data)
    retriever, mined, explanations = load_run(run_dir)
    console.print(f"serving {dataset.n_users} users on http://{host}:{port}/users/{{id}}/recommendations?k=10")
    uvicorn.run(
        create_app(retriever, dataset, leave_last_out(dataset), mined, explanations),
        host=host,
        port=port,
        log_level="warning",
    )
