"""The official prompt texts and settings shipped in ``bench/official_prompts/`` (see its SOURCES.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

OFFICIAL_DIR = Path(__file__).resolve().parent / "official_prompts"


@cache
def official(name: str) -> Any:
    """One official prompt file: ``.json`` parsed, ``.txt`` returned verbatim."""
    path = OFFICIAL_DIR / name
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else text
