"""Backbones for CoMeT experiments: any core model spec, ``scratch-LxD`` included.

``scratch-LxD`` (e.g. ``scratch-4x128``, seeded as ``scratch-4x128:seed=1``) is a random Llama with
L layers and hidden D on the tiny byte-level BPE tokenizer; the passkey benchmark trains CoMeT on
it from scratch. Its builder lives in the shared registry (:mod:`longlore.core.models`).
"""

from __future__ import annotations

from typing import Any

import torch

from longlore.core.models import load_causal_lm


def load_backbone(
    spec: str, seed: int = 0, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a core model spec (``scratch-LxD[:seed=N]`` included)."""
    return load_causal_lm(spec, seed=seed, device=device, dtype=dtype)
