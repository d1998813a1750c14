"""Loaders: each official benchmark file -> a list of :class:`~longlore.bench.schema.Item`.

The benchmarks' published files ship with longlore (gzip-compressed package data in
``bench/benchmark_data/``, origins and sha256 in its ``SOURCES.md``). A data root holds
``conceptmath/``, ``chineseecomqa/`` and ``eckgbench/`` as their authors published them, each file
plain or ``.gz``; it is an explicit argument (``--data DIR``), else ``$LONGLORE_BENCH_DATA``, else
the shipped copy.

Official formats (as published in the benchmarks' repositories; see benchmark_data/SOURCES.md):
- ConceptMath ``{idx, cate0, cate1, cate2, question, answer, grade}`` (answer int, float or str);
- ChineseEcomQA ``{system_prompt, prompt, gt, task}`` (few-shot examples live in system_prompt);
- ECKGBench ``{id, question, gt, dim}``; the options are a Python list literal at the end of the
  question; ``question_original.jsonl`` holds Python dict literals ``{idx, question,
  ground_truth, relation}``.
Unknown extra fields (e.g. ``response`` or ``explanation`` in files scored elsewhere) are kept in
``metadata`` so :func:`to_official` gives the record back unchanged.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from longlore.bench.pack import SHIPPED_ROOT
from longlore.bench.schema import Item, Provenance
from longlore.core.errors import LongloreError
from longlore.core.io import iter_jsonl_numbered, read_text

ENV_VAR = "LONGLORE_BENCH_DATA"

CONCEPTMATH_SPLITS = ("element_en", "element_zh", "middle_en", "middle_zh")
ECOMQA_CONCEPTS = ("IC", "IDC", "CC", "BC", "AC", "SC", "ITC", "RVC", "RLC", "PC")
ECKG_SPLITS = {"main": "ECKGBench.jsonl", "large": "ECKGBench_large.jsonl", "original": "question_original.jsonl"}
ECKG_DIMS = {"dim_1": "common knowledge", "dim_2": "abstract knowledge"}

# The fields each official format must have, and the one-line description used in errors.
FORMATS: dict[str, tuple[frozenset[str], str]] = {
    "conceptmath": (
        frozenset({"idx", "cate0", "cate1", "cate2", "question", "answer", "grade"}),
        "ConceptMath JSONL: one JSON object per line with {idx, cate0, cate1, cate2, question, answer, grade}",
    ),
    "chineseecomqa": (
        frozenset({"system_prompt", "prompt", "gt", "task"}),
        "ChineseEcomQA JSONL: one JSON object per line with {system_prompt, prompt, gt, task}",
    ),
    "eckgbench": (
        frozenset({"id", "question", "gt", "dim"}),
        "ECKGBench JSONL: one JSON object per line with {id, question, gt, dim}",
    ),
    "eckgbench_original": (
        frozenset({"idx", "question", "ground_truth", "relation"}),
        "ECKGBench question_original: one Python dict literal per line with {idx, question, ground_truth, relation}",
    ),
}

_OPTIONS_RE = re.compile(r"\*选项\*：(\[.*\])\s*$", re.S)


def _is_data_root(path: Path) -> bool:
    return (path / "conceptmath").is_dir() or (path / "eckgbench").is_dir() or (path / "chineseecomqa").is_dir()


def find_data_root(explicit: str | Path | None = None) -> Path:
    """The benchmark data folder: ``explicit``, else ``$LONGLORE_BENCH_DATA``, else the copy that
    ships with longlore. A folder given explicitly that holds no benchmark is an error (it never
    falls back silently)."""
    return _data_root(explicit)[0]


def data_source(explicit: str | Path | None = None) -> str:
    """Where the data is read from, in words (``bench list`` prints it; results record it)."""
    return _data_root(explicit)[1]


def _data_root(explicit: str | Path | None) -> tuple[Path, str]:
    for path, how in ((explicit, "--data"), (os.environ.get(ENV_VAR) or None, f"${ENV_VAR}")):
        if path is None:
            continue
        path = Path(path)
        if not _is_data_root(path):
            raise LongloreError(
                f"benchmark data not found in {path} (from {how}): expected a folder holding "
                "conceptmath/, chineseecomqa/ and/or eckgbench/; omit it to use the data shipped with longlore"
            )
        return path, f"{path} (from {how})"
    if not _is_data_root(SHIPPED_ROOT):
        raise LongloreError(
            f"the benchmark data shipped with longlore is missing ({SHIPPED_ROOT}); reinstall longlore, "
            f"or pass --data DIR / set {ENV_VAR}"
        )
    return SHIPPED_ROOT, f"shipped with longlore ({SHIPPED_ROOT}; origins and sha256 in SOURCES.md)"


def resolve_file(path: Path) -> Path:
    """``path`` if it exists, else its ``.gz`` sibling (the shipped copies are compressed)."""
    if path.exists() or path.suffix == ".gz":
        return path
    packed = path.with_name(path.name + ".gz")
    return packed if packed.exists() else path


def _iter_records(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_no, record)``; any line in the wrong format raises one clear error."""
    required, description = FORMATS[fmt]
    if not Path(path).exists():
        raise LongloreError(f"{path}: no such file; expected {description}")
    parse = ast.literal_eval if fmt == "eckgbench_original" else None
    for line_no, record in iter_jsonl_numbered(path, expected=description, parse=parse):
        missing = sorted(required - record.keys())
        if missing:
            raise LongloreError(f"{path}:{line_no}: missing field(s) {missing}; expected {description}")
        yield line_no, record


def _extras(record: dict[str, Any], fmt: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in FORMATS[fmt][0]}


def eckg_options(question: str, where: str = "question") -> tuple[str, list[str]]:
    """The options list literal inside an ECKGBench question, as text and as a list."""
    match = _OPTIONS_RE.search(question)
    if not match:
        raise LongloreError(f"{where}: no '*选项*：[...]' options list at the end of the question")
    try:
        options = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        raise LongloreError(f"{where}: the options '{match.group(1)[:60]}' are not a list literal") from None
    return match.group(1), [str(o) for o in options]


# ---------------------------------------------------------------- record -> Item, per benchmark


def conceptmath_item(record: dict[str, Any], split: str, where: Provenance) -> Item:
    answer = record["answer"]
    return Item(
        # idx repeats inside a split (element_en has a duplicate), so the id uses the line.
        id=f"{split}-{where.line}",
        benchmark="conceptmath",
        split=split,
        language="zh" if split.endswith("zh") else "en",
        concept=[str(record["cate0"]), str(record["cate1"]), str(record["cate2"])],
        question=str(record["question"]),
        # str(answer) is exactly what the official evaluator compares against.
        answers=[str(answer)],
        provenance=where,
        metadata={"grade": record["grade"], "answer_type": type(answer).__name__, **_extras(record, "conceptmath")},
    )


def ecomqa_item(record: dict[str, Any], where: Provenance) -> Item:
    return Item(
        id=f"{record['task']}-{where.line}",
        benchmark="chineseecomqa",
        split="all",
        language="zh",
        concept=[str(record["task"])],
        question=str(record["prompt"]),
        system_prompt=str(record["system_prompt"]),
        answers=[str(record["gt"])],
        provenance=where,
        metadata=_extras(record, "chineseecomqa"),
    )


def eckg_item(record: dict[str, Any], split: str, where: Provenance) -> Item:
    original = split == "original"
    fmt = "eckgbench_original" if original else "eckgbench"
    gold = str(record["ground_truth" if original else "gt"])
    _, options = eckg_options(record["question"], f"{where.file}:{where.line}")
    if gold not in options:
        raise LongloreError(f"{where.file}:{where.line}: gold answer {gold!r} is not one of the options {options}")
    concept = str(record["relation"]) if original else str(record["dim"])
    return Item(
        id=f"{split}-{record['idx' if original else 'id']}",
        benchmark="eckgbench",
        split=split,
        language="zh",
        concept=[concept],
        question=str(record["question"]),
        options=options,
        gold_index=options.index(gold),
        answers=[gold],
        provenance=where,
        metadata=_extras(record, fmt),
    )


def record_to_item(benchmark: str, split: str, record: dict[str, Any], where: Provenance) -> Item:
    """Turn one official record into an :class:`Item` (used for responses files too)."""
    if benchmark == "conceptmath":
        return conceptmath_item(record, split, where)
    if benchmark == "chineseecomqa":
        return ecomqa_item(record, where)
    if benchmark == "eckgbench":
        return eckg_item(record, split, where)
    raise LongloreError(f"unknown benchmark {benchmark!r}; choose conceptmath, chineseecomqa or eckgbench")


def record_format(benchmark: str, split: str) -> str:
    """The key of :data:`FORMATS` that a file of this benchmark/split is in."""
    return "eckgbench_original" if (benchmark, split) == ("eckgbench", "original") else benchmark


def benchmark_file(root: Path, benchmark: str, split: str) -> Path:
    """Path of the official file holding one split (plain, else its ``.gz``)."""
    if benchmark == "conceptmath":
        if split not in CONCEPTMATH_SPLITS:
            raise LongloreError(f"unknown ConceptMath split {split!r}; choose one of {', '.join(CONCEPTMATH_SPLITS)}")
        return resolve_file(root / "conceptmath" / f"{split}.jsonl")
    if benchmark == "chineseecomqa":
        return resolve_file(root / "chineseecomqa" / "ChineseEcomQA.jsonl")
    if benchmark == "eckgbench":
        if split not in ECKG_SPLITS:
            raise LongloreError(f"unknown ECKGBench split {split!r}; choose one of {', '.join(ECKG_SPLITS)}")
        return resolve_file(root / "eckgbench" / ECKG_SPLITS[split])
    raise LongloreError(f"unknown benchmark {benchmark!r}")


def load_file(
    path: str | Path, benchmark: str, split: str, keep: tuple[str, ...] = ()
) -> list[tuple[Item, dict[str, Any]]]:
    """Load any file in a benchmark's official format: ``(item, popped)`` per record, where
    ``popped`` holds the fields named in ``keep`` (e.g. ``response``) removed before parsing."""
    path = Path(path)
    name = path.name.removesuffix(".gz")  # provenance names the published file, compressed or not
    out = []
    for line_no, record in _iter_records(path, record_format(benchmark, split)):
        popped = {k: record.pop(k) for k in keep if k in record}
        src = record.get("idx", record.get("id"))
        out.append(
            (record_to_item(benchmark, split, record, Provenance(file=name, line=line_no, source_id=src)), popped)
        )
    return out


def load_benchmark(benchmark: str, split: str, root: str | Path | None = None) -> list[Item]:
    """Every item of one official split, in file order."""
    path = benchmark_file(find_data_root(root), benchmark, split)
    return [item for item, _ in load_file(path, benchmark, split)]


def to_official(item: Item) -> dict[str, Any]:
    """The official record an item was loaded from (the inverse of the loaders)."""
    meta = dict(item.metadata)
    if item.benchmark == "conceptmath":
        kind = meta.pop("answer_type")
        answer: Any = {"int": int, "float": float}.get(kind, str)(item.answers[0])
        return {
            "idx": item.provenance.source_id,
            "cate0": item.concept[0],
            "cate1": item.concept[1],
            "cate2": item.concept[2],
            "question": item.question,
            "answer": answer,
            **meta,
        }
    if item.benchmark == "chineseecomqa":
        return {
            "system_prompt": item.system_prompt,
            "prompt": item.question,
            "gt": item.answers[0],
            "task": item.concept[0],
            **meta,
        }
    if item.split == "original":
        return {
            "idx": item.provenance.source_id,
            "question": item.question,
            "ground_truth": item.answers[0],
            "relation": item.concept[0],
            **meta,
        }
    return {
        "id": item.provenance.source_id,
        "question": item.question,
        "gt": item.answers[0],
        "dim": item.concept[0],
        **meta,
    }


def load_eckg_resources(root: str | Path | None = None) -> dict[str, Any]:
    """ECKGBench's auxiliary files: the candidate pools and answers in ``choice_set.jsonl``
    (two Python list literals aligned with ``question_original``) and ``entity_text.csv``."""
    import csv
    import io

    folder = find_data_root(root) / "eckgbench"
    choice_path = resolve_file(folder / "choice_set.jsonl")
    lines = [ln for ln in read_text(choice_path).split("\n") if ln.strip()]
    if len(lines) != 2:
        raise LongloreError(f"{choice_path}: expected 2 lines (candidate pools, answers), found {len(lines)}")
    try:
        pools, answers = (ast.literal_eval(ln) for ln in lines)
    except (ValueError, SyntaxError):
        raise LongloreError(f"{choice_path}: each of the 2 lines must be a Python list literal") from None
    entity_path = resolve_file(folder / "entity_text.csv")
    entities = list(csv.DictReader(io.StringIO(read_text(entity_path), newline="")))
    return {"candidate_pools": pools, "pool_answers": answers, "entities": entities}


def eckg_file(name: str, root: str | Path | None = None) -> Path:
    """Path of any published ECKGBench file by its upstream name (e.g. ``LLM_filtering_prompt.csv``),
    plain or ``.gz``; read it with :func:`longlore.core.io.read_text`."""
    path = resolve_file(find_data_root(root) / "eckgbench" / name)
    if not path.exists():
        raise LongloreError(f"{path}: no such ECKGBench file in the data folder")
    return path
