"""What a collect run is: its typed configuration and its identity (the name a rerun finds it by).

The identity is the configuration without its runtime fields, the task ids and the hash of the prompts and
tool documentation (agent/prompts.py): the same command with the same prompts resumes its run; a changed
prompt starts a new one, since its episodes would not be samples of the same thing.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from forager.agent.loop import EpisodeLimits
from forager.agent.prompts import prompt_sha256
from forager.llm.types import Sampling
from forager.sandbox.models import SandboxLimits

if TYPE_CHECKING:
    from forager.store import Task

# settings that do not change what an episode is: a rerun with other values resumes the same run
RUNTIME_FIELDS = {"llm_url", "api_key", "concurrency", "warm", "llm_max_wait"}


class CollectConfig(BaseModel):
    """Everything that decides how episodes are collected; recorded with the run."""

    policy: Literal["llm", "oracle"] = "llm"
    llm_url: str | None = None
    model: str | None = None
    api_key: str | None = Field(default=None, exclude=True)  # never stored
    tool_format: Literal["cwm", "openai"] = "cwm"
    prompt_mode: Literal["auto", "tokens", "messages"] = Field(
        default="auto",
        description="tokens: prompts sent as exact token ids (vLLM); messages: the server renders the chat; "
        "auto: tokens when the server can (vLLM's /tokenize) and the format is cwm",
    )
    reasoning: bool = Field(default=False, description="start the system prompt with CWM's reasoning preamble")
    sampling: Sampling = Field(default_factory=Sampling)
    limits: EpisodeLimits = Field(default_factory=EpisodeLimits)
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    episodes_per_task: int = Field(default=1, ge=1)
    concurrency: int = Field(default=2, ge=1)
    warm: int | None = Field(default=None, ge=0, description="sandboxes started ahead (default: concurrency)")
    fail_reward: float = Field(default=-1.0, description="reward of an unresolved episode (CWM: -1; or 0)")
    llm_max_wait: float = Field(default=600.0, description="seconds to wait for a server that is down")

    def identity(self, tasks: list[Task]) -> dict:
        """What makes two runs the same run: configuration, tasks and the prompts' hash."""
        return {"config": self.model_dump(mode="json", exclude=RUNTIME_FIELDS),
                "tasks": sorted(t.instance_id for t in tasks), "prompt_sha256": prompt_sha256()}

    def run_name(self, tasks: list[Task]) -> str:
        blob = json.dumps(self.identity(tasks), sort_keys=True)
        digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
        who = self.policy if self.policy == "oracle" else (self.model or "model").rstrip("/").rsplit("/", 1)[-1]
        repos = sorted({t.repo_name or "repo" for t in tasks})
        return f"{'+'.join(repos)[:60]}-{who}-{digest}"
