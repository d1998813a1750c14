"""Resumable training checkpoints: one file, written atomically.

A checkpoint holds everything a resumed run needs to continue exactly as an unbroken one would:
the model's trained tensors (or the whole state dict), the optimizer and scheduler states, the
random-number states (python, numpy, torch and CUDA; one set per rank), the step, the data-order
state of the batch source, the loss history and the cost totals (wall and CPU seconds summed over
every invocation that trained it). The file is written to a temporary sibling, fsync'ed and
renamed over the old one, so an interrupted save never leaves a broken checkpoint.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longlore.core.errors import LongloreError

CHECKPOINT_FORMAT = "longlore-checkpoint"
CHECKPOINT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """The python, numpy, torch (and CUDA) random states of this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class CostMeter:
    """Wall and CPU seconds of training, carried across resumes.

    ``wall_seconds`` / ``cpu_seconds`` are the totals of earlier invocations (from a checkpoint);
    :meth:`totals` adds this invocation's time since the meter was made. CPU seconds count every
    thread of the process (``time.process_time``), which is what a CPU-hours budget means.
    """

    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    _wall0: float = field(default_factory=time.perf_counter, repr=False)
    _cpu0: float = field(default_factory=time.process_time, repr=False)

    def this_run(self) -> dict[str, float]:
        return {"wall_seconds": time.perf_counter() - self._wall0, "cpu_seconds": time.process_time() - self._cpu0}

    def totals(self, cpu_this_run: float | None = None) -> dict[str, float]:
        """Earlier totals + this invocation (``cpu_this_run`` overrides the local CPU time, e.g.
        with the sum over all ranks)."""
        now = self.this_run()
        cpu = now["cpu_seconds"] if cpu_this_run is None else cpu_this_run
        return {
            "wall_seconds": round(self.wall_seconds + now["wall_seconds"], 3),
            "cpu_seconds": round(self.cpu_seconds + cpu, 3),
        }

    @classmethod
    def resumed(cls, totals: dict[str, float] | None) -> CostMeter:
        totals = totals or {}
        return cls(float(totals.get("wall_seconds") or 0.0), float(totals.get("cpu_seconds") or 0.0))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: str | Path,
    *,
    model_state: dict[str, torch.Tensor],
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    rng: list[dict[str, Any]] | None = None,
    data_state: dict[str, Any] | None = None,
    cost: dict[str, float] | None = None,
    history: list[Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write one checkpoint file atomically; ``rng`` is one :func:`rng_state` per rank."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": int(step),
        "model": {k: v.detach().to("cpu").clone() for k, v in model_state.items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng if rng is not None else [rng_state()],
        "data": data_state or {},
        "cost": cost or {},
        "history": history or [],
        "extra": extra or {},
    }
    _atomic_torch_save(payload, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise LongloreError(f"{path}: no checkpoint file here")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file
        raise LongloreError(
            f"{path}: not a readable checkpoint ({type(err).__name__}); delete it to start over"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise LongloreError(f"{path}: not a longlore checkpoint (written by another tool or an older trainer)")
    if payload.get("version", 0) > CHECKPOINT_VERSION:
        raise LongloreError(f"{path}: checkpoint version {payload['version']} is newer than this longlore; upgrade")
    return payload


def restore_checkpoint(
    payload: dict[str, Any],
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> None:
    """Put a loaded checkpoint back: model tensors (a partial state is fine), optimizer, scheduler
    and this rank's random states (skipped, with the others, when the world size changed)."""
    if model is not None:
        own = model.state_dict()
        unknown = [k for k in payload["model"] if k not in own]
        if unknown:
            raise LongloreError(
                f"checkpoint holds tensors this model lacks ({unknown[:3]}); resume with the same model and config"
            )
        model.load_state_dict(payload["model"], strict=False)
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload.get("scheduler") is not None:
        scheduler.load_state_dict(payload["scheduler"])
    states = payload.get("rng") or []
    if len(states) == world_size:
        set_rng_state(states[rank])
