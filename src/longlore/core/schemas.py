"""Small pydantic record schemas shared by CLI commands and systems."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PromptRecord(BaseModel):
    """One line of a prompts JSONL for ``longlore generate``."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(default="", description="Free identifier copied to the output.")
    prompt: str = Field(min_length=1, description="The user prompt.")
    system: str | None = Field(default=None, description="Optional system prompt.")
