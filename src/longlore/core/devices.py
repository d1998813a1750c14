"""``--device`` and ``--dtype``: one resolution rule for every command that loads a model.

* device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps`` (``meta`` too, for shape-only checks);
* dtype: ``auto`` | ``float32`` | ``bfloat16`` | ``float16`` (``fp32`` / ``bf16`` / ``fp16`` accepted).

``auto`` means CUDA in bfloat16 where a CUDA GPU is present (float16 on GPUs without bf16), else
the CPU in float32. Under ``torchrun`` a plain ``cuda`` (or ``auto``) becomes ``cuda:$LOCAL_RANK``
so every rank gets its own GPU. :func:`place` moves a module (a backbone and everything a system
adds to it) to the resolved device and casts its floating-point tensors to the resolved dtype.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from longlore.core.errors import LongloreError

if TYPE_CHECKING:  # torch is imported where it is used, so `longlore --help` stays fast
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")
DEVICE_HELP = "Where the model runs: auto (CUDA if present, else CPU), cpu, cuda, cuda:N or mps."
DTYPE_HELP = "Weights' dtype: auto (bfloat16 on CUDA, float32 elsewhere), float32, bfloat16 or float16."

_DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` a ``--device`` value names; a one-line error when it is absent here."""
    import torch

    if isinstance(device, torch.device):
        return device
    text = (device or "auto").strip().lower()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        return torch.device("cpu")
    if text in ("cpu", "meta"):
        return torch.device(text)
    if text == "mps":
        if not _mps_available():
            raise LongloreError("--device mps: Apple's MPS backend is not available here; use --device auto or cpu")
        return torch.device("mps")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise LongloreError(f"--device {text}: no CUDA GPU is visible on this machine; use --device auto or cpu")
        index_text = text.partition(":")[2]
        if index_text and not index_text.isdigit():
            raise LongloreError(f"--device {text}: expected cuda:N with an integer N, e.g. cuda:0")
        count = torch.cuda.device_count()
        index = int(index_text) if index_text else local_rank % max(1, count)
        if index >= count:
            raise LongloreError(f"--device {text}: only {count} CUDA device(s) here (cuda:0 .. cuda:{count - 1})")
        return torch.device("cuda", index)
    raise LongloreError(f"--device '{device}': expected one of {', '.join(DEVICE_CHOICES)}")


def resolve_dtype(dtype: str | torch.dtype | None = "auto", device: str | torch.device | None = "auto") -> torch.dtype:
    """The ``torch.dtype`` a ``--dtype`` value names; ``auto`` depends on the (resolved) device."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    text = (dtype or "auto").strip().lower().removeprefix("torch.")
    if text == "auto":
        where = resolve_device(device)
        if where.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if text not in _DTYPE_NAMES:
        raise LongloreError(f"--dtype '{dtype}': expected one of {', '.join(DTYPE_CHOICES)}")
    return getattr(torch, _DTYPE_NAMES[text])


def resolve(device: str | torch.device | None = "auto", dtype: str | torch.dtype | None = "auto") -> tuple:
    """``(torch.device, torch.dtype)`` for a ``--device`` / ``--dtype`` pair."""
    where = resolve_device(device)
    return where, resolve_dtype(dtype, where)


def place(module: Any, device: str | torch.device | None = "auto", dtype: str | torch.dtype | None = None) -> Any:
    """Move ``module`` to ``device`` and cast its floating-point parameters and buffers to ``dtype``
    (``None`` keeps each tensor's dtype). Integer buffers (token ids, masks) keep their dtype."""
    where = resolve_device(device)
    if dtype is None:
        return module.to(device=where)
    return module.to(device=where, dtype=resolve_dtype(dtype, where))


def module_device_dtype(module: Any) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of a module's first floating parameter (CPU/float32 if none):
    what every module a system adds to a backbone should follow."""
    import torch

    for p in module.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``'bfloat16'`` (for JSON and logs)."""
    return str(dtype).removeprefix("torch.")
