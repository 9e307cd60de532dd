"""A step of the agent loop as the row the store keeps: the model's call, the tool's result, the tokens."""

from __future__ import annotations

from forager.agent.loop import StepRecord
from forager.store import Step


def step_timings(step: StepRecord, *, store_wait: float, bookkeeping: float) -> dict[str, float]:
    """Where a turn's wall time went (pure), in seconds:

    model     the policy's answer less its prompt building: the model call with any retries (and parsing)
    tokenize  building the prompt's token ids (local, or the server's /tokenize)
    command   the tool call in the sandbox
    store     waiting for the previous step's write to be acknowledged (durable)
    other     the rest: observation building, bookkeeping, making the row
    """
    tokenize = step.decision.tokenize_seconds
    model = max(0.0, step.decide_seconds - tokenize)
    command = step.result.seconds if step.result is not None else 0.0
    other = max(0.0, step.seconds - step.decide_seconds - command) + bookkeeping
    parts = {"model": model, "tokenize": tokenize, "command": command, "store": store_wait, "other": other}
    parts["total"] = step.seconds + store_wait + bookkeeping
    return {name: round(value, 6) for name, value in parts.items()}


def step_row(episode_id: int, step: StepRecord) -> Step:
    decision, result, completion = step.decision, step.result, step.decision.completion
    row = Step(
        episode_id=episode_id, index=step.index, model_text=decision.text, assistant_message=decision.assistant_message,
        tool=decision.call.name if decision.call else None, arguments=decision.call.arguments if decision.call else {},
        format_error=decision.format_error, observation_messages=step.observation_messages, observation=step.observation,
        prefix_ok=step.prefix_ok, prefix_divergence=step.prefix_divergence,
    )
    if completion is not None:
        row.prompt_offset, row.prompt_delta_ids = step.prompt_offset, completion.prompt_token_ids[step.prompt_offset :]
        row.completion_token_ids = completion.completion_token_ids
        row.logprobs, row.finish_reason = completion.logprobs, completion.finish_reason
        row.prompt_tokens, row.completion_tokens = completion.prompt_tokens, completion.completion_tokens
        row.cached_tokens, row.llm_seconds = completion.cached_tokens, round(completion.seconds, 4)
    if result is not None:
        row.raw_output, row.output_bytes, row.truncated = result.raw_output, result.output_bytes, result.truncated
        row.exit_code, row.timed_out, row.tool_error = result.exit_code, result.timed_out, result.error
        row.env_seconds = round(result.seconds, 4)
    return row
