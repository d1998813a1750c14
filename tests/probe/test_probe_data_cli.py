"""Distributions (equal-length windows, disjoint splits, user folders) and the CLI end to end on tiny models."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from longlore.core.errors import LongloreError
from longlore.probe.data import Distributions, _held_out, folder_documents


def test_windows_have_equal_length_and_held_out_documents_stay_out_of_training(tiny, docs_folder):
    _, tokenizer = tiny
    dists = Distributions(tokenizer, {"mine": docs_folder})
    held = dists.held_out("mine", 4, 24, seed=0)
    assert [len(s.ids) for s in held] == [24] * 4
    assert len({tuple(s.ids) for s in held}) == 4
    assert dists.held_out("mine", 4, 24, seed=0)[2].ids == held[2].ids  # seeded
    fewer = dists.held_out("mine", 2, 24, seed=0)  # a prefix, same indices: a study can grow or shrink
    assert [(s.index, s.ids) for s in fewer] == [(s.index, s.ids) for s in held[:2]]
    assert [s.ids for s in dists.held_out("mine", 4, 24, seed=1)] != [s.ids for s in held]
    assert all(len(dists.training_window("mine", 24, random.Random(i))) == 24 for i in range(5))
    docs = folder_documents(docs_folder)
    keys = [_held_out(f"mine:{i}:{d[:64]}") for i, d in enumerate(docs)]
    assert any(keys) and not all(keys)  # both parts non-empty, split by document
    train_text = tokenizer.decode(dists.stream("mine", held_out=False))
    test_docs = [d for d, k in zip(docs, keys) if k]
    assert all(d not in train_text for d in test_docs)
    randoms = dists.held_out("random", 3, 16)
    assert all(len(s.ids) == 16 and not set(s.ids) & set(tokenizer.all_special_ids) for s in randoms)


def test_bad_inputs_say_what_and_where(tiny, tmp_path, docs_folder):
    _, tokenizer = tiny
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jsonl").write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(LongloreError, match=r"a.jsonl:2: field 'text'"):
        folder_documents(bad)
    with pytest.raises(LongloreError, match="unknown distribution 'poetry'"):
        Distributions(tokenizer).stream("poetry", held_out=True)
    with pytest.raises(LongloreError, match="room for"):
        Distributions(tokenizer, {"mine": docs_folder}).held_out("mine", 10_000, 64)
    with pytest.raises(LongloreError, match="clash"):
        Distributions(tokenizer, {"code": docs_folder})


def test_cli_train_eval_study_plot_on_tiny_models(tmp_path, docs_folder):
    from longlore.cli import app

    runner = CliRunner()
    common = ["--encoder-layers", "1", "--align-init-layer", "1", "--lora-r", "4", "--lora-alpha", "8"]
    result = runner.invoke(
        app,
        [
            "probe",
            "train",
            "--out",
            str(tmp_path / "run"),
            "--model",
            "tiny-llama",
            "--distributions",
            "random",
            "--data",
            f"mine={docs_folder}",
            "--length",
            "16",
            "--steps",
            "2",
            "--batch-size",
            "2",
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "final" / "probe_config.json").exists()

    result = runner.invoke(
        app,
        [
            "probe",
            "eval",
            "--probe-dir",
            str(tmp_path / "run" / "final"),
            "--model",
            "tiny-llama",
            "--distributions",
            "random",
            "--data",
            f"mine={docs_folder}",
            "--n",
            "3",
            "--length",
            "16",
            "--output",
            str(tmp_path / "e.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "e.json").read_text())["quality"]
    assert set(metrics) == {"random", "mine", "all"} and metrics["all"]["n"] == 6

    study = [
        "probe",
        "study",
        "--decoder",
        "tiny-llama",
        "--distributions",
        "random",
        "--data-folders",
        f"mine={docs_folder}",
        "--length",
        "16",
        "--n-eval",
        "4",
        "--n-eval-mismatch",
        "2",
        "--n-entropy-encoder",
        "2",
        "--ratios",
        "4,8",
        "--mismatch-distribution",
        "mine",
        "--cpt-steps",
        "2",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--eval-batch-size",
        "4",
        "--out",
        str(tmp_path / "study"),
        *common,
    ]
    result = runner.invoke(app, [*study, "--stages", "train,eval"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "study" / "probe_study.json").exists()
    result = runner.invoke(app, [*study, "--results", str(tmp_path / "res" / "probe_study.json")])
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "res" / "probe_study.json").read_text())
    assert set(res["quality"]) == {"random", "mine", "all"} and res["quality"]["mine"]["n"] == 4
    assert set(res["correlation"]["decoder"]["nll"]) == {"pearson", "spearman", "n"}
    assert set(res["correlation"]["encoder"]["entropy"]["spearman"]) == {"bleu", "f1"}
    assert set(res["mismatch"]) >= {"matched", "mismatched", "difference_matched_minus_mismatched"}
    assert set(res["ratios"]) == {"4", "8"}
    assert res["budget"]["train_cpu_seconds"].keys() == {"matched_r4", "matched_r8", "cpt_mine", "mismatched_r4"}
    assert res["budget"]["train_steps"] == {"matched_r4": 2, "matched_r8": 2, "cpt_mine": 2, "mismatched_r4": 2}
    assert "--steps 2 " in res["command"] and "None" not in res["command"]  # Optional options left out
    assert (tmp_path / "res" / "probe_mismatch.png").exists() and (tmp_path / "res" / "probe_ratios.png").exists()

    result = runner.invoke(app, [*study, "--length", "12"])  # same folder, other samples: refused
    assert result.exit_code != 0 and "other settings" in str(result.exception)
    result = runner.invoke(app, [*study, "--n-eval-mismatch", "1", "--stages", "report"])  # a prefix: allowed
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "study" / "probe_study.json").read_text())
    assert res["mismatch"]["matched"]["mine"]["n"] == 1

    result = runner.invoke(
        app, ["probe", "plot", "--results", str(tmp_path / "res" / "probe_study.json"), "--out", str(tmp_path / "figs")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figs" / "probe_quality_vs_nll.png").exists()
