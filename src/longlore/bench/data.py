"""Loaders: each official benchmark file -> a list of :class:`~longlore.bench.schema.Item`.

The data is read from a path (never copied into the project). The root folder holds
``conceptmath/``, ``chineseecomqa/`` and ``eckgbench/`` as their authors published them; it is
found from an explicit argument, else ``$LONGLORE_BENCH_DATA``, else ``../shared/data/benchmarks``
next to the working directory.

Official formats (METHODS.md §6-8):
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
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from longlore.bench.schema import Item, Provenance
from longlore.core.errors import LongloreError

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


def find_data_root(explicit: str | Path | None = None) -> Path:
    """The benchmark data folder: ``explicit``, else ``$LONGLORE_BENCH_DATA``, else
    ``../shared/data/benchmarks`` beside the working directory."""
    candidates = [Path(explicit)] if explicit else []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates.append(Path.cwd().parent / "shared" / "data" / "benchmarks")
    for path in candidates:
        if (path / "conceptmath").is_dir() or (path / "eckgbench").is_dir():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise LongloreError(
        f"benchmark data not found (tried {tried}); pass --data DIR or set "
        f"{ENV_VAR} to the folder holding conceptmath/, chineseecomqa/, eckgbench/"
    )


def _iter_records(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_no, record)``; any line in the wrong format raises one clear error."""
    if not path.is_file():
        raise LongloreError(f"{path}: no such file; expected {FORMATS[fmt][1]}")
    required, description = FORMATS[fmt]
    python_literal = fmt == "eckgbench_original"
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = ast.literal_eval(line) if python_literal else json.loads(line)
            except (ValueError, SyntaxError):
                raise LongloreError(f"{path}:{line_no}: cannot parse the line; expected {description}") from None
            if not isinstance(record, dict):
                raise LongloreError(f"{path}:{line_no}: found a {type(record).__name__}, expected {description}")
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
    """Path of the official file holding one split."""
    if benchmark == "conceptmath":
        if split not in CONCEPTMATH_SPLITS:
            raise LongloreError(f"unknown ConceptMath split {split!r}; choose one of {', '.join(CONCEPTMATH_SPLITS)}")
        return root / "conceptmath" / f"{split}.jsonl"
    if benchmark == "chineseecomqa":
        return root / "chineseecomqa" / "ChineseEcomQA.jsonl"
    if benchmark == "eckgbench":
        if split not in ECKG_SPLITS:
            raise LongloreError(f"unknown ECKGBench split {split!r}; choose one of {', '.join(ECKG_SPLITS)}")
        return root / "eckgbench" / ECKG_SPLITS[split]
    raise LongloreError(f"unknown benchmark {benchmark!r}")


def load_file(
    path: str | Path, benchmark: str, split: str, keep: tuple[str, ...] = ()
) -> list[tuple[Item, dict[str, Any]]]:
    """Load any file in a benchmark's official format: ``(item, popped)`` per record, where
    ``popped`` holds the fields named in ``keep`` (e.g. ``response``) removed before parsing."""
    path = Path(path)
    out = []
    for line_no, record in _iter_records(path, record_format(benchmark, split)):
        popped = {k: record.pop(k) for k in keep if k in record}
        src = record.get("idx", record.get("id"))
        out.append(
            (record_to_item(benchmark, split, record, Provenance(file=path.name, line=line_no, source_id=src)), popped)
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

    folder = find_data_root(root) / "eckgbench"
    lines = [ln for ln in (folder / "choice_set.jsonl").read_text(encoding="utf-8").split("\n") if ln.strip()]
    if len(lines) != 2:
        raise LongloreError(
            f"{folder / 'choice_set.jsonl'}: expected 2 lines (candidate pools, answers), found {len(lines)}"
        )
    pools, answers = (ast.literal_eval(ln) for ln in lines)
    with (folder / "entity_text.csv").open(encoding="utf-8", newline="") as handle:
        entities = list(csv.DictReader(handle))
    return {"candidate_pools": pools, "pool_answers": answers, "entities": entities}
