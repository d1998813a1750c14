"""Small pydantic record schemas shared by CLI commands and systems."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PromptRecord(BaseModel):
    """One line of a prompts JSONL for ``longlore generate``.

    Generation fields given on a record override the command's options for that record; any other
    field is refused (``file:line: field 'x': Extra inputs are not permitted``), never ignored.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default="", description="Free identifier copied to the output.")
    prompt: str = Field(min_length=1, description="The user prompt.")
    system: str | None = Field(default=None, description="Optional system prompt.")
    max_new_tokens: int | None = Field(default=None, ge=1, description="Token limit for this record.")
    temperature: float | None = Field(default=None, ge=0.0, description="Sampling temperature (0: greedy).")
    stop: list[str] | None = Field(default=None, description="Stop strings for this record.")
    n: int | None = Field(default=None, ge=1, description="Completions for this record.")
    seed: int | None = Field(default=None, description="Sampling seed for this record.")
    chat: bool | None = Field(default=None, description="Wrap this prompt in the chat template.")

    def overrides(self) -> dict:
        """The generation fields this record sets (to override the command's options)."""
        fields = ("max_new_tokens", "temperature", "stop", "n", "seed", "chat")
        return {k: (tuple(v) if k == "stop" else v) for k in fields if (v := getattr(self, k)) is not None}
