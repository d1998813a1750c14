"""PEFT-style save/load: only the wrapper's tensors, a versioned config, run folders resolve to final/."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from longlore.core.errors import LongloreError
from longlore.core.saving import PretrainedMixin, find_model_folder


@dataclass
class HeadConfig:
    hidden: int = field(default=3, metadata={"help": "Head width."})


class Head(PretrainedMixin, torch.nn.Module):
    """A trainable head on a frozen backbone."""

    pretrained_kind = "head"
    config_class = HeadConfig

    def __init__(self, base_model: torch.nn.Module, tokenizer, config: HeadConfig) -> None:
        super().__init__()
        self.base_model, self.tokenizer, self.config = base_model.requires_grad_(False), tokenizer, config
        self.proj = torch.nn.Linear(base_model.out_features, config.hidden)


def make(hidden: int = 3) -> Head:
    torch.manual_seed(0)
    return Head(torch.nn.Linear(4, 5), None, HeadConfig(hidden))


def test_round_trip_saves_only_the_wrapper(tmp_path: Path) -> None:
    head = make()
    with torch.no_grad():
        head.proj.weight.add_(1.0)
    head.save_pretrained(tmp_path / "run" / "final")
    files = sorted(p.name for p in (tmp_path / "run" / "final").iterdir())
    assert files == ["head_config.json", "head_model.safetensors"]
    meta = json.loads((tmp_path / "run" / "final" / "head_config.json").read_text())
    assert meta["format_version"] == 1 and meta["config"] == {"hidden": 3} and meta["kind"] == "head"
    loaded = Head.from_pretrained(make().base_model, None, tmp_path / "run")  # a run folder: finds final/
    assert torch.equal(loaded.proj.weight, head.proj.weight) and not loaded.training
    from safetensors.torch import load_file

    assert set(load_file(str(tmp_path / "run" / "final" / "head_model.safetensors"))) == {"proj.weight", "proj.bias"}
    head.save_pretrained(tmp_path / "run" / "final")  # overwrite in place leaves no temp folders
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["final"]


def test_run_folder_without_final_names_the_subfolders(tmp_path: Path) -> None:
    make().save_pretrained(tmp_path / "run" / "checkpoint-100")
    make().save_pretrained(tmp_path / "run" / "checkpoint-200")
    with pytest.raises(
        LongloreError, match=r"run folder without final/head_config\.json; pass .*checkpoint-100, .*checkpoint-200"
    ):
        Head.from_pretrained(make().base_model, None, tmp_path / "run")
    with pytest.raises(LongloreError, match="not a head model folder"):
        find_model_folder(tmp_path / "run" / "checkpoint-100" / "..", "other.json", what="head model")
    with pytest.raises(LongloreError, match="no such folder"):
        find_model_folder(tmp_path / "nope", "config.json")


def test_newer_format_and_mismatched_shapes_are_refused(tmp_path: Path) -> None:
    make().save_pretrained(tmp_path / "m")
    with pytest.raises(LongloreError, match="wrong shape"):
        Head.from_pretrained(torch.nn.Linear(4, 6), None, tmp_path / "m")  # a different backbone width
    config = tmp_path / "m" / "head_config.json"
    meta = json.loads(config.read_text())
    config.write_text(json.dumps({**meta, "format_version": 9}))
    with pytest.raises(LongloreError, match="format_version 9 is newer"):
        Head.from_pretrained(make().base_model, None, tmp_path / "m")


def test_a_run_folder_given_as_a_model_spec_finds_final(tmp_path: Path) -> None:
    from longlore.core.models import load_causal_lm

    model, tok = load_causal_lm("tiny-llama:seed=2")
    model.save_pretrained(tmp_path / "run" / "final")
    tok.save_pretrained(tmp_path / "run" / "final")
    again, _ = load_causal_lm(str(tmp_path / "run"))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
