"""Shared test fixtures: offline mode, the repo's paths, and the real benchmark data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP; see longlore/__init__.py

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bench_data_dir() -> Path:
    """The real benchmark files: $LONGLORE_BENCH_DATA, else ../shared/data/benchmarks beside the repo."""
    candidates = [
        os.environ.get("LONGLORE_BENCH_DATA"),
        REPO_ROOT.parent / "shared" / "data" / "benchmarks",
        REPO_ROOT / "shared" / "data" / "benchmarks",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    pytest.skip("real benchmark data not found: set LONGLORE_BENCH_DATA or place shared/ beside the repo")


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct behind the local text-model interface (loaded once per session)."""
    from longlore.core.backends import HFTextModel

    return HFTextModel.from_spec("smollm2-135m", batch_size=8)


@pytest.fixture(scope="session")
def test_device() -> str:
    """Where the device/dtype tests (named ``*bf16*``) run: ``$LONGLORE_TEST_DEVICE`` (``cuda`` under
    scripts/gpu-check.sh), else the CPU."""
    return os.environ.get("LONGLORE_TEST_DEVICE", "cpu")
