"""Fixtures for the bench tests: the real benchmark data, as shipped with longlore."""

from __future__ import annotations

from pathlib import Path

import pytest

from longlore.bench.data import find_data_root
from longlore.core.backends import HFTextModel


@pytest.fixture(scope="session")
def bench_data() -> Path:
    """The benchmark data the loader uses by default: the copy shipped inside the package (or
    $LONGLORE_BENCH_DATA when set). Never skipped: the data is part of the project."""
    return find_data_root()


@pytest.fixture(scope="session")
def tiny() -> HFTextModel:
    """A tiny random Llama (loaded once per session; tests that change it restore it)."""
    return HFTextModel.from_spec("tiny-llama", batch_size=8)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each bench test on one torch thread (restored after): on a loaded 2-core machine the
    tiny models ran ~15x faster than with two spinning OpenMP threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
