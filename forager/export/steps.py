"""Step rows: one per model call (step-wise RL, world-model data), with the exact ids of that call.

Only episodes with token ids have step rows, as for `rl`. The reward is the stored step reward:
the episode reward on the last step, 0 before it. `arguments` is a JSON string (see common.json_text).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pyarrow as pa

from forager.export.common import IDS_SCHEMA, PROVENANCE_FIELD, ids, json_text, provenance
from forager.export.rl import RAW_COLUMNS, decoded_tokens, has_tokens, sampled_logprobs
from forager.export.splice import call_items, count_items
from forager.llm.tokens import full_prompts
from forager.store.stream import EpisodeBundle

__all__ = ["RAW_COLUMNS", "SCHEMA", "STEP_COLUMNS", "step_rows"]

STEP_COLUMNS = ("index", "prompt_offset", "prompt_delta_ids", "completion_token_ids", "logprobs", "finish_reason", "cached_tokens",
                "llm_seconds", "prefix_ok", "model_text", "tool", "arguments", "format_error", "observation",
                "output_bytes", "truncated", "exit_code", "timed_out", "env_seconds", "reward", "done")

SCHEMA = pa.schema([
    *IDS_SCHEMA, pa.field("step", pa.int32()), pa.field("prompt_ids", pa.list_(pa.int32())),
    pa.field("completion_ids", pa.list_(pa.int32())), pa.field("logprobs", pa.list_(pa.float32())),
    pa.field("n_prompt_tokens", pa.int32()), pa.field("n_completion_tokens", pa.int32()),
    pa.field("finish_reason", pa.string()), pa.field("cached_tokens", pa.int32()), pa.field("llm_seconds", pa.float64()),
    pa.field("prefix_ok", pa.bool_()), pa.field("model_text", pa.string()), pa.field("tool", pa.string()),
    pa.field("arguments", pa.string()), pa.field("format_error", pa.string()), pa.field("observation", pa.string()),
    pa.field("output_bytes", pa.int64()), pa.field("truncated", pa.bool_()), pa.field("exit_code", pa.int32()),
    pa.field("timed_out", pa.bool_()), pa.field("env_seconds", pa.float64()), pa.field("reward", pa.float64()),
    pa.field("done", pa.bool_()), pa.field("is_last", pa.bool_()), pa.field("exit_reason", pa.string()),
    PROVENANCE_FIELD,
])


def _joined(left: str, right: str) -> str:
    return f"{left},{right}" if left and right else left or right


def spliced_calls(steps: Sequence) -> list[tuple] | None:
    """Per call (prompt, completion, logprobs as JSON fragments, prompt count, completion count), joined
    from the columns' stored text (see export.splice); None where the ids must be decoded instead: a
    column not read as text, a call without ids, an offset that is not the previous context's length."""
    calls = []
    context, context_count = "", 0  # the previous call's prompt + completion, as list items
    for step in steps:
        items = call_items(step)
        if items is None:
            return None
        delta, completion, _sampled, completion_count = items
        if step.prompt_offset:
            if step.prompt_offset != context_count:
                return None
            prompt, prompt_count = _joined(context, delta), context_count + count_items(delta)
        elif delta:
            prompt, prompt_count = delta, count_items(delta)
        else:
            return None
        calls.append((orjson.Fragment(f"[{prompt}]"), orjson.Fragment(step.completion_token_ids.text),
                      orjson.Fragment(step.logprobs.text), prompt_count, completion_count))
        context, context_count = _joined(prompt, completion), prompt_count + completion_count
    return calls or None


def decoded_calls(steps: Sequence) -> list[tuple]:
    """The same tuples as `spliced_calls`, from decoded ids ([] for an episode without them)."""
    if not has_tokens(steps):
        return []
    return [(prompt, step.completion_token_ids, sampled_logprobs(step), len(prompt), len(step.completion_token_ids))
            for prompt, step in zip(full_prompts(steps), steps, strict=True)]


def step_rows(bundle: EpisodeBundle) -> list[dict]:
    steps = bundle.steps
    calls = spliced_calls(steps)
    if calls is None:
        steps = [decoded_tokens(step) for step in steps]
        calls = decoded_calls(steps)
    shared = {**ids(bundle), "provenance": provenance(bundle)}
    last = len(steps) - 1
    return [
        {**shared, "step": step.index, "prompt_ids": prompt, "completion_ids": completion, "logprobs": logprobs,
         "n_prompt_tokens": prompt_count, "n_completion_tokens": completion_count,
         "finish_reason": step.finish_reason, "cached_tokens": step.cached_tokens,
         "llm_seconds": step.llm_seconds, "prefix_ok": step.prefix_ok, "model_text": step.model_text, "tool": step.tool,
         "arguments": json_text(step.arguments), "format_error": step.format_error, "observation": step.observation,
         "output_bytes": step.output_bytes, "truncated": step.truncated, "exit_code": step.exit_code,
         "timed_out": step.timed_out, "env_seconds": step.env_seconds, "reward": step.reward, "done": step.done,
         "is_last": position == last, "exit_reason": bundle.episode.exit_reason}
        for position, (step, (prompt, completion, logprobs, prompt_count, completion_count)) in enumerate(zip(steps, calls, strict=False))
    ]
