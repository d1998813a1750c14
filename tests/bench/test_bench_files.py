"""Bad input files: one clear line each (file, line or byte offset, field), nothing overwritten.

Covers the shared readers in ``longlore.core.io`` and the bench loaders and CLI that use them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from longlore.bench.cli import app, default_score_out
from longlore.bench.data import benchmark_file, load_file
from longlore.core.errors import LongloreError
from longlore.core.io import read_json, read_jsonl, read_text

GOOD = {"idx": 1, "cate0": "a", "cate1": "b", "cate2": "c", "question": "1+1?", "answer": 2, "grade": "g1"}


class Row(BaseModel):
    idx: int
    question: str


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def _line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.jsonl", b"\xef\xbb\xbf" + _line(GOOD).encode() + _line({**GOOD, "idx": 2}).encode())
    assert [r["idx"] for r in read_jsonl(path)] == [1, 2]
    assert [it.provenance.line for it, _ in load_file(path, "conceptmath", "element_en")] == [1, 2]
    assert read_json(_write(tmp_path / "bom.json", b'\xef\xbb\xbf{"a": 1}')) == {"a": 1}


def test_non_utf8_names_file_and_byte_offset(tmp_path: Path) -> None:
    head = _line(GOOD).encode()
    path = _write(tmp_path / "latin1.jsonl", head + '{"question": "caf\xe9"}\n'.encode("latin-1"))
    offset = len(head) + len(b'{"question": "caf')
    with pytest.raises(LongloreError, match=rf"latin1.jsonl: not UTF-8 text \(byte offset {offset}: b'\\xe9"):
        read_jsonl(path)
    # With a BOM in front, the offset still counts from the start of the file.
    bom = _write(tmp_path / "bom_latin1.jsonl", b"\xef\xbb\xbf" + b"\xff")
    with pytest.raises(LongloreError, match=r"byte offset 3:"):
        read_text(bom)


@pytest.mark.parametrize("content,what", [("", "is empty"), ("\n  \n\n", "holds only blank lines")])
def test_empty_file_is_an_error(tmp_path: Path, content: str, what: str) -> None:
    path = _write(tmp_path / "empty.jsonl", content)
    with pytest.raises(LongloreError, match=rf"empty.jsonl: no records \(the file {what}\)"):
        read_jsonl(path)
    with pytest.raises(LongloreError, match=r"no records.*ConceptMath JSONL"):
        load_file(path, "conceptmath", "element_en")
    assert read_jsonl(path, allow_empty=True) == []
    with pytest.raises(LongloreError, match="empty file"):
        read_json(_write(tmp_path / "empty.json", content))


def test_truncated_last_line_names_the_line(tmp_path: Path) -> None:
    text = _line(GOOD) + _line({**GOOD, "idx": 2})[:25]  # cut mid-record, no final newline
    path = _write(tmp_path / "cut.jsonl", text)
    with pytest.raises(LongloreError, match=r"cut.jsonl:2: the last line is cut off .*looks truncated"):
        read_jsonl(path)
    # A broken line in the middle is plain invalid JSON, with its line.
    middle = _write(tmp_path / "mid.jsonl", _line(GOOD)[:25] + "\n" + _line(GOOD))
    with pytest.raises(LongloreError, match=r"mid.jsonl:1: invalid JSON"):
        read_jsonl(middle)


def test_json_array_instead_of_json_lines(tmp_path: Path) -> None:
    pretty = _write(tmp_path / "pretty.json", json.dumps([GOOD, GOOD], indent=2))
    with pytest.raises(LongloreError, match=r"pretty.json:1: the file is a JSON array, not JSON Lines.*jq -c"):
        read_jsonl(pretty)
    one_line = _write(tmp_path / "one.json", json.dumps([GOOD, GOOD]))
    with pytest.raises(LongloreError, match=r"one.json:1: expected a JSON object, got list \(a JSON array"):
        load_file(one_line, "conceptmath", "element_en")


def test_csv_instead_of_json_lines(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.csv", "idx,question,answer\n1,1+1?,2\n")
    with pytest.raises(LongloreError, match=r"data.csv:1: looks like CSV/TSV \('idx,question,answer'\)"):
        read_jsonl(path)


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    record = {k: v for k, v in GOOD.items() if k != "cate1"}
    path = _write(tmp_path / "fields.jsonl", _line(GOOD) + _line(record))
    with pytest.raises(LongloreError, match=r"fields.jsonl:2: missing field\(s\) \['cate1'\]"):
        load_file(path, "conceptmath", "element_en")
    with pytest.raises(LongloreError, match=r"fields.jsonl:1: field 'idx': Input should be a valid integer"):
        read_jsonl(_write(tmp_path / "fields.jsonl", _line({"idx": "x", "question": "q"})), Row)


def test_gzip_files_read_like_plain_ones(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.jsonl.gz", gzip.compress(_line(GOOD).encode()))
    assert read_jsonl(path) == [GOOD]
    broken = _write(tmp_path / "broken.jsonl.gz", gzip.compress(_line(GOOD).encode())[:-6])
    with pytest.raises(LongloreError, match=r"broken.jsonl.gz: not a complete gzip file"):
        read_jsonl(broken)


def _responses(tmp_path: Path, name: str, bench_data: Path, n: int = 3) -> Path:
    lines = read_text(benchmark_file(bench_data, "conceptmath", "element_en")).splitlines()[:n]
    records = [{**json.loads(ln), "response": "The answer is 3."} for ln in lines]
    return _write(tmp_path / name, "".join(_line(r) for r in records))


def test_bench_score_reports_bad_files_in_one_line(tmp_path: Path, bench_data: Path) -> None:
    runner = CliRunner()
    bad = {
        "empty.jsonl": b"",
        "latin1.jsonl": b'{"q": "\xe9"}\n',
        "array.json": json.dumps([GOOD]).encode(),
        "table.csv": b"idx,question\n1,q\n",
        "cut.jsonl": (_line({**GOOD, "response": "2"}) + _line(GOOD)[:20]).encode(),
    }
    for name, content in bad.items():
        path = _write(tmp_path / name, content)
        out = tmp_path / f"out_{name}"
        result = runner.invoke(
            app, ["score", "--task", "conceptmath/element_en", "--responses", str(path), "--out", str(out)]
        )
        assert result.exit_code != 0 and isinstance(result.exception, LongloreError), name
        message = str(result.exception)
        assert "\n" not in message and name in message, message
        assert not (out / "results.json").exists()


def test_bench_score_default_out_is_per_task_and_file(
    tmp_path: Path, bench_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first, second = _responses(tmp_path, "a.jsonl", bench_data), _responses(tmp_path, "b.jsonl.gz", bench_data)
    second.write_bytes(gzip.compress(first.read_bytes()))
    for path in (first, second):  # two files in a row: no --overwrite needed
        result = runner.invoke(app, ["score", "--task", "conceptmath/element_en", "--responses", str(path)])
        assert result.exit_code == 0, result.output
    assert default_score_out("conceptmath/element_en", first) == Path("runs/bench_score/conceptmath__element_en__a")
    assert (tmp_path / "runs/bench_score/conceptmath__element_en__a/results.json").exists()
    assert (tmp_path / "runs/bench_score/conceptmath__element_en__b/results.json").exists()
    # The same file again: refused, and the results file is left as it was.
    results = tmp_path / "runs/bench_score/conceptmath__element_en__a/results.json"
    before = results.read_bytes()
    again = runner.invoke(app, ["score", "--task", "conceptmath/element_en", "--responses", str(first)])
    assert again.exit_code != 0 and "--overwrite" in str(again.exception)
    assert results.read_bytes() == before
    assert (
        runner.invoke(
            app, ["score", "-t", "conceptmath/element_en", "--responses", str(first), "--overwrite"]
        ).exit_code
        == 0
    )
