"""RecGPT on MovieLens-100k: LLM stages for a seeded test-user subset, then the retrieval table.

Phase ``llm``: interest mining, tag prediction and explanations of the served items with
SmolLM2-135M-Instruct for a seeded random subset of test users, 16 at a time, writing results after every chunk; every request goes
through the SQLite cache, so rerunning the same command resumes where it stopped. ``--minutes``
stops starting new chunks after that much wall time.
Phase ``train``: trains the RecGPT retriever and the collaborative-tower-only baseline (cached).
Phase ``eval``: trains (or reloads) the three-tower retriever and the baselines on the full leave-last-out
split, evaluates every method on the users whose LLM stages ran, sweeps b, explains the top
items, measures the served API, and writes ``benchmarks/results/recgpt_movielens.json``.

    nice -n 10 .venv/bin/python benchmarks/recgpt_movielens.py --phase llm --users 200 --minutes 30
    nice -n 10 .venv/bin/python benchmarks/recgpt_movielens.py --phase train
    nice -n 10 .venv/bin/python benchmarks/recgpt_movielens.py --phase eval
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
RESULTS = ROOT / "benchmarks" / "results"
RUN_DIR = ROOT / "runs" / "recgpt_bench"
LLM_FILE = RESULTS / "recgpt_movielens_llm.json"


def subset(split, n: int, seed: int) -> list[str]:
    """A fixed seeded random subset of the users that have a test item."""
    users = sorted(split.test, key=int)
    return random.Random(seed).sample(users, min(n, len(users)))


def phase_llm(args: argparse.Namespace) -> None:
    """All three LLM stages for the seeded subset, 8 users at a time, results written per chunk.

    Explanations are generated for the ``n_explain`` items the RecGPT retriever actually serves
    each user (its default b, the user's validated tags), so this phase needs the trained retriever.
    CPU seconds (process time) are summed over resumed runs: that is the reported LLM budget.
    """
    from longlore.core.backends import load_text_model
    from longlore.core.io import read_json, write_json
    from longlore.recgpt.config import RecGPTConfig
    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.llm import StageOutcome, stage_stats
    from longlore.recgpt.mining import (
        explain_top_items,
        run_interest_and_tags,
        to_mined,
    )
    from longlore.recgpt.pipeline import recommend

    config = RecGPTConfig(model=args.model, max_retries=args.max_retries, history_token_budget=args.history_tokens)
    data = load_dataset("movielens-100k")
    split = leave_last_out(data)
    recgpt, _ = trained("recgpt", 1.0, data, split, args.epochs)
    users = subset(split, args.users, args.seed)
    out_file = Path(args.out)
    model = load_text_model(config.model, cache=RUN_DIR / args.cache, batch_size=config.llm_batch)
    done = read_json(out_file) if out_file.exists() else {"users": {}, "cpu_seconds": 0.0, "wall_seconds": 0.0}
    start = time.time()
    for begin in range(0, len(users), config.llm_batch):
        chunk = [u for u in users[begin : begin + config.llm_batch] if u not in done["users"]]
        if not chunk:
            continue
        if time.time() - start > args.minutes * 60:
            print(
                f"time budget of {args.minutes} min spent after {len(done['users'])} users; rerun to resume", flush=True
            )
            break
        t0, c0 = time.time(), time.process_time()
        result = run_interest_and_tags(model, data, split.train, chunk, config)
        mined = to_mined({u: {s: result[s][u].to_dict() for s in ("interests", "tags")} for u in chunk})
        served = {
            u: recommend(recgpt, data, split, u, config.n_explain, [t["tag"] for t in mined[u]["tags"]] or None)
            for u in chunk
        }
        table, explained = explain_top_items(model, data, mined, served, config, split.train)
        for u in chunk:
            done["users"][u] = {
                "history": result["histories"][u],
                "interests": result["interests"][u].to_dict(),
                "tags": result["tags"][u].to_dict(),
                "served": [{"item_id": it["item_id"], "title": it["title"], "tag": it["tag"]} for it in served[u]],
                "explanations": explained[u].to_dict(),
                "explanation_table": table.get(u, {}),
            }
        done["cpu_seconds"] += time.process_time() - c0
        done["wall_seconds"] += time.time() - t0
        outcomes = {
            s: {u: StageOutcome(**r[s]) for u, r in done["users"].items()}
            for s in ("interests", "tags", "explanations")
        }
        done.update(
            command=command_line(),
            machine=f"{platform.machine()}, 2 CPU cores shared with other jobs; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
            seed=args.seed,
            subset_size=args.users,
            subset=users,
            model=config.model,
            max_retries=config.max_retries,
            config={
                k: getattr(config, k)
                for k in (
                    "history_token_budget",
                    "prefill",
                    "retry_temperature",
                    "n_interests",
                    "n_tags",
                    "n_explain",
                    "interest_tokens",
                    "tag_tokens",
                    "explain_tokens",
                    "llm_batch",
                )
            },
            cache=str(RUN_DIR / args.cache),
            stats={s: stage_stats(o) for s, o in outcomes.items()},
            cpu_seconds_per_user=round(done["cpu_seconds"] / len(done["users"]), 2),
            seconds_per_user_last_chunk=round((time.time() - t0) / len(chunk), 1),
        )
        write_json(out_file, done, overwrite=True)
        print(
            f"{len(done['users'])}/{len(users)} users done; {done['seconds_per_user_last_chunk']} s/user wall; "
            f"{done['cpu_seconds_per_user']} CPU s/user; cache hits {model.hits} misses {model.misses}; "
            f"parse {[round(v['parse_rate'], 2) for v in done['stats'].values()]}",
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
    retriever, summary = train_retriever(
        data, split, RecGPTConfig(semantic_weight=semantic_weight, epochs=epochs, batch_size=1024, lr=5e-3), log_every=1
    )
    retriever.save(folder)
    write_json(RUN_DIR / name / "train_summary.json", summary, overwrite=True)
    return retriever, summary


def recgpt_name(semantic_weight: float) -> str:
    """Run folder of the three-tower model: 'recgpt' at the default weight 1, else 'recgpt_sw<w>'."""
    return "recgpt" if semantic_weight == 1.0 else f"recgpt_sw{semantic_weight:g}"


def phase_train(args: argparse.Namespace) -> None:
    from longlore.recgpt.data import leave_last_out, load_dataset

    data = load_dataset("movielens-100k")
    split = leave_last_out(data)
    for name, weight in ((recgpt_name(args.semantic_weight), args.semantic_weight), ("collab", 0.0)):
        _, summary = trained(name, weight, data, split, args.epochs)
        print(name, summary["seconds"], "s", summary["history"][-1], flush=True)


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
        "mean_ms": round(float(np.mean(times)), 1),
    }


def judges(data, split, retriever, mined: dict, llm, max_test: int = 60) -> dict:
    """LLM judge vs trained judge on interests and tags, with proxy labels from held-out behaviour:
    an output is 'good' when its category (tag -> category model) is a genre of the user's next
    (test) item. Half the users fit the trained judge, the other half score both judges."""
    from longlore.core.models import load_embedder
    from longlore.recgpt.judge import Judgement, TrainedJudge, judge_accuracy, llm_judge
    from longlore.recgpt.pipeline import tag_categories

    rows = {"interest": [], "tag": []}
    for u, m in mined.items():
        genres = set(data.items[split.test[u].item_id].genres)
        context = LLM_CONTEXT.get(u, "")
        for stage, key, field in (("interest", "interests", "interest"), ("tag", "tags", "tag")):
            texts = [r[field] for r in m[key]]
            for text, cat in zip(texts, tag_categories(retriever, texts)):
                rows[stage].append((u, Judgement(stage=stage, context=context, output=text, label=int(cat in genres))))
    out = {}
    embedder = load_embedder("minilm")
    users = sorted(mined, key=int)
    fit_users = set(users[::2])
    for stage, items in rows.items():
        train = [j for u, j in items if u in fit_users]
        test = [j for u, j in items if u not in fit_users][:max_test]
        labels = [j.label for j in test]
        entry = {
            "train": len(train),
            "test": len(test),
            "positive_share": float(np.mean([j.label for _, j in items])) if items else 0.0,
        }
        if test:
            entry["llm_judge"] = judge_accuracy(llm_judge(llm, test), labels)
        if test and len({j.label for j in train}) == 2:
            entry["trained_judge"] = judge_accuracy(TrainedJudge(embedder).fit(train).predict_proba(test), labels)
        out[stage] = entry
    return out


LLM_CONTEXT: dict[str, str] = {}


def phase_eval(args: argparse.Namespace) -> None:
    from longlore.core.backends import load_text_model
    from longlore.core.io import read_json, write_json
    from longlore.recgpt.config import RecGPTConfig
    from longlore.recgpt.data import leave_last_out, load_dataset
    from longlore.recgpt.llm import StageOutcome, stage_stats
    from longlore.recgpt.mining import explain_top_items, to_mined
    from longlore.recgpt.pipeline import compare_methods, recommend
    from longlore.recgpt.serve import create_app

    started = time.time()
    data = load_dataset("movielens-100k")
    split = leave_last_out(data)
    recgpt, recgpt_summary = trained(recgpt_name(args.semantic_weight), args.semantic_weight, data, split, args.epochs)
    collab, collab_summary = trained("collab", 0.0, data, split, args.epochs)
    llm_run = read_json(Path(args.out))
    users = [u for u in llm_run["subset"] if u in llm_run["users"]]
    LLM_CONTEXT.update({u: llm_run["users"][u]["history"] for u in users})
    mined = to_mined({u: llm_run["users"][u] for u in users})
    tags = {u: [t["tag"] for t in mined[u]["tags"]] for u in users}
    betas = [1.0, 0.95, 0.9, 0.8, 0.7, 0.5]
    merges = ("max", "round_robin")
    subset_table = compare_methods(data, split, users, recgpt, collab, tags, betas, merges)
    tagged = [u for u in users if tags[u]]
    tagged_table = compare_methods(data, split, tagged, recgpt, collab, tags, betas, merges) if tagged else {}
    # Tag-source ablation without any LLM: each of the 200 subset users gets the descriptor tags of
    # the 3 genres most frequent in their own history ("drama movies"), to isolate what the
    # fusion mechanism does when tags are well-formed.
    from longlore.recgpt.pipeline import test_history, top_genres

    subset200 = llm_run["subset"]
    history_tags = {
        u: [f"{g.lower()} movies" for g, _ in top_genres(data, test_history(split, u), 3)] for u in subset200
    }
    history_table = compare_methods(data, split, subset200, recgpt, collab, history_tags, betas, merges)
    all_users = sorted(split.test, key=int)
    full_table = compare_methods(data, split, all_users, recgpt, collab, {}, [1.0])
    config = RecGPTConfig(max_retries=args.max_retries)
    llm = load_text_model(args.model, cache=RUN_DIR / args.cache, batch_size=8)
    if all("explanations" in llm_run["users"][u] for u in users):  # made by --phase llm for the served items
        table = {u: llm_run["users"][u]["explanation_table"] for u in users}
        explain_outcomes = {u: StageOutcome(**llm_run["users"][u]["explanations"]) for u in users}
    else:
        top = {u: recommend(recgpt, data, split, u, config.n_explain, tags[u] or None) for u in users}
        table, explain_outcomes = (
            ({}, {}) if args.no_explain else explain_top_items(llm, data, mined, top, config, split.train)
        )
    judge_results = judges(data, split, recgpt, {u: mined[u] for u in users}, llm, args.judge_max)
    latency = api_latency(create_app(recgpt, data, split, mined, table), all_users)
    outcomes = {s: {u: StageOutcome(**llm_run["users"][u][s]) for u in users} for s in ("interests", "tags")}
    result = {
        "command": command_line(),
        "llm_command": llm_run.get("command"),
        "machine": f"{platform.machine()}, 2 CPU cores shared with 4-5 other jobs (load ~5), torch CPU",
        "llm_cpu_seconds": llm_run.get("cpu_seconds"),
        "llm_wall_seconds": llm_run.get("wall_seconds"),
        "llm_config": llm_run.get("config"),
        "seed": llm_run["seed"],
        "subset": {
            "requested": llm_run["subset_size"],
            "with_llm_stages": len(users),
            "with_valid_tags": len(tagged),
            "user_ids": users,
        },
        "model": llm_run["model"],
        "max_retries": llm_run["max_retries"],
        "retriever_epochs": args.epochs,
        "semantic_weight": args.semantic_weight,
        "llm_stage_stats": {
            **{s: stage_stats(o) for s, o in outcomes.items()},
            "explanations": stage_stats(explain_outcomes),
        },
        "table_llm_subset": subset_table,
        "table_users_with_tags": tagged_table,
        "table_all_943_users": full_table,
        "table_history_genre_tags_200": history_table,
        "judges": judge_results,
        "api": latency,
        "train": {"recgpt": recgpt_summary, "collab": collab_summary},
        "examples": {
            u: {"interests": mined[u]["interests"][:3], "tags": mined[u]["tags"][:3], "explanations": table.get(u, {})}
            for u in users[:5]
        },
        "seconds": round(time.time() - started, 1),
    }
    write_json(Path(args.results), result, overwrite=True)
    plot(
        {"LLM tags (LLM subset)": subset_table, "history-genre tags (200)": history_table},
        betas,
        Path(args.results).with_name(Path(args.results).stem + "_beta.png"),
    )
    print(json.dumps({k: result[k] for k in ("subset", "llm_stage_stats", "api")}, indent=1))


def plot(tables: dict[str, dict], betas: list[float], path: Path) -> None:
    """Recall@20, genre diversity and tail share of the top-20 vs b, one colour per tag source
    (solid: 'max' merge, dotted: 'round_robin'), with the collaborative tower alone on the same
    users as a dashed line of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from longlore.core.io import save_figure

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
    for axis, metric in zip(ax, ("recall@20", "genre_diversity@20", "tail_share@20")):
        for (name, table), colour in zip(tables.items(), ("C0", "C1")):
            for prefix, style, label in (("recgpt_", "o-", "max"), ("recgpt_round_robin_", "s:", "round robin")):
                if f"{prefix}b{betas[0]:g}" in table:
                    axis.plot(
                        betas,
                        [table[f"{prefix}b{b:g}"][metric] for b in betas],
                        style,
                        color=colour,
                        label=f"fusion ({label}), {name}",
                    )
            axis.axhline(
                table["collab_tower_only"][metric],
                color=colour,
                ls="--",
                label=f"collab tower, {name.split('(')[1][:-1]} users",
            )
        axis.set_xlabel("b (weight of y_col)")
        axis.set_title(metric)
        axis.invert_xaxis()
    ax[0].legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)


def command_line() -> str:
    return " ".join(["python"] + sys.argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=("llm", "train", "eval"), required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--semantic-weight",
        type=float,
        default=1.0,
        help="Weight of a*L_tag + (1-a)*L_cate beside L_col in the three-tower model (eval/train).",
    )
    parser.add_argument("--results", default=str(RESULTS / "recgpt_movielens.json"), help="Output of --phase eval.")
    parser.add_argument(
        "--judge-max", type=int, default=60, help="Outputs per stage scored by the judges in --phase eval."
    )
    parser.add_argument("--no-explain", action="store_true", help="Skip the explanation stage in --phase eval.")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max-retries", type=int, default=2)
    parser.add_argument("--history-tokens", type=int, default=120, help="Token budget of the compressed history.")
    parser.add_argument("--cache", default="llm_cache_v2.sqlite", help="Request cache file under runs/recgpt_bench/.")
    parser.add_argument("--out", default=str(LLM_FILE), help="LLM-phase result JSON (--phase llm writes, eval reads).")
    args = parser.parse_args()
    {"llm": phase_llm, "train": phase_train, "eval": phase_eval}[args.phase](args)


if __name__ == "__main__":
    main()
