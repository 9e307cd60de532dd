"""Step rows: one per model call (step-wise RL, world-model data), with the exact ids of that call.

Only episodes with token ids have step rows, as for `rl`. The reward is the stored step reward:
the episode reward on the last step, 0 before it. `arguments` is a JSON string (see common.json_text).
"""

from __future__ import annotations

import pyarrow as pa

from forager.export.common import IDS_SCHEMA, PROVENANCE_FIELD, ids, json_text, provenance
from forager.export.rl import has_tokens, sampled_logprobs
from forager.llm.tokens import full_prompts
from forager.store.stream import EpisodeBundle

STEP_COLUMNS = ("index", "prompt_offset", "prompt_delta_ids", "completion_token_ids", "logprobs", "finish_reason", "cached_tokens",
                "llm_seconds", "prefix_ok", "model_text", "tool", "arguments", "format_error", "observation",
                "output_bytes", "truncated", "exit_code", "timed_out", "env_seconds", "reward", "done")

SCHEMA = pa.schema([
    *IDS_SCHEMA, pa.field("step", pa.int32()), pa.field("prompt_ids", pa.list_(pa.int32())),
    pa.field("completion_ids", pa.list_(pa.int32())), pa.field("logprobs", pa.list_(pa.float32())),
    pa.field("finish_reason", pa.string()), pa.field("cached_tokens", pa.int32()), pa.field("llm_seconds", pa.float64()),
    pa.field("prefix_ok", pa.bool_()), pa.field("model_text", pa.string()), pa.field("tool", pa.string()),
    pa.field("arguments", pa.string()), pa.field("format_error", pa.string()), pa.field("observation", pa.string()),
    pa.field("output_bytes", pa.int64()), pa.field("truncated", pa.bool_()), pa.field("exit_code", pa.int32()),
    pa.field("timed_out", pa.bool_()), pa.field("env_seconds", pa.float64()), pa.field("reward", pa.float64()),
    pa.field("done", pa.bool_()), pa.field("is_last", pa.bool_()), pa.field("exit_reason", pa.string()),
    PROVENANCE_FIELD,
])


def step_rows(bundle: EpisodeBundle) -> list[dict]:
    if not has_tokens(bundle.steps):
        return []
    shared = {**ids(bundle), "provenance": provenance(bundle)}
    last = len(bundle.steps) - 1
    prompts = full_prompts(bundle.steps)
    return [
        {**shared, "step": step.index, "prompt_ids": prompts[position], "completion_ids": step.completion_token_ids,
         "logprobs": sampled_logprobs(step), "finish_reason": step.finish_reason, "cached_tokens": step.cached_tokens,
         "llm_seconds": step.llm_seconds, "prefix_ok": step.prefix_ok, "model_text": step.model_text, "tool": step.tool,
         "arguments": json_text(step.arguments), "format_error": step.format_error, "observation": step.observation,
         "output_bytes": step.output_bytes, "truncated": step.truncated, "exit_code": step.exit_code,
         "timed_out": step.timed_out, "env_seconds": step.env_seconds, "reward": step.reward, "done": step.done,
         "is_last": position == last, "exit_reason": bundle.episode.exit_reason}
        for position, step in enumerate(bundle.steps)
    ]
