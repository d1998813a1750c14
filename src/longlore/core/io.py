"""Validated JSON / JSONL reading and atomic writing.

Reading: every record can be validated against a pydantic model; a bad record raises
:class:`LongloreError` naming the file, the 1-based line and the field. Files are read as UTF-8
(a byte-order mark is accepted, ``.gz`` files are decompressed); a file that is not UTF-8, an empty
file, a JSON array or a CSV file where JSON Lines are expected, and a truncated last line each get
one line saying what is wrong, where, and what to do. Writing: a temp file in the
same folder is written, flushed, fsync'ed and renamed over the target, so a crash never leaves a
half-written output; an existing output is only replaced when ``overwrite=True``.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from longlore.core.errors import LongloreError

M = TypeVar("M", bound=BaseModel)


def _describe_validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "<record>"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"field '{field}': {first.get('msg', 'invalid')}{more}"


def validate_record(record: Any, schema: type[M], where: str) -> M:
    """Validate one decoded record; ``where`` (e.g. ``"data.jsonl:3"``) prefixes the error."""
    try:
        return schema.model_validate(record)
    except ValidationError as err:
        raise LongloreError(f"{where}: {_describe_validation_error(err)}") from None


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise LongloreError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise LongloreError(f"{path}: is a folder, expected a file")
    return path


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file (``.gz`` decompressed, a leading byte-order mark dropped).

    A file that is not UTF-8 raises one line naming the file and the byte offset of the first bad
    byte (in the decompressed data for ``.gz``).
    """
    path = _existing_file(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise LongloreError(f"{path}: not a complete gzip file ({err}); re-download or re-compress it") from None
    offset = 3 if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError as err:
        where = "byte" if path.suffix != ".gz" else "decompressed byte"
        bad = data[offset + err.start : offset + err.start + 4]
        raise LongloreError(
            f"{path}: not UTF-8 text ({where} offset {offset + err.start}: {bad!r}); re-save the file as UTF-8"
        ) from None


def _line_problem(path: Path, line_no: int, line: str, first: bool, last: bool, message: str) -> str:
    """One line saying why a line of a JSON-Lines file could not be read: a JSON array, CSV, a
    truncated last line, or plain invalid JSON."""
    stripped = line.strip()
    if first and stripped.startswith("["):
        return (
            f"{path}:{line_no}: the file is a JSON array, not JSON Lines (one JSON object per line); "
            "convert it, e.g. `jq -c '.[]' FILE > FILE.jsonl`"
        )
    if first and not stripped.startswith(("{", '"')) and ("," in stripped or "\t" in stripped):
        return (
            f"{path}:{line_no}: looks like CSV/TSV ({stripped[:60]!r}), not JSON Lines; write one JSON object per line"
        )
    if last and stripped.startswith("{"):
        return f"{path}:{line_no}: the last line is cut off ({message}); the file looks truncated: re-create it or delete that line"
    return f"{path}:{line_no}: invalid JSON ({message}); each line must be one JSON object"


def iter_jsonl_numbered(
    path: str | Path, expected: str = "one JSON object per line", parse: Any = None, allow_empty: bool = False
) -> Iterable[tuple[int, dict]]:
    """Yield ``(line number, record)`` for each JSON object of a JSONL file (blank lines skipped);
    for callers that validate records themselves and need the line for their own errors.

    ``expected`` describes the format in error messages; ``parse`` replaces :func:`json.loads`
    (e.g. :func:`ast.literal_eval` for files of Python dict literals). An empty file (no records)
    is an error unless ``allow_empty``.
    """
    path = Path(path)
    text = read_text(path)
    lines = text.split("\n")
    filled = [i for i, ln in enumerate(lines) if ln.strip()]
    if not filled and not allow_empty:
        what = "is empty" if not text else "holds only blank lines"
        raise LongloreError(f"{path}: no records (the file {what}); expected {expected}")
    for index in filled:
        line, line_no, first = lines[index], index + 1, index == filled[0]
        try:
            record = parse(line) if parse is not None else json.loads(line)
        except (ValueError, SyntaxError) as err:
            message = f"{err.msg} at column {err.colno}" if isinstance(err, json.JSONDecodeError) else str(err)
            # A last line without its newline that fails to parse was cut off mid-write.
            last = index == filled[-1] and not text.endswith("\n")
            problem = _line_problem(path, line_no, line, first, last, message)
            raise LongloreError(f"{problem}; expected {expected}") from None
        if not isinstance(record, dict):
            hint = " (a JSON array; JSON Lines hold one object per line)" if isinstance(record, list) else ""
            raise LongloreError(
                f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}{hint}; expected {expected}"
            )
        yield line_no, record


def iter_jsonl(path: str | Path, schema: type[M] | None = None, allow_empty: bool = False) -> Iterable[Any]:
    """Yield the records of a JSONL file (blank lines skipped), validated if ``schema`` is given;
    a file without records is an error unless ``allow_empty``."""
    for line_no, record in iter_jsonl_numbered(path, allow_empty=allow_empty):
        yield validate_record(record, schema, f"{path}:{line_no}") if schema is not None else record


def read_jsonl(path: str | Path, schema: type[M] | None = None, allow_empty: bool = False) -> list[Any]:
    """Read a whole JSONL file; see :func:`iter_jsonl`."""
    return list(iter_jsonl(path, schema, allow_empty=allow_empty))


def read_json(path: str | Path, schema: type[M] | None = None) -> Any:
    """Read one JSON document, validated if ``schema`` is given."""
    text = read_text(path)
    if not text.strip():
        raise LongloreError(f"{path}: empty file; expected one JSON document")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LongloreError(f"{path}:{err.lineno}: invalid JSON ({err.msg} at column {err.colno})") from None
    return validate_record(data, schema, str(path)) if schema is not None else data


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_write_bytes(path: str | Path, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise LongloreError(
            f"{path}: already exists; pass --overwrite (overwrite=True) to replace it, or choose another output"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give outputs the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, overwrite: bool = False) -> Path:
    """Write UTF-8 ``text`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any, indent: int | None = None) -> str:
    """JSON text with pydantic models, paths and numpy/torch values handled; UTF-8 kept."""
    return json.dumps(obj, ensure_ascii=False, indent=indent, default=_to_jsonable)


def write_json(path: str | Path, obj: Any, overwrite: bool = False) -> Path:
    """Write one JSON document atomically (indented, UTF-8)."""
    return atomic_write_text(path, dumps(obj, indent=2) + "\n", overwrite=overwrite)


def run_provenance(seed: int = 0, torch_threads: int = 1) -> dict[str, Any]:
    """What a benchmark's results JSON records about its run: the command (as run with
    ``OMP_NUM_THREADS=torch_threads``), the machine, the seed and the date."""
    import platform
    import sys
    import time

    return {
        "command": f"OMP_NUM_THREADS={torch_threads} python " + " ".join(sys.argv),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "torch_threads": torch_threads,
        },
        "seed": seed,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_jsonl(path: str | Path, records: Iterable[Any], overwrite: bool = False) -> Path:
    """Write records (dicts or pydantic models), one per line, atomically."""
    return atomic_write_text(path, "".join(dumps(r) + "\n" for r in records), overwrite=overwrite)


def save_figure(fig: Any, path: str | Path, overwrite: bool = True, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (PNG unless the suffix says otherwise)."""
    import io as _io

    buffer = _io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue(), overwrite=overwrite)
