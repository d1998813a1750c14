"""``bench merge``: combine the outputs of ``bench run --shard i/n`` jobs into one run.

Each shard folder holds the ``results.json`` and ``samples_<task>.jsonl`` that ``bench run`` wrote.
Every sample carries its ``doc_id`` (its position in the unsharded item list), so the merged
samples are the unsharded run's samples in the same order, and the metrics are recomputed from
them by the same code: the merged results equal an unsharded run's, apart from the run's own
record (date, timings, request-cache counts, the command).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from longlore.bench.config import BenchConfig, parse_shard
from longlore.bench.report import task_file_stem
from longlore.bench.runner import build_results
from longlore.bench.tasks import resolve_tasks
from longlore.core.errors import LongloreError
from longlore.core.io import read_json, read_jsonl

# Keys of results["config"] that describe one job rather than the evaluation.
_JOB_KEYS = ("shard", "command")


def served_model(model: str | None) -> str | None:
    """The model a spec evaluates, without where it is served: ``openai:M@URL1,URL2`` -> ``openai:M``.

    Shards of one command may each run against another endpoint of the same served model (job i
    on server i); they merge. Any other spec (a local model, ``NAME:seed=N``) is compared whole."""
    if model and model.startswith("openai:") and "@" in model:
        return model.split("@", 1)[0]
    return model


def _endpoints(model: str | None) -> list[str]:
    return model.split("@", 1)[1].split(",") if model and served_model(model) != model else []


def _load_shard(folder: Path) -> dict[str, Any]:
    path = folder / "results.json"
    if not path.exists():
        raise LongloreError(f"{path}: no such file; pass the --out folders of the `bench run --shard i/n` jobs")
    results = read_json(path)
    if not isinstance(results, dict) or "config" not in results or "results" not in results:
        raise LongloreError(f"{path}: not a bench results JSON (no 'config'/'results')")
    shard = results["config"].get("shard")
    if not shard:
        raise LongloreError(f"{path}: this run was not sharded (config.shard is empty); nothing to merge")
    return results


def merge_runs(folders: list[str | Path]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """``(results, samples)`` of the unsharded run that the shard folders together make up."""
    if not folders:
        raise LongloreError("bench merge: give the shard folders to merge")
    shards = [(Path(f), _load_shard(Path(f))) for f in folders]
    parsed = {folder: parse_shard(res["config"]["shard"]) for folder, res in shards}
    totals = {n for _, n in parsed.values()}
    if len(totals) != 1:
        raise LongloreError(f"bench merge: the shards come from different splits ({sorted(totals)} shards in all)")
    total = totals.pop()
    indices = sorted(i for i, _ in parsed.values())
    if indices != list(range(1, total + 1)):
        missing = sorted(set(range(1, total + 1)) - set(indices))
        dupes = sorted({i for i in indices if indices.count(i) > 1})
        raise LongloreError(
            f"bench merge: need each of shards 1..{total} once (missing {missing or 'none'}, repeated {dupes or 'none'})"
        )
    first_folder, first = shards[0]

    def evaluation(res: dict[str, Any]) -> dict[str, Any]:
        config = {k: v for k, v in res["config"].items() if k not in _JOB_KEYS}
        config["model"] = served_model(config.get("model"))
        return config

    reference = evaluation(first)
    for folder, res in shards[1:]:
        other = evaluation(res)
        diff = sorted(k for k in set(reference) | set(other) if reference.get(k) != other.get(k))
        same_model = served_model(res.get("model_id")) == served_model(first.get("model_id"))
        if diff or list(res["results"]) != list(first["results"]) or not same_model:
            raise LongloreError(
                f"bench merge: {folder} was run with other settings than {first_folder} "
                f"(differs in {diff or 'tasks or model'}); merge shards of one command only"
            )
    task_names = list(first["results"])
    samples: dict[str, list[dict[str, Any]]] = {}
    for task in task_names:
        rows: list[dict[str, Any]] = []
        for folder, _ in shards:
            path = folder / f"samples_{task_file_stem(task)}.jsonl"
            if not path.exists():
                raise LongloreError(
                    f"{path}: no such file; bench merge needs the samples each shard wrote beside results.json"
                )
            rows.extend(read_jsonl(path, allow_empty=True))
        rows.sort(key=lambda r: r["doc_id"])
        ids = [r["doc_id"] for r in rows]
        if ids != list(range(len(ids))):
            raise LongloreError(
                f"bench merge: task {task}: the shards' doc_ids do not form 0..{len(ids) - 1} exactly once"
            )
        samples[task] = rows
    known = {f.name for f in fields(BenchConfig)}
    config = BenchConfig(**{k: v for k, v in first["config"].items() if k in known and k != "shard"})
    ordered = [res for _, res in sorted(shards, key=lambda s: parsed[s[0]][0])]
    model_id = first.get("model_id")
    # Shards served by several endpoints: the merged run is that of the multi-endpoint model over all of them.
    urls = list(dict.fromkeys(u for res in ordered for u in _endpoints(res["config"].get("model"))))
    if urls:
        config.model = f"{served_model(config.model)}@{','.join(urls)}"
        model_id = f"{served_model(model_id)}@{','.join(urls)}"
    specs = resolve_tasks(task_names)
    n_original = {t: first["n-samples"][t]["original"] for t in task_names}
    n_shots = {t: first["n-shot"][t] for t in task_names}
    sum_of = lambda key: round(sum(res.get(key) or 0.0 for _, res in shards), 1)
    extra: dict[str, Any] = {
        "model_id": model_id,
        "total_evaluation_time_seconds": sum_of("total_evaluation_time_seconds"),
        "cpu_seconds": sum_of("cpu_seconds"),
        "merged_from": [str(folder) for folder, _ in sorted(shards, key=lambda s: parsed[s[0]][0])],
    }
    caches = [res["request_cache"] for _, res in shards if "request_cache" in res]
    if caches:
        extra["request_cache"] = {k: sum(c[k] for c in caches) for k in ("hits", "misses")}
    return build_results(specs, samples, n_original, n_shots, config, extra), samples
