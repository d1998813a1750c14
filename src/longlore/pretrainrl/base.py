"""Models for the synthetic experiment: a small Llama to pretrain from scratch, and saving.

``small-llama`` (seeded as ``small-llama:seed=N``) is core's tiny 1,024-token byte-level BPE
tokenizer with a somewhat larger decoder (d 128, 4 layers, ~0.9M parameters) so that it can
memorise the frequent facts of a synthetic world within minutes of CPU pretraining. Its builder
lives in the shared registry (:mod:`longlore.core.models`), like every other spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from longlore.core.models import load_causal_lm
from longlore.core.saving import write_folder_atomically
from longlore.core.tiny import SMALL_LLAMA

__all__ = ["SMALL_LLAMA", "load_model", "save_model", "save_pretrained"]


def load_model(
    spec: str, seed: int = 0, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``small-llama[:seed=N]`` (fresh, seeded) or any core model spec."""
    return load_causal_lm(spec, seed=seed, device=device, dtype=dtype)


def save_pretrained(model: Any, tokenizer: Any, folder: str | Path, overwrite: bool = False) -> Path:
    """Save the trained model and its tokenizer as one folder, atomically (PretrainRL adds no module:
    the continued-pretrained causal LM is the whole artifact, in transformers' own format).

    Reload with ``load_causal_lm(folder)`` (or a run folder whose ``final/`` this is), i.e.
    ``AutoModelForCausalLM.from_pretrained(folder)``."""

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return write_folder_atomically(folder, fill, overwrite=overwrite)


save_model = save_pretrained  # the earlier name, kept for scripts that import it
