"""Tiny models and a tiny user corpus for the probe tests."""

from __future__ import annotations

import random

import pytest


@pytest.fixture(scope="session")
def tiny():
    """A fresh tiny-llama decoder (2 layers, hidden 64) and its tokenizer."""
    from longlore.core.models import load_causal_lm

    return load_causal_lm("tiny-llama:seed=1")


@pytest.fixture()
def tiny_config():
    from longlore.probe.config import ProbeConfig

    return ProbeConfig(encoder_layers=1, ratio=4, lora_r=4, lora_alpha=8, align_init_layer=1)


@pytest.fixture(scope="session")
def docs_folder(tmp_path_factory):
    """A folder with .txt files and a .jsonl file: a user's own distribution."""
    folder = tmp_path_factory.mktemp("docs")
    words = [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "the",
        "lazy",
        "dog",
        "while",
        "seven",
        "wise",
        "owls",
        "count",
        "the",
        "stars",
    ]
    rng = random.Random(0)
    for i in range(40):
        text = f"document {i}: " + " ".join(rng.choice(words) for _ in range(80))
        (folder / f"doc{i}.txt").write_text(text)
    (folder / "more.jsonl").write_text(
        '{"text": "in the beginning was the word"}\n\n{"text": "and the word was old"}\n'
    )
    return folder
