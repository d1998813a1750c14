"""The task registry: every task is a row of data, interpreted by one runner.

A task names its benchmark and split, the request type sent to the model
(``generate`` | ``loglikelihood`` | ``boundary`` | ``confidence``), the grader that turns a
response into a verdict, generation settings and a version. Groups list their subtasks and how
they aggregate (ConceptMath and ChineseEcomQA report the unweighted mean of their subtasks, as the
papers do). Adding a task is adding a row to :data:`TASK_ROWS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from longlore.bench.data import CONCEPTMATH_SPLITS, ECOMQA_CONCEPTS
from longlore.core.errors import LongloreError

OutputType = Literal["generate", "loglikelihood", "boundary", "confidence"]
Grader = Literal["conceptmath", "eckg", "ecomqa"]


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task (see the module docstring for what each field drives)."""

    name: str = field(metadata={"help": "registry name, e.g. conceptmath/element_en"})
    benchmark: str = field(metadata={"help": "conceptmath | chineseecomqa | eckgbench"})
    split: str = field(metadata={"help": "official split (file) the items come from"})
    output_type: OutputType = field(metadata={"help": "kind of request sent to the model"})
    grader: Grader = field(metadata={"help": "scorer turning a response into a verdict"})
    description: str = ""
    version: str = "1.0"
    concepts: tuple[str, ...] = field(
        default=(), metadata={"help": "keep only items whose top-level concept is listed (empty: all)"}
    )
    prompt: Literal["plain", "cot"] = "plain"
    chat: bool = field(
        default=True, metadata={"help": "apply the model's chat template (False: the raw prompt, no system prompt)"}
    )
    max_new_tokens: int = 256
    temperature: float = 0.0
    repetition_penalty: float = field(default=1.0, metadata={"help": "generation repetition penalty (1.0: off)"})
    n_samples: int = field(default=1, metadata={"help": "completions per item (boundary: k)"})
    default_shots: int = 0
    max_shots: int = field(default=0, metadata={"help": "largest --shots the task supports"})
    primary_metric: str = "acc"

    def config(self) -> dict[str, Any]:
        """The task's settings as a plain dict (written under ``configs`` in results)."""
        return asdict(self)


_CM_LANG = {s: ("zh" if s.endswith("zh") else "en") for s in CONCEPTMATH_SPLITS}

TASK_ROWS: list[dict[str, Any]] = [
    *[
        dict(
            name=f"conceptmath/{s}",
            benchmark="conceptmath",
            split=s,
            output_type="generate",
            grader="conceptmath",
            max_shots=5,
            description=f"ConceptMath {s}: zero-shot (--shots 5: the official exemplars), official answer matching",
        )
        for s in CONCEPTMATH_SPLITS
    ],
    *[
        dict(
            name=f"conceptmath-cot/{s}",
            benchmark="conceptmath",
            split=s,
            output_type="generate",
            grader="conceptmath",
            prompt="cot",
            max_shots=0,
            description=f"ConceptMath {s}: zero-shot chain of thought",
        )
        for s in CONCEPTMATH_SPLITS
    ],
    *[
        dict(
            name=f"chineseecomqa/{c}",
            benchmark="chineseecomqa",
            split="all",
            output_type="generate",
            grader="ecomqa",
            concepts=(c,),
            max_new_tokens=64,
            description=f"ChineseEcomQA {c}: few-shot system prompt, judge-graded",
        )
        for c in ECOMQA_CONCEPTS
    ],
    dict(
        name="chineseecomqa/calibration",
        benchmark="chineseecomqa",
        split="all",
        output_type="confidence",
        grader="ecomqa",
        concepts=("CC", "BC"),
        max_new_tokens=96,
        primary_metric="ece",
        description="ChineseEcomQA CC+BC with a stated 0-100 confidence: ECE, reliability",
    ),
    *[
        dict(
            name=f"eckgbench/{s}",
            benchmark="eckgbench",
            split=s,
            output_type="generate",
            grader="eckg",
            max_new_tokens=8,
            repetition_penalty=1.1,
            default_shots=2,
            max_shots=2,
            description=f"ECKGBench {s}: official 2-shot prompt, substring-and-no-echo rule (--shots 0: the bare question)",
        )
        for s in ("main", "large")
    ],
    dict(
        name="eckgbench/main_mc",
        benchmark="eckgbench",
        split="main",
        output_type="loglikelihood",
        grader="eckg",
        max_new_tokens=0,
        default_shots=2,
        max_shots=2,
        description="ECKGBench main: log-likelihood multiple choice after the official prompt (acc, acc_norm)",
    ),
    dict(
        name="eckgbench/main_boundary",
        benchmark="eckgbench",
        split="main",
        output_type="boundary",
        grader="eckg",
        chat=False,
        max_new_tokens=8,
        temperature=0.2,
        n_samples=5,
        primary_metric="hit_rate",
        description="ECKGBench main: knowledge boundary, raw prompt, 5 samples at T=0.2",
    ),
]

TASKS: dict[str, TaskSpec] = {row["name"]: TaskSpec(**row) for row in TASK_ROWS}

GROUPS: dict[str, list[str]] = {
    "conceptmath": [f"conceptmath/{s}" for s in CONCEPTMATH_SPLITS],
    "conceptmath-cot": [f"conceptmath-cot/{s}" for s in CONCEPTMATH_SPLITS],
    "chineseecomqa": [f"chineseecomqa/{c}" for c in ECOMQA_CONCEPTS],
}


def resolve_tasks(names: list[str]) -> list[TaskSpec]:
    """Task specs for task or group names (groups expand in order; duplicates dropped)."""
    if not names:
        raise LongloreError("no task given; name at least one task or group (see `longlore bench list`)")
    out: list[TaskSpec] = []
    for name in names:
        expanded = GROUPS.get(name, [name])
        for task in expanded:
            if task not in TASKS:
                valid = ", ".join([*GROUPS, *TASKS])
                raise LongloreError(f"unknown task {task!r}; valid tasks and groups: {valid}")
            if TASKS[task] not in out:
                out.append(TASKS[task])
    return out


def groups_of(task_names: list[str]) -> dict[str, list[str]]:
    """The groups all of whose subtasks were run, with those subtasks."""
    ran = set(task_names)
    return {g: subs for g, subs in GROUPS.items() if set(subs) <= ran}
