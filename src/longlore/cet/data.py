"""Multiple-choice questions: one record type and the JSONL forms it is read from.

Two forms are accepted, one record per line:

* CommonsenseQA / ARC / OpenBookQA::

    {"id": "q1", "question": {"stem": "...", "choices": [{"label": "A", "text": "..."}, ...]},
     "answerKey": "A"}

  (ARC also uses digit labels "1".."4"; they work the same way.)
* flat::

    {"id": "q1", "question": "...", "options": ["...", "..."], "answer": 0}

  where ``answer`` is the option's index, its letter ("A" = first option) or its exact text.

Every bad record raises one :class:`LongloreError` line naming the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longlore.core.errors import LongloreError
from longlore.core.io import iter_jsonl_numbered, write_jsonl


@dataclass(frozen=True)
class MCQuestion:
    """A question, its options (at least two, distinct) and the index of the gold option."""

    id: str
    question: str
    options: tuple[str, ...]
    label: int

    @property
    def gold(self) -> str:
        return self.options[self.label]

    def to_flat(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "options": list(self.options), "answer": self.label}


def _check_options(options: Sequence[str], where: str, field: str) -> tuple[str, ...]:
    if len(options) < 2:
        raise LongloreError(
            f"{where}: field '{field}': {len(options)} option(s); a multiple-choice question needs at least two"
        )
    for i, text in enumerate(options):
        if not isinstance(text, str) or not text.strip():
            raise LongloreError(f"{where}: field '{field}[{i}]': empty or not a string; every option needs text")
    return tuple(o.strip() for o in options)


def _parse_csqa(record: dict[str, Any], where: str) -> MCQuestion:
    question = record["question"]
    if not isinstance(question, dict) or "stem" not in question or "choices" not in question:
        raise LongloreError(f"{where}: field 'question': expected {{'stem': ..., 'choices': [...]}}")
    choices = question["choices"]
    if not isinstance(choices, list) or not all(isinstance(c, dict) and "label" in c and "text" in c for c in choices):
        raise LongloreError(f"{where}: field 'question.choices': expected a list of {{'label', 'text'}} objects")
    labels = [str(c["label"]).strip() for c in choices]
    duplicates = sorted({lab for lab in labels if labels.count(lab) > 1})
    if duplicates:
        raise LongloreError(
            f"{where}: field 'question.choices': duplicate label(s) {', '.join(duplicates)}; "
            "each choice needs its own label"
        )
    options = _check_options([c["text"] for c in choices], where, "question.choices")
    if "answerKey" not in record:
        raise LongloreError(
            f"{where}: field 'answerKey' is missing; add the gold choice's label (one of {', '.join(labels)})"
        )
    key = str(record["answerKey"]).strip()
    if key not in labels:
        raise LongloreError(
            f"{where}: field 'answerKey': '{key}' is not a choice label; expected one of {', '.join(labels)}"
        )
    return MCQuestion(str(record.get("id", where)), str(question["stem"]).strip(), options, labels.index(key))


def _parse_flat(record: dict[str, Any], where: str) -> MCQuestion:
    raw = record.get("options")
    if not isinstance(raw, list):
        raise LongloreError(f"{where}: field 'options': expected a list of option texts")
    options = _check_options(raw, where, "options")
    if len(set(options)) != len(options):
        raise LongloreError(f"{where}: field 'options': duplicate option text; each option must differ")
    if "answer" not in record:
        raise LongloreError(f"{where}: field 'answer' is missing; give the gold option's index, letter or text")
    answer = record["answer"]
    if isinstance(answer, bool):
        raise LongloreError(f"{where}: field 'answer': a boolean is not an option index")
    if isinstance(answer, int):
        label = answer
    elif isinstance(answer, str) and answer.strip() in options:
        label = options.index(answer.strip())
    elif isinstance(answer, str) and len(answer.strip()) == 1 and answer.strip().isalpha():
        label = ord(answer.strip().upper()) - ord("A")
    else:
        raise LongloreError(f"{where}: field 'answer': {answer!r} is neither an index, a letter nor an option's text")
    if not 0 <= label < len(options):
        raise LongloreError(f"{where}: field 'answer': {answer!r} is out of range for {len(options)} options")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise LongloreError(f"{where}: field 'question': expected a non-empty string")
    return MCQuestion(str(record.get("id", where)), question.strip(), options, label)


def parse_question(record: dict[str, Any], where: str) -> MCQuestion:
    """One record in either form; ``where`` (``file:line``) prefixes every error."""
    if isinstance(record.get("question"), dict):
        return _parse_csqa(record, where)
    if "options" in record:
        return _parse_flat(record, where)
    if "question" not in record:
        raise LongloreError(
            f"{where}: field 'question' is missing; expected the CommonsenseQA form "
            "(question.stem, question.choices, answerKey) or the flat form (question, options, answer)"
        )
    raise LongloreError(f"{where}: field 'options' is missing; the flat form needs question, options and answer")


def load_questions(path: str | Path) -> list[MCQuestion]:
    """Read a JSONL file of multiple-choice questions in either form (see module docstring)."""
    questions = []
    for line_no, record in iter_jsonl_numbered(path):
        questions.append(parse_question(record, f"{path}:{line_no}"))
    if not questions:
        raise LongloreError(f"{path}: no questions found; the file is empty")
    return questions


def save_questions(path: str | Path, questions: Iterable[MCQuestion], overwrite: bool = False) -> None:
    """Write questions in the flat form (atomic)."""
    write_jsonl(path, [q.to_flat() for q in questions], overwrite=overwrite)
