"""The human-review queue that every construction pipeline ends with.

A queue is a JSONL file of :class:`ReviewItem` (one built benchmark item each: the question, its
options and answer, the evidence and the automatic checks a reviewer should see, and the official
record it becomes). Reviewers' decisions live beside it in ``<queue>.reviews.json``; each decision
is applied under an exclusive file lock and the file is rewritten atomically, so two browsers (or
two processes) reviewing at once never lose a decision and a crash never leaves half a file.

A decision is ``accept``, ``reject`` or ``edit`` (accept with changes to the stem, options or
answer) plus a free-text reason. :func:`agreement` gives Cohen's kappa between two reviewers and
:func:`export_accepted` writes the accepted items, edits applied, in the benchmark's official
format, where ``longlore bench run --data`` reads them.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text, dumps, iter_jsonl_numbered, read_json, validate_record, write_jsonl

Decision = Literal["accept", "reject", "edit"]
DECISIONS: tuple[str, ...] = ("accept", "reject", "edit")
OPTIONS_MARKER = "\n*选项*："  # the official ECKGBench separator between the stem and the options list
# Where each benchmark's official file lives under a `bench run --data` folder.
OFFICIAL_FILES = {"eckgbench": "eckgbench/ECKGBench.jsonl", "chineseecomqa": "chineseecomqa/ChineseEcomQA.jsonl"}


class Evidence(BaseModel):
    """A passage (or KG fact) shown to the reviewer as support for the answer."""

    text: str
    source: str = ""
    score: float | None = None


class ReviewItem(BaseModel):
    """One built item awaiting review.

    ``stem`` is the question without its options (ECKGBench: the instruction and the cloze
    sentence; ChineseEcomQA: the prompt), ``concept`` the relation or sub-concept, ``checks`` the
    automatic verdicts (LLM judge, rules, retrieval) and ``record`` the official record as built;
    edits to stem/options/answer are written back into it on export.
    """

    id: str
    benchmark: Literal["eckgbench", "chineseecomqa"]
    language: Literal["en", "zh"]
    concept: str
    stem: str
    options: list[str] = Field(default_factory=list)
    answer: str
    evidence: list[Evidence] = Field(default_factory=list)
    checks: dict[str, Any] = Field(default_factory=dict)
    record: dict[str, Any]


class Edit(BaseModel):
    """The fields a reviewer may change; ``None`` keeps the built value."""

    stem: str | None = None
    options: list[str] | None = None
    answer: str | None = None


def official_record(item: ReviewItem, edit: Edit | None = None) -> dict[str, Any]:
    """The item's official record with ``edit`` applied (checked: the answer must stay an option)."""
    stem = edit.stem if edit and edit.stem is not None else item.stem
    options = edit.options if edit and edit.options is not None else item.options
    answer = edit.answer if edit and edit.answer is not None else item.answer
    if not stem.strip() or not answer.strip():
        raise LongloreError(f"item {item.id}: the stem and the answer must not be empty")
    record = dict(item.record)
    if item.benchmark == "eckgbench":
        options = [o.strip() for o in options]
        if len(options) < 2 or len(set(options)) != len(options) or not all(options):
            raise LongloreError(f"item {item.id}: options must be at least 2 distinct non-empty strings, got {options}")
        if answer not in options:
            raise LongloreError(f"item {item.id}: the answer {answer!r} is not one of the options {options}")
        record.update(question=stem + OPTIONS_MARKER + str(options), gt=answer)
    else:
        record.update(prompt=stem, gt=answer)
    return record


def read_queue(path: str | Path) -> list[ReviewItem]:
    """Every item of a queue file (validated; a bad line names file, line and field)."""
    items = [validate_record(rec, ReviewItem, f"{path}:{line}") for line, rec in iter_jsonl_numbered(path)]
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise LongloreError(f"{path}: item id {item.id!r} appears twice; ids must be unique")
        seen.add(item.id)
    return items


def write_queue(path: str | Path, items: list[ReviewItem], overwrite: bool = False) -> Path:
    """Write a queue file atomically."""
    return write_jsonl(path, items, overwrite=overwrite)


def reviews_path(queue: str | Path) -> Path:
    """The decisions file that belongs to a queue file."""
    queue = Path(queue)
    return queue.with_name(queue.name + ".reviews.json")


_THREAD_LOCK = threading.Lock()  # flock is per open file; this also orders threads of one server


@contextmanager
def _locked(queue: Path) -> Iterator[None]:
    lock_path = queue.with_name(queue.name + ".lock")
    with _THREAD_LOCK, lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_reviews(queue: str | Path) -> dict[str, Any]:
    """``{"decisions": {item_id: {reviewer: decision}}, "log": [...]}`` (empty when none yet)."""
    path = reviews_path(queue)
    if not path.exists():
        return {"decisions": {}, "log": []}
    data = read_json(path)
    if not isinstance(data, dict) or "decisions" not in data or "log" not in data:
        raise LongloreError(f"{path}: not a review file (expected keys 'decisions' and 'log'); move it aside")
    return data


class ReviewStore:
    """Decisions on one queue file, safe for concurrent reviewers (see the module docstring)."""

    def __init__(self, queue: str | Path) -> None:
        self.queue = Path(queue)
        self.items = read_queue(self.queue)
        self.by_id = {item.id: item for item in self.items}

    def decisions(self) -> dict[str, dict[str, Any]]:
        return load_reviews(self.queue)["decisions"]

    def decide(
        self, item_id: str, reviewer: str, decision: str, reason: str = "", edit: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record one reviewer's decision on one item (replacing that reviewer's earlier one; the
        log keeps every decision). Returns the stored decision."""
        reviewer = reviewer.strip()
        if not reviewer:
            raise LongloreError("reviewer name is empty; pass ?reviewer=NAME or type a name")
        if item_id not in self.by_id:
            raise LongloreError(f"unknown item id {item_id!r} in {self.queue}")
        if decision not in DECISIONS:
            raise LongloreError(f"decision must be one of {', '.join(DECISIONS)} (got {decision!r})")
        parsed = Edit.model_validate(edit or {}) if decision == "edit" else None
        if decision == "edit":
            if parsed is None or parsed == Edit():
                raise LongloreError(f"item {item_id}: an edit must change the stem, the options or the answer")
            official_record(self.by_id[item_id], parsed)  # raises if the edit breaks the item
        if decision == "reject" and not reason.strip():
            raise LongloreError(f"item {item_id}: a rejection needs a reason")
        with _locked(self.queue):
            data = load_reviews(self.queue)
            entry = {
                "decision": decision,
                "reason": reason,
                "edit": parsed.model_dump(exclude_none=True) if parsed else None,
                "time": time.time(),
                "seq": len(data["log"]),
            }
            data["decisions"].setdefault(item_id, {})[reviewer] = entry
            data["log"].append({"item_id": item_id, "reviewer": reviewer, **entry})
            atomic_write_text(reviews_path(self.queue), dumps(data, indent=1) + "\n", overwrite=True)
        return entry


def cohen_kappa(labels_a: list[str], labels_b: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items; ``None`` when chance agreement is 1."""
    if len(labels_a) != len(labels_b):
        raise ValueError("both raters must label the same items")
    n = len(labels_a)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(labels_a, labels_b)) / n
    categories = set(labels_a) | set(labels_b)
    expected = sum((labels_a.count(c) / n) * (labels_b.count(c) / n) for c in categories)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def agreement(decisions: dict[str, dict[str, Any]], rater_a: str | None = None, rater_b: str | None = None) -> dict:
    """Agreement between two reviewers on the items both decided: Cohen's kappa on the three
    decisions and on keep (accept/edit) vs reject, plus raw agreement. Without names, the two
    reviewers with the most decisions."""
    counts: dict[str, int] = {}
    for per_item in decisions.values():
        for name in per_item:
            counts[name] = counts.get(name, 0) + 1
    if rater_a is None or rater_b is None:
        ranked = sorted(counts, key=lambda k: (-counts[k], k))
        if len(ranked) < 2:
            return {"reviewers": ranked, "n_both": 0, "kappa": None, "kappa_keep": None, "raw_agreement": None}
        rater_a, rater_b = ranked[0], ranked[1]
    both = [d for d in decisions.values() if rater_a in d and rater_b in d]
    a = [d[rater_a]["decision"] for d in both]
    b = [d[rater_b]["decision"] for d in both]
    keep = {"accept": "keep", "edit": "keep", "reject": "reject"}
    return {
        "reviewers": [rater_a, rater_b],
        "n_both": len(both),
        "kappa": cohen_kappa(a, b),
        "kappa_keep": cohen_kappa([keep[x] for x in a], [keep[x] for x in b]),
        "raw_agreement": sum(x == y for x, y in zip(a, b)) / len(both) if both else None,
    }


def accepted(item_decisions: dict[str, Any], policy: str) -> tuple[bool, Edit | None]:
    """Whether one item is exported under ``policy`` and the edit to apply (the latest one).

    ``consensus``: decided by someone and rejected by no one; ``any``: someone accepted or
    edited it; ``reviewer:NAME``: that reviewer's decision alone.
    """
    if policy.startswith("reviewer:"):
        name = policy.split(":", 1)[1]
        item_decisions = {name: item_decisions[name]} if name in item_decisions else {}
    elif policy not in ("consensus", "any"):
        raise LongloreError(f"export policy must be consensus, any or reviewer:NAME (got {policy!r})")
    kinds = [d["decision"] for d in item_decisions.values()]
    keep = bool(kinds) and ("reject" not in kinds if policy == "consensus" else any(k != "reject" for k in kinds))
    edits = sorted((d for d in item_decisions.values() if d["decision"] == "edit"), key=lambda d: d["seq"])
    return keep, (Edit.model_validate(edits[-1]["edit"]) if keep and edits else None)


def export_accepted(queue: str | Path, out: str | Path, policy: str = "consensus", overwrite: bool = True) -> dict:
    """Write the accepted items of a queue, edits applied, as official records under ``out``
    (``out/eckgbench/ECKGBench.jsonl`` or ``out/chineseecomqa/ChineseEcomQA.jsonl``)."""
    store = ReviewStore(queue)
    decisions = store.decisions()
    by_benchmark: dict[str, list[dict[str, Any]]] = {item.benchmark: [] for item in store.items}
    for item in store.items:
        keep, edit = accepted(decisions.get(item.id, {}), policy)
        if keep:
            by_benchmark[item.benchmark].append(official_record(item, edit))
    written = {}
    for benchmark, records in by_benchmark.items():
        path = Path(out) / OFFICIAL_FILES[benchmark]
        write_jsonl(path, records, overwrite=overwrite)
        written[benchmark] = {"path": str(path), "count": len(records)}
    return {"policy": policy, "n_items": len(store.items), "n_decided": len(decisions), "written": written}
