from pathlib import Path

import pytest
from pydantic import BaseModel

from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text, read_json, read_jsonl, write_json, write_jsonl


class QA(BaseModel):
    question: str
    answers: list[str]


def test_roundtrip_and_unicode(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [QA(question="首都?", answers=["巴黎"]), {"question": "b", "answers": ["c"]}])
    assert read_jsonl(path, QA) == [QA(question="首都?", answers=["巴黎"]), QA(question="b", answers=["c"])]
    assert "巴黎" in path.read_text(encoding="utf-8")  # not \u-escaped


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a", "answers": ["b"]}\n\n{"question": "c", answers: []}\n')
    with pytest.raises(LongloreError, match=r"bad\.jsonl:3: invalid JSON"):
        read_jsonl(path, QA)


def test_schema_error_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a", "answers": ["b"]}\n{"question": "c"}\n')
    with pytest.raises(LongloreError, match=r"bad\.jsonl:2: field 'answers': Field required"):
        read_jsonl(path, QA)


def test_non_object_line_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(LongloreError, match=r"list\.jsonl:1: expected a JSON object"):
        read_jsonl(path)
    with pytest.raises(LongloreError, match="no such file"):
        read_jsonl(tmp_path / "absent.jsonl")


def test_atomic_write_never_silently_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "report.json"
    write_json(path, {"a": 1})
    with pytest.raises(LongloreError, match="already exists; pass --overwrite"):
        write_json(path, {"a": 2})
    assert read_json(path) == {"a": 1}
    write_json(path, {"a": 3}, overwrite=True)
    assert read_json(path) == {"a": 3}
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]  # no temp files left


def test_failed_write_leaves_target_untouched(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    atomic_write_text(path, "old\n")

    def records():
        yield {"ok": 1}
        raise RuntimeError("crash mid-way")

    with pytest.raises(RuntimeError):
        write_jsonl(path, records(), overwrite=True)
    assert path.read_text() == "old\n"
    assert len(list(tmp_path.iterdir())) == 1


def test_atomic_write_uses_normal_permissions(tmp_path: Path) -> None:
    import os

    path = atomic_write_text(tmp_path / "perm.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_run_provenance_records_the_command_threads_and_seed(monkeypatch):
    from longlore.core.io import run_provenance

    monkeypatch.setattr("sys.argv", ["benchmarks/x.py", "--results", "out.json"])
    record = run_provenance(seed=7, torch_threads=2)
    assert record["command"] == "OMP_NUM_THREADS=2 python benchmarks/x.py --results out.json"
    assert record["machine"]["torch_threads"] == 2 and record["seed"] == 7
    assert set(record) == {"command", "machine", "seed", "date"}
