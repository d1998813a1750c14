"""`longlore comet train | passkey | generate | bench` end to end on tiny models."""

import json

import pytest
from typer.testing import CliRunner

from longlore.cli import app

SIZES = ["--num-global", "4", "--temp-stride", "4", "--temp-budget", "8", "--chunk-size", "32", "--rank", "2"]


def test_train_passkey_generate(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "comet",
            "train",
            "--out",
            str(out),
            "--model",
            "scratch-1x64",
            "--task",
            "passkey",
            "--curriculum",
            "1:2,2:1",
            "--lr-restart",
            "--batch-size",
            "2",
            "--checkpoint-every",
            "2",
            *SIZES,
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "final" / "comet_model.safetensors").exists() and (out / "checkpoint.pt").exists()
    history = json.loads((out / "train_history.json").read_text())
    assert history["steps_done"] == 3 and len(history["loss"]) == 3
    grid = tmp_path / "passkey.json"
    result = runner.invoke(
        app,
        [
            "comet",
            "passkey",
            "--out",
            str(grid),
            "--comet-dir",
            str(out / "final"),
            "--lengths",
            "100,200",
            "--depths",
            "0,100",
            "--keys",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(grid.read_text())
    assert len(data["records"]) == 4 and set(data["accuracy"]) == {"100", "200"}
    assert all(abs(r["prompt_tokens"] - r["length"]) < 40 for r in data["records"])
    assert grid.with_suffix(".png").exists()
    result = runner.invoke(
        app,
        [
            "comet",
            "generate",
            "--prompt",
            "The sky is blue. " * 20,
            "--comet-dir",
            str(out / "final"),
            "--max-new-tokens",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["comet", "generate", "--model", "tiny-llama", *SIZES])
    # the console entry point turns this LongloreError into one red line and exit code 2
    assert result.exit_code != 0 and "exactly one of --prompt" in str(result.exception)


def test_cost_measure_in_process() -> None:
    from longlore.comet.cost import measure, summarize

    point = measure(
        "comet", 200, "tiny-llama", {"num_global": 4, "temp_stride": 4, "temp_budget": 8, "chunk_size": 32, "rank": 2}
    )
    assert point["seconds"] > 0 and point["peak_rss_mb"] >= point["rss_after_load_mb"] > 0
    full = measure("full", 200, "tiny-llama", {})
    assert full["method"] == "full" and full["seconds"] > 0
    summary = summarize([{**point, "length": 100}, {**point, "peak_rss_mb": 2 * point["peak_rss_mb"]}, full])
    assert summary["comet_peak_rss_ratio_longest_vs_shortest"] == 2.0 and summary["full_attention_longest_ok"] == 200


@pytest.mark.slow  # two fresh interpreters; benchmarks/comet_cost.py --smoke covers the same path
def test_bench_cli_subprocess_points(tmp_path) -> None:
    cost = tmp_path / "cost.json"
    result = CliRunner().invoke(
        app, ["comet", "bench", "--out", str(cost), "--model", "tiny-llama", "--lengths", "64", *SIZES]
    )
    assert result.exit_code == 0, result.output
    points = json.loads(cost.read_text())["points"]
    assert {(p["method"], p["length"]) for p in points} == {("comet", 64), ("full", 64)}
    assert all(p["peak_rss_mb"] > 0 and p["seconds"] > 0 for p in points)
