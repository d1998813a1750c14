"""Trained RAM artifacts shipped with longlore (small adapters, each with a MODEL_CARD.md)."""

from __future__ import annotations

from pathlib import Path

ARTIFACTS_DIR = Path(__file__).resolve().parent
# model spec -> folder under this package holding a RAM trained for that decoder
SHIPPED = {"smollm2-135m": "smollm2-135m-ram-lora"}


def shipped_adapter(model_spec: str) -> Path | None:
    """The folder of the trained RAM shipped for ``model_spec``, or None when there is none."""
    name = SHIPPED.get(model_spec)
    if name is None or not (ARTIFACTS_DIR / name / "ram_config.json").exists():
        return None
    return ARTIFACTS_DIR / name
