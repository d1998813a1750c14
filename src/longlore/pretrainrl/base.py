"""Models for the synthetic experiment: a small Llama to pretrain from scratch, and checkpoint I/O.

``small-llama`` (seeded as ``small-llama:seed=N``) is core's tiny 1,024-token byte-level BPE
tokenizer with a somewhat larger decoder (d 128, 4 layers, ~0.9M parameters) so that it can
memorise the frequent facts of a synthetic world within minutes of CPU pretraining. Its builder
lives in the shared registry (:mod:`longlore.core.models`), like every other spec.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from longlore.core.errors import LongloreError
from longlore.core.models import load_causal_lm
from longlore.core.tiny import SMALL_LLAMA

__all__ = ["SMALL_LLAMA", "load_model", "save_model"]


def load_model(
    spec: str, seed: int = 0, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``small-llama[:seed=N]`` (fresh, seeded) or any core model spec."""
    return load_causal_lm(spec, seed=seed, device=device, dtype=dtype)


def save_model(model: Any, tokenizer: Any, folder: str | Path, overwrite: bool = False) -> Path:
    """Save a checkpoint folder atomically (temp folder + rename); reload with :func:`load_model`."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise LongloreError(f"{folder}: already exists; pass --overwrite (overwrite=True) or choose another folder")
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder
