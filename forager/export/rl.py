"""RL rows: one per episode, the exact token ids the server returned, as one prompt and one response.

`prompt_ids` is the first call's prompt. `response_ids` is everything after it: each call's sampled
completion (loss_mask 1, its rollout logprobs), then the environment tokens that the next call's prompt
adds after that call's prompt + completion (loss_mask 0, logprob 0.0). With a consistent history
prompt_ids + response_ids is exactly the last call's prompt + completion.

When a call's prompt did not extend the previous prompt + completion (the chat template re-tokenised
an earlier reply differently: `prefix_ok` false on that step), the row is still built by the same rule
from the per-call ids: the sampled completions stay exact, and the environment tokens are that
prompt's ids past the length of the previous prompt + completion, which may then be off by the
re-tokenised difference. Such rows say `prefix_consistent: false` and list the steps in `prefix_breaks`.

`rewards` is one value per response token: the episode reward on the last sampled token, 0 elsewhere.
`excluded` marks episodes cut off by a limit or broken by an error (common.EXCLUDED_EXIT_REASONS).
An episode without token ids (the oracle, or a server that did not return them) has no RL row.
"""

from __future__ import annotations

import pyarrow as pa

from forager.export.common import (
    EXCLUDED_EXIT_REASONS,
    IDS_SCHEMA,
    OUTCOME_SCHEMA,
    PROVENANCE_FIELD,
    ids,
    outcome,
    provenance,
)
from forager.llm.tokens import full_prompts
from forager.store.stream import EpisodeBundle

STEP_COLUMNS = ("index", "prompt_offset", "prompt_delta_ids", "completion_token_ids", "logprobs", "prefix_ok", "finish_reason")

SCHEMA = pa.schema([
    *IDS_SCHEMA, pa.field("prompt_ids", pa.list_(pa.int32())), pa.field("response_ids", pa.list_(pa.int32())),
    pa.field("loss_mask", pa.list_(pa.int8())), pa.field("logprobs", pa.list_(pa.float32())),
    pa.field("rewards", pa.list_(pa.float32())), *OUTCOME_SCHEMA, pa.field("excluded", pa.bool_()),
    pa.field("prefix_consistent", pa.bool_()), pa.field("prefix_breaks", pa.list_(pa.int32())),
    pa.field("finish_reason", pa.string()), pa.field("llm_seconds", pa.float64()), pa.field("env_seconds", pa.float64()),
    PROVENANCE_FIELD,
])


def has_tokens(bundle: EpisodeBundle) -> bool:
    return bool(bundle.steps) and all(
        (step.prompt_offset or step.prompt_delta_ids) and step.completion_token_ids for step in bundle.steps)


def sampled_logprobs(step) -> list[float]:
    """One logprob per completion token, whatever the server sent (a missing one reads 0.0)."""
    count = len(step.completion_token_ids)
    logprobs = list(step.logprobs[:count])
    return logprobs + [0.0] * (count - len(logprobs))


def rl_row(bundle: EpisodeBundle) -> dict | None:
    if not has_tokens(bundle):
        return None
    steps = bundle.steps
    response: list[int] = []
    mask: list[int] = []
    logprobs: list[float] = []
    prompts: list[list[int]] | None = None  # whole prompts, rebuilt only for an episode with a prefix break
    for position, (previous, step) in enumerate(zip([None, *steps], steps, strict=False)):
        if previous is not None:
            if step.prompt_offset:
                environment = step.prompt_delta_ids
            else:
                prompts = prompts or full_prompts(steps)
                environment = prompts[position][len(prompts[position - 1]) + len(previous.completion_token_ids):]
            response += environment
            mask += [0] * len(environment)
            logprobs += [0.0] * len(environment)
        response += step.completion_token_ids
        mask += [1] * len(step.completion_token_ids)
        logprobs += sampled_logprobs(step)
    episode = bundle.episode
    rewards = [0.0] * len(response)
    rewards[-1] = episode.reward or 0.0  # the response always ends with the last sampled completion
    return {
        **ids(bundle), "prompt_ids": steps[0].prompt_delta_ids, "response_ids": response, "loss_mask": mask,
        "logprobs": logprobs, "rewards": rewards, **outcome(bundle),
        "excluded": episode.exit_reason in EXCLUDED_EXIT_REASONS,
        "prefix_consistent": all(step.prefix_ok is not False for step in steps),
        "prefix_breaks": [step.index for step in steps if step.prefix_ok is False],
        "finish_reason": steps[-1].finish_reason, "llm_seconds": episode.llm_seconds, "env_seconds": episode.env_seconds,
        "provenance": provenance(bundle),
    }
