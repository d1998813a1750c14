"""Run configuration for the evaluation harness."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from longlore.core.errors import LongloreError


@dataclass
class BenchConfig:
    """Everything that decides a run's numbers; written into the results JSON.

    A run is reproducible from this record plus the data folder: the item subset is a seeded
    sample (or the first ``limit`` items), greedy decoding does not depend on ``batch_size``, and
    sampled requests (knowledge boundary) carry ``seed``.
    """

    tasks: list[str] = field(metadata={"help": "task or group names (see `longlore bench list`)"})
    model: str = field(default="", metadata={"help": "model spec or openai:MODEL@URL endpoint"})
    shots: int | None = field(
        default=None,
        metadata={"help": "few-shot examples (None: the task default; ConceptMath up to 8, ECKGBench 0 or 2)"},
    )
    limit: int | None = field(default=None, metadata={"help": "items per task (None: all)"})
    subset: Literal["seeded", "first"] = field(
        default="seeded",
        metadata={"help": "how --limit picks items: a seeded sample kept in file order, or the first N"},
    )
    seed: int = field(default=0, metadata={"help": "subset sampling, bootstrap and sampling seed"})
    judge: str | None = field(
        default=None, metadata={"help": "ChineseEcomQA judge (model spec or endpoint); None: normalised-match fallback"}
    )
    scoring: Literal["official", "strict"] = field(
        default="official", metadata={"help": "official rules verdict for verdict, or the documented stricter variant"}
    )
    judge_parser: Literal["robust", "official"] = field(
        default="robust",
        metadata={"help": "robust: standalone letter or Chinese label; official: first A|B|C anywhere"},
    )
    batch_size: int = field(default=8, metadata={"help": "local model batch size"})
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "cap on every generation task's new-token budget (None: task defaults)"}
    )
    data: str | None = field(default=None, metadata={"help": "benchmark data folder"})

    def __post_init__(self) -> None:
        if not self.tasks:
            raise LongloreError("`tasks` is empty; name at least one task (see `longlore bench list`)")
        if self.limit is not None and self.limit < 1:
            raise LongloreError(f"`limit` must be >= 1 (got {self.limit}); omit it to run every item")
        if self.shots is not None and self.shots < 0:
            raise LongloreError(f"`shots` must be >= 0 (got {self.shots})")
        if self.subset not in ("seeded", "first"):
            raise LongloreError(f"`subset` must be seeded or first (got {self.subset!r})")
        if self.scoring not in ("official", "strict"):
            raise LongloreError(f"`scoring` must be official or strict (got {self.scoring!r})")
        if self.batch_size < 1:
            raise LongloreError(f"`batch_size` must be >= 1 (got {self.batch_size})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
