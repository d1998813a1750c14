"""Fixtures for the bench tests: the real benchmark data, found by path (never copied in)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bench_data() -> Path:
    """The shared benchmark folder: $LONGLORE_BENCH_DATA, else ../shared/data/benchmarks."""
    candidates = [Path(os.environ["LONGLORE_BENCH_DATA"])] if os.environ.get("LONGLORE_BENCH_DATA") else []
    candidates.append(REPO.parent / "shared" / "data" / "benchmarks")
    for path in candidates:
        if (path / "conceptmath").is_dir():
            return path
    pytest.skip(
        f"benchmark data not found at {', '.join(map(str, candidates))}; "
        "set LONGLORE_BENCH_DATA to the folder with conceptmath/, chineseecomqa/, eckgbench/"
    )


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each bench test on one torch thread (restored after): on a loaded 2-core machine the
    tiny models ran ~15x faster than with two spinning OpenMP threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
