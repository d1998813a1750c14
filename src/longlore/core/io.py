"""Validated JSON / JSONL reading and atomic writing.

Reading: every record can be validated against a pydantic model; a bad record raises
:class:`LongloreError` naming the file, the 1-based line and the field. Writing: a temp file in the
same folder is written, flushed, fsync'ed and renamed over the target, so a crash never leaves a
half-written output; an existing output is only replaced when ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import tempfile
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


def iter_jsonl_numbered(path: str | Path) -> Iterable[tuple[int, dict]]:
    """Yield ``(line number, record)`` for each JSON object of a JSONL file (blank lines skipped);
    for callers that validate records themselves and need the line for their own errors."""
    path = _existing_file(path)
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise LongloreError(
                    f"{path}:{line_no}: invalid JSON ({err.msg} at column {err.colno}); "
                    "each line must be one JSON object"
                ) from None
            if not isinstance(record, dict):
                raise LongloreError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
            yield line_no, record


def iter_jsonl(path: str | Path, schema: type[M] | None = None) -> Iterable[Any]:
    """Yield the records of a JSONL file (blank lines skipped), validated if ``schema`` is given."""
    for line_no, record in iter_jsonl_numbered(path):
        yield validate_record(record, schema, f"{path}:{line_no}") if schema is not None else record


def read_jsonl(path: str | Path, schema: type[M] | None = None) -> list[Any]:
    """Read a whole JSONL file; see :func:`iter_jsonl`."""
    return list(iter_jsonl(path, schema))


def read_json(path: str | Path, schema: type[M] | None = None) -> Any:
    """Read one JSON document, validated if ``schema`` is given."""
    path = _existing_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
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


def write_jsonl(path: str | Path, records: Iterable[Any], overwrite: bool = False) -> Path:
    """Write records (dicts or pydantic models), one per line, atomically."""
    return atomic_write_text(path, "".join(dumps(r) + "\n" for r in records), overwrite=overwrite)


def save_figure(fig: Any, path: str | Path, overwrite: bool = True, dpi: int = 120) -> Path:
    """Save a matplotlib figure atomically (PNG unless the suffix says otherwise)."""
    import io as _io

    buffer = _io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue(), overwrite=overwrite)
