"""OpenAI's ``tool_calls`` on an assistant message, as the API and the export format take
them (unknown fields kept, so a newer OpenAI field round-trips)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ToolFunction(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    name: str = Field(min_length=1, max_length=256)
    arguments: str = ""


class ToolCall(BaseModel):
    """OpenAI's ``tool_calls`` item on an assistant message."""

    model_config = ConfigDict(extra="allow", strict=True)

    id: str = Field(min_length=1, max_length=256)
    type: str = "function"
    function: ToolFunction
