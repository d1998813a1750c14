"""One versioned item schema for every benchmark the harness runs.

Each official record becomes one :class:`Item`; :func:`longlore.bench.data.to_official` turns it
back into the official record, field for field, which is how the tests prove the loaders lose
nothing. Fields that have no place in the shared schema go to ``metadata`` untouched.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = "1.0"


class Provenance(BaseModel):
    """Where an item came from: the official file, its 1-based line and the record's own id."""

    file: str
    line: int
    source_id: str | int | None = None


class Item(BaseModel):
    """A benchmark item in the harness's common form.

    ``concept`` is a path of any depth (ConceptMath has three levels, ChineseEcomQA one
    sub-concept, ECKGBench one dimension). ``options``/``gold_index`` are set only for
    multiple-choice items; ``answers`` always holds the gold answer string(s) exactly as the
    official scorer reads them.
    """

    schema_version: str = SCHEMA_VERSION
    id: str
    benchmark: Literal["conceptmath", "chineseecomqa", "eckgbench"]
    split: str
    language: Literal["en", "zh"]
    concept: list[str] = Field(min_length=1)
    question: str
    system_prompt: str | None = Field(default=None, description="instructions/few-shot examples shipped with the item")
    options: list[str] | None = None
    gold_index: int | None = None
    answers: list[str] = Field(min_length=1)
    provenance: Provenance
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def concept_path(self) -> str:
        """The concept path joined with '/', as the ConceptMath evaluator names concepts."""
        return "/".join(self.concept)
