"""The construction verbs on the `longlore bench` CLI: options from the configs, one-line errors."""

from __future__ import annotations

import dataclasses

from typer.testing import CliRunner

from longlore.bench.build.config import KGBuildConfig, QABuildConfig, WeakConceptConfig
from longlore.bench.build.queue import ReviewStore
from longlore.cli import app
from longlore.core.errors import LongloreError

runner = CliRunner()


def test_every_config_field_is_an_option_with_its_default():
    for verb, config in (
        ("build-kg", KGBuildConfig),
        ("build-qa", QABuildConfig),
        ("weak-concepts", WeakConceptConfig),
    ):
        text = runner.invoke(app, ["bench", verb, "--help"], env={"COLUMNS": "240"}).output
        for f in dataclasses.fields(config):
            assert f"--{f.name.replace('_', '-')}" in text, (verb, f.name)
        assert "--device" in text and "--dtype" in text


def test_build_kg_then_review_export_from_the_command_line(tmp_path):
    rows = ["head\trelation\ttail\ttail_type"]
    rows += [f"item{i}\tcolour\tc{i % 4}\tcolour" for i in range(6)]
    rows += [f"other{j}\tcolour\tc{j}\tcolour" for j in range(14)]
    (tmp_path / "kg.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "t.yaml").write_text("language: en\nrelations:\n  colour: '{head} has the colour ___ ({tail_type})'\n")
    out = tmp_path / "out"
    args = ["bench", "build-kg", "--triples", str(tmp_path / "kg.tsv"), "--templates", str(tmp_path / "t.yaml")]
    result = runner.invoke(app, [*args, "--out", str(out), "--n-questions", "4", "--embedder", "tiny-bert"])
    assert result.exit_code == 0, result.output
    assert (out / "eckgbench" / "ECKGBench.jsonl").read_text().count("\n") == 4
    store = ReviewStore(out / "review_queue.jsonl")
    store.decide("kg-1", "alice", "accept")
    store.decide("kg-2", "alice", "reject", reason="ambiguous")
    result = runner.invoke(
        app, ["bench", "review-export", str(out / "review_queue.jsonl"), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert "eckgbench: 1 accepted items" in result.output
    assert (tmp_path / "r" / "eckgbench" / "ECKGBench.jsonl").read_text().count("\n") == 1


def test_bad_input_is_one_line(tmp_path):
    (tmp_path / "kg.tsv").write_text("a\tb\n")
    result = runner.invoke(app, ["bench", "build-kg", "--triples", str(tmp_path / "kg.tsv"), "--templates", "umls"])
    # longlore.cli.main prints a LongloreError as one red line and exits 2.
    assert isinstance(result.exception, LongloreError)
    assert "kg.tsv:1: expected 3 tab-separated columns, found 2" in str(result.exception)
    assert "\n" not in str(result.exception)
