"""longlore.bench: an lm-eval-style harness for ConceptMath, ChineseEcomQA and ECKGBench.

Tasks are rows of data (:mod:`longlore.bench.tasks`); models come through
``longlore.core.backends``; graders reproduce the official scoring rules; the benchmarks'
published files ship inside the package (``bench/benchmark_data/``). Names are imported lazily,
so ``longlore --help`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchConfig": "config",
    "GROUPS": "tasks",
    "SCHEMA_VERSION": "schema",
    "TASKS": "tasks",
    "Item": "schema",
    "TaskSpec": "tasks",
    "data_source": "data",
    "evaluate": "runner",
    "find_data_root": "data",
    "load_benchmark": "data",
    "load_file": "data",
    "merge_runs": "merge",
    "render_report": "report",
    "resolve_tasks": "tasks",
    "score_responses": "runner",
    "to_official": "data",
    "write_run": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'longlore.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(f"longlore.bench.{_EXPORTS[name]}"), name)
