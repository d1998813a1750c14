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

    tasks: list[str] = field(default_factory=list, metadata={"help": "task or group names (see `longlore bench list`)"})
    model: str = field(default="", metadata={"help": "model spec or openai:MODEL@URL endpoint"})
    shots: int | None = field(
        default=None,
        metadata={
            "help": "few-shot examples (default: the task's; ConceptMath 0 or up to 5 official exemplars, "
            "ECKGBench 2 (official) or 0)"
        },
    )
    limit: int | None = field(default=None, metadata={"help": "items per task (default: all)"})
    subset: Literal["seeded", "first"] = field(
        default="seeded",
        metadata={"help": "how --limit picks items: a seeded sample kept in file order, or the first N"},
    )
    shard: str | None = field(
        default=None,
        metadata={"help": "i/n: run only shard i (1-based) of n of every task's items; combine with `bench merge`"},
    )
    seed: int = field(default=0, metadata={"help": "subset sampling, bootstrap and sampling seed"})
    judge: str | None = field(
        default=None,
        metadata={"help": "ChineseEcomQA judge: model spec, openai:MODEL@URL, or 'self' (the evaluated model)"},
    )
    judge_template: Literal["official", "paraphrase"] = field(
        default="official",
        metadata={"help": "official: Chinese-SimpleQA's grader text verbatim; paraphrase: this project's wording"},
    )
    judge_parser: Literal["official", "robust"] = field(
        default="official",
        metadata={
            "help": "official: first A|B|C anywhere (Chinese-SimpleQA); robust: standalone letter or Chinese label"
        },
    )
    judge_max_new_tokens: int = field(default=16, metadata={"help": "new-token budget of each judge reply"})
    fallback_grader: bool = field(
        default=False,
        metadata={"help": "grade ChineseEcomQA without a judge (normalised match; NOT the official protocol)"},
    )
    scoring: Literal["official", "strict"] = field(
        default="official", metadata={"help": "official rules verdict for verdict, or the documented stricter variant"}
    )
    repetition_penalty: float | None = field(
        default=None,
        metadata={"help": "generation repetition penalty (default: the task's; ECKGBench 1.1 as the official eval)"},
    )
    batch_size: int = field(default=8, metadata={"help": "local model batch size"})
    share_prefix: int = field(
        default=0,
        metadata={
            "help": "local models: compute a prompt prefix of at least N tokens shared by several requests once "
            "(judge template, few-shot system prompts) and run those requests one by one on it; 0: off"
        },
    )
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "cap on every generation task's new-token budget (default: task budgets)"}
    )
    data: str | None = field(default=None, metadata={"help": "benchmark data folder (default: the shipped data)"})

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise LongloreError(f"`limit` must be >= 1 (got {self.limit}); omit it to run every item")
        if self.shots is not None and self.shots < 0:
            raise LongloreError(f"`shots` must be >= 0 (got {self.shots})")
        if self.subset not in ("seeded", "first"):
            raise LongloreError(f"`subset` must be seeded or first (got {self.subset!r})")
        if self.scoring not in ("official", "strict"):
            raise LongloreError(f"`scoring` must be official or strict (got {self.scoring!r})")
        if self.share_prefix < 0:
            raise LongloreError(f"`share_prefix` must be >= 0 tokens (got {self.share_prefix})")
        if self.batch_size < 1:
            raise LongloreError(f"`batch_size` must be >= 1 (got {self.batch_size})")
        if self.judge_template not in ("official", "paraphrase"):
            raise LongloreError(f"`judge_template` must be official or paraphrase (got {self.judge_template!r})")
        if self.judge_parser not in ("official", "robust"):
            raise LongloreError(f"`judge_parser` must be official or robust (got {self.judge_parser!r})")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise LongloreError(f"`repetition_penalty` must be > 0 (got {self.repetition_penalty})")
        if self.judge and self.fallback_grader:
            raise LongloreError("pass either `judge` or `fallback_grader`, not both")
        if self.shard is not None:
            parse_shard(self.shard)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with 1 <= i <= n; anything else is a one-line error."""
    index, sep, total = text.partition("/")
    try:
        i, n = int(index), int(total)
    except ValueError:
        i = n = 0
    if not sep or n < 1 or not 1 <= i <= n:
        raise LongloreError(f"shard {text!r}: expected i/n with 1 <= i <= n (e.g. 1/4)")
    return i, n
