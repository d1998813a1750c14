"""The CLI end to end on a tiny world, the fact loaders and the world's construction."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from longlore.core.errors import LongloreError
from longlore.pretrainrl.cli import app
from longlore.pretrainrl.config import WorldConfig
from longlore.pretrainrl.facts import load_facts
from longlore.pretrainrl.world import RELATIONS, SyntheticWorld

runner = CliRunner()


def test_world_puts_tail_facts_against_the_popular_value():
    world = SyntheticWorld.generate(WorldConfig(n_entities=40, max_count=40, seed=3))
    again = SyntheticWorld.generate(WorldConfig(n_entities=40, max_count=40, seed=3))
    assert world.corpus == again.corpus and world.facts == again.facts  # seeded
    tail = [f for f in world.facts if f.bucket == "tail"]
    assert tail and all(f.object != RELATIONS[f.relation]["values"][0] for f in tail)
    counts = [p.count for p in world.people]
    assert counts == sorted(counts, reverse=True) and counts[0] == 40 and counts[-1] == 1
    corpus = world.corpus_text()
    head = next(p for p in world.people if p.bucket == "head")
    assert corpus.count(head.name) >= head.count * 3  # every mention renders all three facts
    assert not any("Question:" in doc for doc in world.corpus)  # the SFT form never occurs in pretraining


def test_fact_loaders(tmp_path):
    path = tmp_path / "facts.jsonl"
    path.write_text(
        '{"subject": "Ada", "relation": "born_in", "object": "Tarsk"}\n'
        '{"subject": "Ada", "relation": "born_in", "object": "Brin"}\n'
        '{"subject": "Bo", "relation": "born_in", "object": "Kesh", "prompt": "Bo came from"}\n'
    )
    facts = load_facts(path)
    assert facts[0].prompt == "Ada born in" and facts[0].truths == ["Tarsk", "Brin"]
    assert facts[2].prompt == "Bo came from" and set(facts[2].candidates) == {"Tarsk", "Brin", "Kesh"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"subject": "Ada", "relation": "r"}\n')
    with pytest.raises(LongloreError, match=r"bad.jsonl:1: field 'object'"):
        load_facts(bad)
    tsv = tmp_path / "kg.tsv"
    tsv.write_text("a\tr\tb\nc\tr\n")
    with pytest.raises(LongloreError, match=r"kg.tsv:2: expected 3 tab-separated fields"):
        load_facts(tsv)
    nations = load_facts("kg-nations")
    assert len(nations) > 100 and all(f.object in f.candidates for f in nations)
    with pytest.raises(LongloreError, match="no such file"):
        load_facts(tmp_path / "missing.jsonl")


def test_cli_make_world_mine_train_eval(tmp_path):
    world = tmp_path / "world"
    result = runner.invoke(app, ["make-world", "--out", str(world), "--n-entities", "8", "--max-count", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads((world / "world.json").read_text())["facts_per_bucket"]
    facts = str(world / "facts.jsonl")
    result = runner.invoke(
        app,
        [
            "mine",
            "--model",
            "tiny-llama",
            "--facts",
            facts,
            "--out",
            str(tmp_path / "neg.jsonl"),
            "--mine-max-new-tokens",
            "3",
            "--num-negatives",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "tiny-llama",
            "--facts",
            facts,
            "--corpus",
            str(world / "corpus.txt"),
            "--out",
            str(tmp_path / "model"),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--fact-batch-size",
            "2",
            "--block-size",
            "32",
            "--debias-fraction",
            "0.5",
            "--negatives",
            str(tmp_path / "neg.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    log = json.loads((tmp_path / "model" / "train_log.json").read_text())
    assert [row["phase"] for row in log["history"]] == ["debias", "learn"]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "model" / "final").config.model_type == "llama"
    result = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(tmp_path / "model"),
            "--facts",
            facts,
            "--negatives",
            str(tmp_path / "neg.jsonl"),
            "--heldout",
            str(world / "heldout.txt"),
            "--block-size",
            "32",
            "--out",
            str(tmp_path / "m.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["perplexity"] > 1 and metrics["summary"]["all"]["n"] == 24
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "tiny-llama",
            "--corpus",
            str(world / "corpus.txt"),
            "--out",
            str(tmp_path / "m2"),
            "--method",
            "sft",
        ],
    )
    assert result.exit_code != 0 and "pass --facts" in str(result.exception)
