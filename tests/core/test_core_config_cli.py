"""Config dataclass -> typer options: every field type, help rendering, and the registry walk that
checks every registered (config, command) pair of every system exposes each field with its default."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest
import typer
from typer.testing import CliRunner

from longlore.core.config_cli import (
    CONFIG_COMMANDS,
    ConfigCommand,
    check_config_command,
    config_options,
    register_config_command,
)


@dataclass
class DemoConfig:
    ratio: float = field(default=0.25, metadata={"help": "Kept share, in [0, 1]."})
    sample: bool = field(default=False, metadata={"help": "Draw the share each step."})
    no_cache: bool = field(default=False, metadata={"help": "Skip the cache."})
    ratio_range: tuple[float, float] = field(default=(0.0, 1.0), metadata={"help": "(low, high]."})
    trainable: tuple[str, ...] = field(default=("q_proj", "k_proj"), metadata={"help": "Name parts that train."})
    restarts: Optional[list[int]] = field(default=None, metadata={"help": "Schedule restarts."})
    mode: Literal["full", "memory-only"] = field(default="full", metadata={"help": "{prompt, [system], [id]}"})
    shots: int | None = field(default=None, metadata={"help": "Few-shot examples."})
    out: Path = field(default=Path("runs/demo"), metadata={"help": "Output folder."})
    version: int = 1


@dataclass
class LoopConfig:
    steps: int = field(default=10, metadata={"help": "Steps."})
    seed: int = field(default=0, metadata={"help": "Seed."})


app = typer.Typer()
seen: list = []


@app.command()
@config_options(config=DemoConfig, loop=LoopConfig, exclude={"version"})
def train(config: DemoConfig, loop: LoopConfig, model: str = typer.Option("tiny-llama", help="Model.")) -> None:
    seen.append((config, loop, model))


@app.command()
def noop() -> None:
    """Keeps typer in multi-command mode."""


def invoke(*args: str):
    seen.clear()
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    return seen[-1]


def test_defaults_come_from_the_dataclass() -> None:
    config, loop, model = invoke()
    assert config == DemoConfig() and loop == LoopConfig() and model == "tiny-llama"


def test_every_field_type_parses() -> None:
    config, loop, _ = invoke(
        "--ratio", "0.5", "--sample", "--no-cache", "--ratio-range", "0.1,0.2", "--trainable", "",
        "--restarts", "3,7", "--mode", "memory-only", "--shots", "2", "--out", "x/y", "--steps", "4",
    )  # fmt: skip
    assert config == DemoConfig(0.5, True, True, (0.1, 0.2), (), [3, 7], "memory-only", 2, Path("x/y"))
    assert loop.steps == 4
    assert invoke("--cache")[0].no_cache is False


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ratio-range", "0.1"], "expected 2 comma-separated values"),
        (["--restarts", "3,x"], "'x' is not a valid int"),
        (["--mode", "half"], "half"),
    ],
)
def test_bad_values_are_named(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2 and message in result.output


def test_help_renders_brackets_and_never_doubles_no() -> None:
    text = CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output
    assert "{prompt, [system], [id]}" in text
    assert "--no-cache" in text and "--no-no-cache" not in text and "--cache" in text
    assert "--sample" in text and "--no-sample" in text and "--version" not in text


def test_clashing_fields_need_a_prefix() -> None:
    @dataclass
    class Other:
        seed: int = field(default=1, metadata={"help": "Another seed."})

    with pytest.raises(TypeError, match="clashes"):
        config_options(a=LoopConfig, b=Other)(lambda a, b: None)
    wrapped = config_options(a=LoopConfig, b=Other, prefix={"b": "other_"})(lambda a, b: (a, b))
    assert wrapped(steps=1, seed=2, other_seed=3) == (LoopConfig(1, 2), Other(3))


def test_the_checker_catches_a_drifted_hand_written_command() -> None:
    def hand_written(
        steps: int = typer.Option(12, help="Steps."),  # drifted default
        seed: int = typer.Option(0),  # no help
    ) -> None: ...

    problems = check_config_command(ConfigCommand(LoopConfig, hand_written))
    assert any("CLI default 12 != dataclass default 10" in p for p in problems)
    assert any("--seed has no help" in p for p in problems)
    assert check_config_command(ConfigCommand(DemoConfig, hand_written)) != []  # nothing exposed


def test_every_registered_config_command_exposes_its_fields() -> None:
    """The registry walk: every system's decorated or registered (config, command) pairs."""
    from longlore.cli import available_systems

    for name in available_systems():
        importlib.import_module(f"longlore.{name}.cli")
    register_config_command(LoopConfig, train)
    assert any(e.command is train for e in CONFIG_COMMANDS)
    problems = [p for entry in CONFIG_COMMANDS for p in check_config_command(entry)]
    assert problems == []
