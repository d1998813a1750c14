"""`bench run --shard i/n` + `bench merge`: the merged shards equal the unsharded run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from longlore.bench.cli import app
from longlore.bench.config import BenchConfig, parse_shard
from longlore.bench.merge import merge_runs
from longlore.bench.report import write_run
from longlore.bench.runner import evaluate, shard_items
from longlore.core.backends import HFTextModel, load_text_model
from longlore.core.errors import LongloreError
from longlore.core.serve import serve_openai

TASKS = ["eckgbench/main", "eckgbench/main_mc", "eckgbench/main_boundary", "conceptmath/element_zh"]
# The run's own record, which differs between any two runs.
VOLATILE = {"date", "total_evaluation_time_seconds", "cpu_seconds", "request_cache", "merged_from"}


def _stable(results: dict) -> dict:
    out = {k: v for k, v in results.items() if k not in VOLATILE}
    out["config"] = {k: v for k, v in results["config"].items() if k != "command"}
    return out


def test_shard_items_are_strided_and_cover_every_item_once() -> None:
    items = list("abcdefg")
    shards = [shard_items(items, f"{i}/3") for i in (1, 2, 3)]  # type: ignore[arg-type]
    assert [[d for d, _ in s] for s in shards] == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(d for s in shards for d, _ in s) == list(range(7))
    for bad in ("0/2", "3/2", "2", "a/b", "1/0"):
        with pytest.raises(LongloreError, match="expected i/n"):
            parse_shard(bad)


def test_merged_shards_equal_the_unsharded_run(tiny: HFTextModel, tmp_path: Path) -> None:
    base = dict(tasks=TASKS, model="tiny-llama", limit=5, max_new_tokens=6)
    whole, whole_samples = evaluate(BenchConfig(**base), model=tiny)
    folders = []
    for i in (1, 2):
        res, samples = evaluate(BenchConfig(**base, shard=f"{i}/2"), model=tiny)
        assert res["n-samples"]["eckgbench/main"]["effective"] == (3 if i == 1 else 2)
        folders.append(write_run(tmp_path / f"shard{i}", res, samples, plots=False))
    merged, merged_samples = merge_runs(list(reversed(folders)))  # order of the folders does not matter
    assert merged_samples == json.loads(json.dumps(whole_samples))  # same samples, same order
    assert _stable(json.loads(json.dumps(merged))) == _stable(json.loads(json.dumps(whole)))
    # Sampled boundary completions depend on the item alone, not on the batch or shard they ran in.
    assert [s["responses"] for s in merged_samples["eckgbench/main_boundary"]] == [
        s["responses"] for s in whole_samples["eckgbench/main_boundary"]
    ]


def test_merge_refuses_incomplete_or_mixed_shards(tiny: HFTextModel, tmp_path: Path) -> None:
    base = dict(tasks=["eckgbench/main"], model="tiny-llama", limit=4)
    first = write_run(tmp_path / "s1", *evaluate(BenchConfig(**base, shard="1/2"), model=tiny), plots=False)
    with pytest.raises(LongloreError, match=r"need each of shards 1..2 once \(missing \[2\]"):
        merge_runs([first])
    other = write_run(tmp_path / "s2", *evaluate(BenchConfig(**base, shard="2/2", seed=1), model=tiny), plots=False)
    with pytest.raises(LongloreError, match=r"s2 was run with other settings .*'seed'"):
        merge_runs([first, other])
    unsharded = write_run(tmp_path / "all", *evaluate(BenchConfig(**base), model=tiny), plots=False)
    with pytest.raises(LongloreError, match="was not sharded"):
        merge_runs([first, unsharded])


def test_cli_shard_runs_and_merge(tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["run", "--task", "eckgbench/main", "--model", "tiny-llama", "--limit", "3", "--no-cache"]
    for i in (1, 2):
        result = runner.invoke(app, [*common, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "m" / "results.json").read_text(encoding="utf-8"))
    assert merged["n-samples"]["eckgbench/main"]["effective"] == 3 and merged["config"]["shard"] is None
    assert len(merged["merged_from"]) == 2
    again = runner.invoke(app, ["merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m")])
    assert again.exit_code != 0 and "--overwrite" in str(again.exception)


def test_shards_on_two_endpoints_and_a_two_endpoint_run_equal_the_local_run(tmp_path: Path) -> None:
    """Scale-out as a user runs it: `longlore serve` twice on 127.0.0.1 (the same server code, each
    with its own copy of the model), shard i of `bench run` against endpoint i, `bench merge`; and
    one unsharded run spread over both endpoints. Both equal the local unsharded run."""
    tasks = [
        "eckgbench/main",
        "eckgbench/main_mc",
    ]  # greedy generation (repetition penalty in the body) + log-likelihoods
    local = HFTextModel.from_spec("tiny-llama", batch_size=4)
    whole, whole_samples = evaluate(
        BenchConfig(tasks=tasks, model="tiny-llama", limit=5, max_new_tokens=6), model=local
    )
    servers = [serve_openai(HFTextModel.from_spec("tiny-llama", batch_size=4)) for _ in range(2)]
    urls = [url for _, url in servers]
    runner = CliRunner()
    common = ["run", "--task", tasks[0], "--task", tasks[1], "--limit", "5", "--max-new-tokens", "6", "--no-cache"]
    try:
        for i, url in enumerate(urls, 1):
            args = [
                *common,
                "--model",
                f"openai:tiny-llama@{url}",
                "--shard",
                f"{i}/2",
                "--out",
                str(tmp_path / f"s{i}"),
            ]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
        both = load_text_model(f"openai:tiny-llama@{urls[0]},{urls[1]}", concurrency=2)
        spread, spread_samples = evaluate(
            BenchConfig(tasks=tasks, model=f"openai:tiny-llama@{urls[0]},{urls[1]}", limit=5, max_new_tokens=6),
            model=both,
        )
    finally:
        for server, _ in servers:
            server.shutdown()
    assert min(both.served) > 0  # the two-endpoint run used both
    merged, merged_samples = merge_runs([tmp_path / "s2", tmp_path / "s1"])
    # The merged run is recorded as the two-endpoint model (the shards' endpoints, in shard order).
    assert merged["config"]["model"] == f"openai:tiny-llama@{urls[0]},{urls[1]}" == merged["model_id"]
    merged, spread = json.loads(json.dumps(merged)), json.loads(json.dumps(spread))
    spread_samples, whole = json.loads(json.dumps(spread_samples)), json.loads(json.dumps(whole))
    for results, samples in ((merged, merged_samples), (spread, spread_samples)):
        # Greedy generation: the server applies the chat template, so the answers are the local model's.
        assert [s["response"] for s in samples["eckgbench/main"]] == [
            s["response"] for s in whole_samples["eckgbench/main"]
        ]
        assert results["results"]["eckgbench/main"] == whole["results"]["eckgbench/main"]
        assert {k: v for k, v in results["config"].items() if k not in ("model", "command")} == {
            k: v for k, v in whole["config"].items() if k not in ("model", "command")
        }
    # Log-likelihood MC: an endpoint scores raw text (no server-side template on /completions), so the
    # context is the plain `role: content` form and the numbers are an endpoint run's, not the local
    # template's; the sharded and the two-endpoint runs agree with each other.
    for mine, ref in zip(merged_samples["eckgbench/main_mc"], spread_samples["eckgbench/main_mc"]):
        assert mine["prompt"] == ref["prompt"] and mine["prompt"].endswith("\nassistant:")
        assert mine["response"] == ref["response"] and mine["logprobs"] == pytest.approx(ref["logprobs"], abs=1e-4)
    assert merged["results"]["eckgbench/main_mc"] == spread["results"]["eckgbench/main_mc"]
    # Shards of another served model are refused.
    other = json.loads((tmp_path / "s2" / "results.json").read_text(encoding="utf-8"))
    other["config"]["model"] = other["model_id"] = f"openai:other-model@{urls[1]}"
    (tmp_path / "s2" / "results.json").write_text(json.dumps(other), encoding="utf-8")
    with pytest.raises(LongloreError, match="was run with other settings"):
        merge_runs([tmp_path / "s1", tmp_path / "s2"])
