"""What crosses the sandbox boundary: limits in, tool calls in, tool results out (pure data)."""

from __future__ import annotations

from pydantic import BaseModel, Field

class SandboxLimits(BaseModel):
    """Resource and output limits of one episode's container."""

    cpus: float = Field(default=2.0, gt=0, description="CPU cores the container may use")
    memory: str = Field(default="4g", description="memory limit (docker syntax: 512m, 4g); no swap beyond it")
    pids: int = Field(default=1024, ge=16, description="most processes at once (fork bombs stop here)")
    network: bool = Field(default=False, description="give the container a network (default: none)")
    command_timeout: int = Field(default=120, ge=1, description="seconds per bash command (CWM: 120)")
    deadline: int = Field(
        default=3600, ge=10,
        description="seconds the container lives at most; it stops itself even if the collector was killed",
    )
    shown_chars: int = Field(
        default=100_000, ge=200,
        description="characters of output the model sees (head + tail with a cut marker); ~32k tokens at ~3 chars/token",
    )
    stored_bytes: int = Field(default=1_000_000, ge=1000, description="bytes of raw output kept in the store")


class ToolCall(BaseModel):
    """One tool call as the policy made it, whatever the wire format (CWM text or OpenAI tool calls).

    Arguments by tool: see sandbox/tools.py (bash {command}; edit {path, search, replace};
    create {path, content}; submit {path}, empty or absent: the repository's own `git diff`).
    """

    name: str
    arguments: dict[str, str] = Field(default_factory=dict)


class ToolResult(BaseModel):
    """What a tool call did: the text the model is shown and the facts the store keeps."""

    output: str = Field(description="shown to the model: decoded safely, head and tail up to the cap")
    raw_output: str = Field(default="", description="decoded output kept for the store, up to stored_bytes")
    output_bytes: int = Field(default=0, description="bytes the command produced in all")
    truncated: bool = Field(default=False, description="the shown output was cut")
    exit_code: int | None = None
    timed_out: bool = False
    error: bool = Field(default=False, description="the call was refused or failed as a tool (bad path, no match...)")
    shell_restarted: bool = False
    seconds: float = 0.0
    patch: str | None = Field(default=None, description="submit only: the submitted patch")
    patch_from_file: bool = Field(default=False, description="submit only: the agent gave the patch as a file "
                                  "(else forager diffed the repository)")
