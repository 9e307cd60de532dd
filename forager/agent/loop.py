"""The episode loop: ask the policy, act in the sandbox, record the step, repeat until an exit reason.

Everything with side effects sits behind three narrow interfaces: a Policy (decide / observe), a
sandbox (`execute(call) -> ToolResult`) and a `record(step)` callback that commits the step to the
store before the next model call. The history is append-only: each turn adds the model's message and
the environment's answer, so the stored trajectory is exactly the sequence of prompts the model saw
(and the server's prefix cache keeps hitting).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, Field

from forager.agent.formats import observation_text
from forager.agent.policy import Decision, Policy
from forager.llm.types import ContextExceeded, LLMError
from forager.llm.tokens import prefix_check
from forager.sandbox.errors import SandboxError
from forager.sandbox.models import ToolCall, ToolResult

# A reply needs room; below this many tokens left the context is as good as exceeded.
MIN_REPLY_TOKENS = 16


class ExitReason(StrEnum):
    submitted = "submitted"
    max_turns = "max_turns"
    context_exceeded = "context_exceeded"
    time_limit = "time_limit"
    format_errors = "format_errors"
    env_error = "env_error"
    llm_error = "llm_error"


class EpisodeLimits(BaseModel):
    max_turns: int = Field(default=128, ge=1, description="model calls per episode (CWM: 128)")
    max_context_tokens: int = Field(default=131_072, ge=256, description="prompt + reply tokens (CWM: 131k)")
    time_limit: float = Field(default=2400.0, gt=0, description="wall-clock seconds per episode (CWM: 2400)")
    max_format_errors: int = Field(default=3, ge=1, description="malformed replies in a row that end the episode")


class StepRecord(BaseModel):
    """One turn as it happened (the store's Step row without ids)."""

    index: int
    decision: Decision
    observation_messages: list[dict]
    observation: str
    result: ToolResult | None = None
    prefix_ok: bool | None = None
    prefix_divergence: int | None = None
    prompt_offset: int = 0  # leading prompt tokens that are the previous call's prompt + completion
    seconds: float = 0.0  # the turn's wall time, from asking the policy to handing the step to `record`
    decide_seconds: float = 0.0  # of which the policy's answer (prompt, model call with its retries, parsing)


class EpisodeOutcome(BaseModel):
    exit_reason: ExitReason
    patch: str | None = None
    patch_from_file: bool = False  # the agent handed the patch over as a file; else forager diffed the repository
    error: str | None = None
    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    llm_seconds: float = 0.0
    env_seconds: float = 0.0


class Sandbox(Protocol):
    def execute(self, call: ToolCall) -> ToolResult: ...


def run_episode(
    policy: Policy,
    sandbox: Sandbox,
    messages: list[dict],
    limits: EpisodeLimits,
    record: Callable[[StepRecord], None],
    *,
    should_stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
) -> EpisodeOutcome:
    history = list(messages)
    outcome = EpisodeOutcome(exit_reason=ExitReason.max_turns)
    started = clock()
    format_errors = 0
    previous: tuple[list[int], list[int]] | None = None
    context_used = 0

    def end(reason: ExitReason, error: str | None = None) -> EpisodeOutcome:
        outcome.exit_reason, outcome.error = reason, error
        return outcome

    for turn in range(limits.max_turns):
        turn_started = time.perf_counter()
        if should_stop():
            raise InterruptedError("collector stopping")
        if clock() - started >= limits.time_limit:
            return end(ExitReason.time_limit, f"episode ran past {limits.time_limit:.0f} s")
        tokens_left = limits.max_context_tokens - context_used
        if tokens_left < MIN_REPLY_TOKENS:
            return end(ExitReason.context_exceeded, f"{context_used} of {limits.max_context_tokens} tokens used")
        decide_started = time.perf_counter()
        try:
            decision = policy.decide(history, tokens_left)
        except ContextExceeded as exc:
            return end(ExitReason.context_exceeded, str(exc))
        except LLMError as exc:
            return end(ExitReason.llm_error, str(exc))

        step = StepRecord(index=turn, decision=decision, observation_messages=[], observation="",
                          decide_seconds=time.perf_counter() - decide_started)
        completion = decision.completion
        if completion is not None:
            outcome.llm_seconds += completion.seconds
            outcome.completion_tokens += completion.completion_tokens
            outcome.cached_tokens += completion.cached_tokens or 0
            outcome.prompt_tokens = completion.prompt_tokens
            context_used = completion.prompt_tokens + completion.completion_tokens
            if previous is not None and completion.prompt_token_ids:
                step.prefix_ok, step.prefix_divergence = prefix_check(*previous, completion.prompt_token_ids)
                step.prompt_offset = len(previous[0]) + len(previous[1]) if step.prefix_ok else 0
            previous = (completion.prompt_token_ids, completion.completion_token_ids)
        outcome.turns = turn + 1
        turns_left = limits.max_turns - turn - 1
        tokens_after = limits.max_context_tokens - context_used if completion is not None else None

        call = decision.call
        if call is None:
            format_errors += 1
            step.observation = decision.format_error or "no tool call"
            step.observation_messages = policy.format.error_messages(step.observation, decision.tool_calls)
        else:
            format_errors = 0
            try:
                result = sandbox.execute(call)
            except SandboxError as exc:  # the environment itself is gone
                step.observation = f"environment error: {exc}"
                step.seconds = time.perf_counter() - turn_started
                record(step)
                return end(ExitReason.env_error, str(exc))
            policy.observe(call, result)
            outcome.env_seconds += result.seconds
            step.result = result
            step.observation = observation_text(result.output, turns_left, tokens_after)
            step.observation_messages = [
                policy.format.observation_message(call, step.observation, decision.tool_calls)]
        history += [decision.assistant_message, *step.observation_messages]
        step.seconds = time.perf_counter() - turn_started
        record(step)
        if call is not None and call.name == "submit" and step.result is not None and not step.result.error:
            outcome.patch, outcome.patch_from_file = step.result.patch, step.result.patch_from_file
            return end(ExitReason.submitted)
        if format_errors >= limits.max_format_errors:
            return end(ExitReason.format_errors, f"{format_errors} malformed replies in a row")
    return end(ExitReason.max_turns)
