"""Trained RAM artifacts shipped with longlore (small adapters, each with a MODEL_CARD.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ARTIFACTS_DIR = Path(__file__).resolve().parent
# model spec -> folder under this package holding a RAM trained for that decoder
SHIPPED = {"smollm2-135m": "smollm2-135m-ram-lora"}
TRAINING_FILE = "training.json"  # which parts were trained, by which stage, at what CPU cost


def shipped_adapter(model_spec: str) -> Path | None:
    """The folder of the trained RAM shipped for ``model_spec``, or None when there is none."""
    name = SHIPPED.get(model_spec)
    if name is None or not (ARTIFACTS_DIR / name / "ram_config.json").exists():
        return None
    return ARTIFACTS_DIR / name


def training_info(folder: Path) -> dict[str, Any]:
    """``training.json`` of an adapter folder: ``{"trained": [...], "untrained": [...], "stage", "step",
    "cpu_s"}``; empty when the folder has none (then every part RAM trains was trained)."""
    path = Path(folder) / TRAINING_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
