"""RecGPT on MovieLens-100k: structured LLM stages for every test user, then a fair fusion comparison.

Phase ``llm``: interest mining and tag prediction with SmolLM2-135M-Instruct, each reply held to
its stage's JSON schema (structured generation), for all 943 test users in a seeded random order
(a stopped run has covered a random subset), 16 users per batch, every request through the SQLite
cache: rerunning the same command resumes. ``--minutes`` stops starting new chunks after that much
wall time. Retrieval needs the tags of every user; explanations are made in ``eval`` for a seeded
sample only (``--explain-users``): they are shown to people, not used by the retriever.
Phase ``train``: the collaborative tower alone (semantic weight 0) and the three-tower model at
semantic weights 1 and 0.3 (cached under ``--run-dir``).
Phase ``eval``: the fusion's semantic weight and b are chosen per user fold on the *other* fold's
validation items (``pipeline.crossfit_fusion``), then every method is scored on the test items of
all test users; bootstrap intervals over users, paired for fusion minus the collaborative tower.

    OMP_NUM_THREADS=1 python benchmarks/recgpt_movielens.py --phase llm --minutes 600
    OMP_NUM_THREADS=1 python benchmarks/recgpt_movielens.py --phase train
    OMP_NUM_THREADS=1 python benchmarks/recgpt_movielens.py --phase eval \\
        --results benchmarks/results/recgpt_movielens.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / "runs" / "recgpt_bench"
SEMANTIC_WEIGHTS = (1.0, 0.3)
BETAS = (1.0, 0.95, 0.9, 0.8, 0.7, 0.5)


def user_order(split, seed: int) -> list[str]:
    """All test users in a seeded random order (a partial run covers a random subset)."""
    users = sorted(split.test, key=int)
    random.Random(seed).shuffle(users)
    return users


def llm_config(args):
    from longlore.recgpt.config import RecGPTConfig

    return RecGPTConfig(
        model=args.model,
        max_retries=args.max_retries,
        history_token_budget=args.history_tokens,
        llm_batch=args.llm_batch,
    )


def phase_llm(args: argparse.Namespace) -> None:
    """Interests + tags for every test user, chunk by chunk; CPU seconds summed over resumed runs."""
    import torch

    from longlore.core.backends import load_text_model
    from longlore.core.io import read_json, write_json
    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.llm import StageOutcome, stage_stats
    from longlore.recgpt.mining import run_interest_and_tags

    torch.set_num_threads(1)
    config = llm_config(args)
    data = load_dataset("movielens-100k")
    split = leave_last_out(data)
    users = user_order(split, args.seed)[: args.users] if args.users else user_order(split, args.seed)
    out_file = Path(args.llm_file)
    model = load_text_model(config.model, cache=RUN_DIR / args.cache, batch_size=config.llm_batch)
    done = read_json(out_file) if out_file.exists() else {"users": {}, "cpu_seconds": 0.0, "wall_seconds": 0.0}
    start = time.time()
    for begin in range(0, len(users), config.llm_batch):
        chunk = [u for u in users[begin : begin + config.llm_batch] if u not in done["users"]]
        if not chunk:
            continue
        if time.time() - start > args.minutes * 60:
            print(f"time budget of {args.minutes} min spent after {len(done['users'])} users; rerun to resume")
            break
        t0, c0 = time.time(), time.process_time()
        result = run_interest_and_tags(model, data, split.train, chunk, config)
        for u in chunk:
            done["users"][u] = {
                "history": result["histories"][u],
                "interests": result["interests"][u].to_dict(),
                "tags": result["tags"][u].to_dict(),
            }
        done["cpu_seconds"] += time.process_time() - c0
        done["wall_seconds"] += time.time() - t0
        outcomes = {s: {u: StageOutcome(**r[s]) for u, r in done["users"].items()} for s in ("interests", "tags")}
        done.update(
            command=command_line(),
            machine=f"{platform.machine()}, 2 CPU cores shared with other jobs; "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads 1",
            seed=args.seed,
            order=users,
            model=config.model,
            config={
                k: getattr(config, k)
                for k in (
                    "history_token_budget",
                    "prefill",
                    "structured",
                    "max_retries",
                    "retry_temperature",
                    "n_interests",
                    "n_tags",
                    "interest_tokens",
                    "tag_tokens",
                    "llm_batch",
                )
            },
            cache=str(RUN_DIR / args.cache),
            stats={s: stage_stats(o) for s, o in outcomes.items()},
            cpu_seconds_per_user=round(done["cpu_seconds"] / len(done["users"]), 2),
        )
        write_json(out_file, done, overwrite=True)
        print(
            f"{len(done['users'])}/{len(users)} users; {(time.time() - t0) / len(chunk):.1f} s/user wall, "
            f"{done['cpu_seconds_per_user']} CPU s/user; valid {[round(v['parse_rate'], 3) for v in done['stats'].values()]}"
            f" json {[v['json_parse_rate'] and round(v['json_parse_rate'], 3) for v in done['stats'].values()]}",
            flush=True,
        )


def trained(name: str, semantic_weight: float, data, split, epochs: int):
    """Train (or reload) a retriever under RUN_DIR/<name>; semantic_weight 0 = collaborative tower alone."""
    from longlore.core.io import write_json
    from longlore.recgpt.config import RecGPTConfig
    from longlore.recgpt.trainer import Retriever, train_retriever

    folder = RUN_DIR / name / "retriever"
    if (folder / "retriever.json").exists():
        return Retriever.load(folder), json.loads((RUN_DIR / name / "train_summary.json").read_text())
    c0 = time.process_time()
    retriever, summary = train_retriever(
        data, split, RecGPTConfig(semantic_weight=semantic_weight, epochs=epochs, batch_size=1024, lr=5e-3), log_every=1
    )
    summary["cpu_seconds"] = round(time.process_time() - c0, 1)
    retriever.save(folder)
    write_json(RUN_DIR / name / "train_summary.json", summary, overwrite=True)
    return retriever, summary


def retriever_name(semantic_weight: float) -> str:
    return "collab" if semantic_weight == 0 else f"recgpt_sw{semantic_weight:g}"


def phase_train(args: argparse.Namespace) -> None:
    import torch

    from longlore.recgpt.data import leave_last_out, load_dataset

    torch.set_num_threads(1)
    data = load_dataset("movielens-100k")
    split = leave_last_out(data)
    for weight in (0.0, *SEMANTIC_WEIGHTS):
        _, summary = trained(retriever_name(weight), weight, data, split, args.epochs)
        print(retriever_name(weight), summary.get("cpu_seconds"), "CPU s", summary["history"][-1], flush=True)


def api_latency(app, users: list[str], n: int = 100) -> dict:
    """n sequential GETs against a live uvicorn server on 127.0.0.1; p50/p95 latency in ms."""
    import httpx

    from longlore.recgpt.serve import start_in_thread

    server, url = start_in_thread(app)
    times, errors = [], 0
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(n):
                t0 = time.perf_counter()
                response = client.get(f"/users/{users[i % len(users)]}/recommendations", params={"k": 20})
                times.append((time.perf_counter() - t0) * 1000)
                errors += response.status_code != 200 or len(response.json()["items"]) != 20
    finally:
        server.should_exit = True
    return {
        "requests": n,
        "errors": errors,
        "p50_ms": round(float(np.percentile(times, 50)), 1),
        "p95_ms": round(float(np.percentile(times, 95)), 1),
    }


def summarize_per_user(row: dict, k: int = 20) -> dict:
    from longlore.recgpt.evaluate import bootstrap_ci

    per = row["per_user"]
    return {
        f"recall@{k}": bootstrap_ci(per[f"hit@{k}"]),
        f"genre_diversity@{k}": bootstrap_ci(per[f"genres@{k}"]),
        f"tail_share@{k}": bootstrap_ci(per[f"tail@{k}"]),
        f"ndcg@{k}": row[f"ndcg@{k}"],
        f"coverage@{k}": row[f"coverage@{k}"],
        "users": row["users"],
    }


def paired(a: dict, b: dict, k: int = 20) -> dict:
    from longlore.recgpt.evaluate import bootstrap_ci

    out = {}
    for key, name in (
        (f"hit@{k}", f"recall@{k}"),
        (f"genres@{k}", f"genre_diversity@{k}"),
        (f"tail@{k}", f"tail_share@{k}"),
    ):
        diff = np.asarray(a["per_user"][key]) - np.asarray(b["per_user"][key])
        out[name] = bootstrap_ci(diff.tolist())
    return out


def compare_on(users, data, split, retrievers, collab, tags, label: str) -> dict:
    """Collaborative tower vs cross-fitted fusion (and the b sweep for reference) on ``users``."""
    from longlore.recgpt.baselines import ItemKNN, Popularity, interaction_matrix
    from longlore.recgpt.evaluate import evaluate_scorer, tail_items
    from longlore.recgpt.pipeline import crossfit_fusion, test_history

    matrix = interaction_matrix(data, split.train)
    pop, knn = Popularity(matrix), ItemKNN(matrix)
    tail = tail_items(pop.counts.numpy())
    targets = {u: split.test[u].item_id for u in users}
    hist = {u: test_history(split, u) for u in users}
    seen = {u: {data.item_index[i] for i in hist[u]} for u in users}

    def run(score):
        return evaluate_scorer(data, score, users, targets, seen, tail, per_user=True)

    fused = crossfit_fusion(data, split, users, retrievers, tags, BETAS)
    rows = {
        "popularity": run(lambda u: pop(0, [])),
        "item_knn": run(lambda u: knn(0, [data.item_index[i] for i in hist[u]])),
        "collab_tower_only": run(lambda u: collab.scores(u, hist[u])[0]),
        "fusion": run(fused["scorer"]),
    }
    sweep = {
        f"{name}_b{b:g}": {
            k: v
            for k, v in run(lambda u, r=r, b=b: r.scores(u, hist[u], tags.get(u) or None, b)[0]).items()
            if k != "per_user"
        }
        for name, r in retrievers.items()
        for b in BETAS
    }
    return {
        "users": len(users),
        "label": label,
        "fusion": summarize_per_user(rows["fusion"]),
        "collab_tower_only": summarize_per_user(rows["collab_tower_only"]),
        "paired_difference_fusion_minus_collab": paired(rows["fusion"], rows["collab_tower_only"]),
        "fusion_choice_per_fold": fused["choice"],
        "validation_selection": fused["selection"],
        "baselines": {n: summarize_per_user(rows[n]) for n in ("popularity", "item_knn")},
        "sweep_on_test_for_reference_only": sweep,
    }


def phase_eval(args: argparse.Namespace) -> None:
    import torch

    from longlore.core.backends import load_text_model
    from longlore.core.io import read_json, write_json
    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.llm import StageOutcome, stage_stats
    from longlore.recgpt.mining import explain_top_items, to_mined
    from longlore.recgpt.pipeline import recommend
    from longlore.recgpt.serve import create_app

    torch.set_num_threads(1)
    started, c_start = time.time(), time.process_time()
    data = load_dataset("movielens-100k")
    split = leave_last_out(data)
    collab, collab_summary = trained("collab", 0.0, data, split, args.epochs)
    retrievers, summaries = {}, {}
    for w in SEMANTIC_WEIGHTS:
        retrievers[retriever_name(w)], summaries[retriever_name(w)] = trained(
            retriever_name(w), w, data, split, args.epochs
        )
    llm_run = read_json(Path(args.llm_file))
    all_users = sorted(split.test, key=int)
    covered = [u for u in all_users if u in llm_run["users"]]
    mined = to_mined({u: llm_run["users"][u] for u in covered})
    tags = {u: [t["tag"] for t in mined[u]["tags"]] for u in covered}
    outcomes = {s: {u: StageOutcome(**llm_run["users"][u][s]) for u in covered} for s in ("interests", "tags")}
    tables = {"all_test_users": compare_on(all_users, data, split, retrievers, collab, tags, "all test users")}
    if len(covered) < len(all_users):
        tables["users_with_llm_stages"] = compare_on(covered, data, split, retrievers, collab, tags, "LLM-covered")
    tagged = [u for u in covered if tags[u]]
    tables["users_with_valid_tags"] = compare_on(tagged, data, split, retrievers, collab, tags, "users with tags")
    # explanations: a seeded sample of tagged users, for the items the chosen fusion serves them
    config = llm_config(args)
    sample = random.Random(args.seed).sample(tagged, min(args.explain_users, len(tagged)))
    choice = tables["all_test_users"]["fusion_choice_per_fold"]
    from longlore.recgpt.pipeline import user_fold

    c0 = time.process_time()
    llm = load_text_model(args.model, cache=RUN_DIR / args.cache, batch_size=config.llm_batch)
    served = {}
    for u in sample:
        pick = choice[user_fold(u, 2, 0)]
        served[u] = recommend(
            retrievers[pick["retriever"]], data, split, u, config.n_explain, tags[u], beta=pick["beta"]
        )
    table, explained = explain_top_items(llm, data, {u: mined[u] for u in sample}, served, config, split.train)
    explain_cpu = time.process_time() - c0
    best = retrievers[choice[0]["retriever"]]
    latency = api_latency(create_app(best, data, split, mined, table), all_users)
    result = {
        "command": command_line(),
        "llm_command": llm_run.get("command"),
        "machine": f"{platform.machine()}, 2 CPU cores shared with 6-8 other jobs, torch threads 1",
        "model": llm_run.get("model"),
        "llm_config": llm_run.get("config"),
        "seed": args.seed,
        "users": {
            "test_users": len(all_users),
            "with_llm_stages": len(covered),
            "with_valid_tags": len(tagged),
            "explained_sample": len(sample),
        },
        "tag_parse_rate": {
            "json": stage_stats(outcomes["tags"])["json_parse_rate"],
            "valid": stage_stats(outcomes["tags"])["parse_rate"],
            "note": "json = share of tag replies that parse as JSON (schema-constrained); valid = share of users "
            "whose tags pass the content validators (users whose interests failed count as failures)",
        },
        "llm_stage_stats": {
            **{s: stage_stats(o) for s, o in outcomes.items()},
            "explanations (sample)": stage_stats(explained),
        },
        "cpu_seconds": {
            "llm_interests_and_tags": llm_run.get("cpu_seconds"),
            "llm_per_user": llm_run.get("cpu_seconds_per_user"),
            "explanations_sample": round(explain_cpu, 1),
            "retriever_training": {
                "collab": collab_summary.get("cpu_seconds"),
                **{k: v.get("cpu_seconds") for k, v in summaries.items()},
            },
            "eval_total": round(time.process_time() - c_start, 1),
        },
        "retriever_epochs": args.epochs,
        "semantic_weights_tried": list(SEMANTIC_WEIGHTS),
        "betas_tried": list(BETAS),
        "selection_protocol": "2 user folds (crc32 of seed:user); each fold's (semantic weight, b) maximises Recall@20 "
        "on the validation items of the other fold's users, scored from their training logs; test items never used",
        "tables": tables,
        "api": latency,
        "examples": {
            u: {"interests": mined[u]["interests"][:3], "tags": mined[u]["tags"][:3], "explanations": table.get(u, {})}
            for u in sample[:5]
        },
        "seconds_wall": round(time.time() - started, 1),
    }
    write_json(Path(args.results), result, overwrite=True)
    plot(tables["all_test_users"], Path(args.results).with_suffix(".png"))
    head = tables["all_test_users"]
    print(
        json.dumps(
            {
                "fusion": head["fusion"]["recall@20"],
                "collab": head["collab_tower_only"]["recall@20"],
                "paired": head["paired_difference_fusion_minus_collab"],
                "tag_parse_rate": result["tag_parse_rate"],
            },
            indent=1,
        )
    )


def plot(table: dict, path: Path) -> None:
    """Fusion vs the collaborative tower with bootstrap intervals: Recall@20, genres and tail share of the top 20."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longlore.core.io import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, metric in zip(axes, ("recall@20", "genre_diversity@20", "tail_share@20")):
        names = ["collab_tower_only", "fusion"]
        stats = [table[n][metric] for n in names]
        ax.bar(
            names,
            [s["mean"] for s in stats],
            yerr=[[s["mean"] - s["ci_low"] for s in stats], [s["ci_high"] - s["mean"] for s in stats]],
            capsize=4,
            color=["grey", "tab:blue"],
        )
        d = table["paired_difference_fusion_minus_collab"][metric]
        ax.set_title(
            f"{metric}\nfusion - collab {d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]", fontsize=9
        )
    fig.suptitle(f"RecGPT on MovieLens-100k, {table['users']} users (95% bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def command_line() -> str:
    return " ".join(["python"] + sys.argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=("llm", "train", "eval"), required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--results", default=str(RUN_DIR / "results.json"), help="Output of --phase eval.")
    parser.add_argument("--users", type=int, default=0, help="Stop after this many users of the order (0 = all).")
    parser.add_argument("--explain-users", type=int, default=64, help="Seeded sample explained in --phase eval.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max-retries", type=int, default=1)
    parser.add_argument("--llm-batch", type=int, default=16)
    parser.add_argument("--history-tokens", type=int, default=120, help="Token budget of the compressed history.")
    parser.add_argument("--cache", default="llm_cache_structured.sqlite", help="Request cache file under the run dir.")
    parser.add_argument("--llm-file", default=str(RUN_DIR / "llm_structured.json"), help="LLM-phase result JSON.")
    args = parser.parse_args()
    {"llm": phase_llm, "train": phase_train, "eval": phase_eval}[args.phase](args)


if __name__ == "__main__":
    main()
