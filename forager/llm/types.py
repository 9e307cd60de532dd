"""The model side's values: sampling settings, a call's completion, and the errors a call can end in (pure).

Apart from the HTTP client so that what only reads or carries them (the agent loop, the run config, the
export) does not load httpx.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class LLMError(RuntimeError):
    """The server rejected the request or stayed unreachable; the episode ends with exit reason llm_error."""


class ContextExceeded(LLMError):
    """The prompt no longer fits the model's context."""


class Sampling(BaseModel):
    """Sampling settings sent with every call (recorded with the run)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = Field(default=4096, ge=1, description="most tokens per reply")
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    extra_body: dict = Field(default_factory=dict, description="extra request fields, e.g. structured_outputs")


class Completion(BaseModel):
    """One call's reply and what it cost."""

    text: str
    tool_calls: list[dict] | None = None
    finish_reason: str | None = None
    prompt_token_ids: list[int] = Field(default_factory=list)
    completion_token_ids: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    seconds: float = 0.0
