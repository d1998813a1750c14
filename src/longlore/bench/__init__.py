"""longlore.bench: an lm-eval-style harness for ConceptMath, ChineseEcomQA and ECKGBench.

Tasks are rows of data (:mod:`longlore.bench.tasks`); models come through
``longlore.core.backends``; graders reproduce the official scoring rules.
"""

from longlore.bench.config import BenchConfig
from longlore.bench.data import find_data_root, load_benchmark, load_file, to_official
from longlore.bench.report import render_report, write_run
from longlore.bench.runner import evaluate, score_responses
from longlore.bench.schema import SCHEMA_VERSION, Item
from longlore.bench.tasks import GROUPS, TASKS, TaskSpec, resolve_tasks

__all__ = [
    "GROUPS",
    "SCHEMA_VERSION",
    "TASKS",
    "BenchConfig",
    "Item",
    "TaskSpec",
    "evaluate",
    "find_data_root",
    "load_benchmark",
    "load_file",
    "render_report",
    "resolve_tasks",
    "score_responses",
    "to_official",
    "write_run",
]
