"""The CLI end to end on the toy catalogue: prepare, train, evaluate; errors are one line, exit 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from longlore.cli import app

runner = CliRunner()


def test_prepare_writes_jsonl_and_summary(toy_folder, tmp_path):
    result = runner.invoke(app, ["recgpt", "prepare", "--data", str(toy_folder), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["users"] == 24 and summary["items"] == 40 and summary["test_users"] == 24
    assert (tmp_path / "p" / "interactions.jsonl").exists()


def test_malformed_log_is_one_line_exit_2(toy_folder, tmp_path, monkeypatch, capsys):
    import sys

    import pytest

    from longlore.cli import main

    inter = toy_folder / "toy.inter"
    n = len(inter.read_text().splitlines())
    inter.write_text(inter.read_text() + "5\t7\n")
    monkeypatch.setattr(
        sys, "argv", ["longlore", "recgpt", "prepare", "--data", str(toy_folder), "--out", str(tmp_path / "p")]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"toy.inter:{n + 1}: expected 4 tab-separated fields" in err and "Traceback" not in err


def test_train_then_evaluate_all_users(toy_folder, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "recgpt",
            "train",
            "--data",
            str(toy_folder),
            "--run-dir",
            str(run),
            "--epochs",
            "1",
            "--tag-embedder",
            "tiny-bert",
            "--dim",
            "16",
        ],
    )
    assert result.exit_code == 0, result.output
    (run / "mined.json").write_text(
        json.dumps({"3": {"interests": [], "tags": [{"tag": "drama movies", "interest": "x"}]}})
    )
    result = runner.invoke(
        app, ["recgpt", "evaluate", "--data", str(toy_folder), "--run-dir", str(run), "--betas", "1,0.5"]
    )
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"popularity", "item_knn", "recgpt_b1", "recgpt_b0.5"} <= set(table) and table["popularity"]["users"] == 1
    assert table["users_with_tags"] == 1


def test_batch_size_means_one_thing_per_verb():
    """`mine --llm-batch` is prompts per generate call; `train --batch-size` is training pairs per step."""
    import re

    def flags(verb):
        out = runner.invoke(app, ["recgpt", verb, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}).output
        return set(re.findall(r"--[a-z][a-z-]+", out)), out

    mine, _ = flags("mine")
    train, text = flags("train")
    assert "--llm-batch" in mine and "--batch-size" not in mine and "--no-prefill" in mine
    assert "--batch-size" in train and "--llm-batch" not in train and "Training pairs per step" in text
