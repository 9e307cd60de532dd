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

In a JSONL export the lists are joined from the token columns' stored text (`spliced_token_lists`,
see export.splice) and only decoded (`token_lists`) where that cannot give the same values.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
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
from forager.export.splice import call_items, count_items
from forager.llm.tokens import full_prompts
from forager.jsontext import RawJson, decoded
from forager.store.stream import EpisodeBundle

STEP_COLUMNS = ("index", "prompt_offset", "prompt_delta_ids", "completion_token_ids", "logprobs", "prefix_ok", "finish_reason")
RAW_COLUMNS = ("prompt_delta_ids", "completion_token_ids", "logprobs")  # may come as stored text (see export.splice)

SCHEMA = pa.schema([
    *IDS_SCHEMA, pa.field("prompt_ids", pa.list_(pa.int32())), pa.field("response_ids", pa.list_(pa.int32())),
    pa.field("loss_mask", pa.list_(pa.int8())), pa.field("logprobs", pa.list_(pa.float32())),
    pa.field("rewards", pa.list_(pa.float32())), pa.field("n_prompt_tokens", pa.int32()),
    pa.field("n_response_tokens", pa.int32()), *OUTCOME_SCHEMA, pa.field("excluded", pa.bool_()),
    pa.field("prefix_consistent", pa.bool_()), pa.field("prefix_breaks", pa.list_(pa.int32())),
    pa.field("finish_reason", pa.string()), pa.field("llm_seconds", pa.float64()), pa.field("env_seconds", pa.float64()),
    PROVENANCE_FIELD,
])


def has_tokens(steps: Sequence) -> bool:
    return bool(steps) and all((step.prompt_offset or step.prompt_delta_ids) and step.completion_token_ids for step in steps)


def sampled_logprobs(step) -> list[float]:
    """One logprob per completion token, whatever the server sent (a missing one reads 0.0)."""
    count = len(step.completion_token_ids)
    logprobs = list(step.logprobs[:count])
    return logprobs + [0.0] * (count - len(logprobs))


def decoded_tokens(step):
    """A step whose token columns came as stored text (a JSONL export's read), with them decoded."""
    if not any(isinstance(getattr(step, name), RawJson) for name in RAW_COLUMNS):
        return step
    return step._replace(**{name: decoded(getattr(step, name)) for name in RAW_COLUMNS})


def token_lists(steps: Sequence, reward: float) -> dict | None:
    """The row's token fields from decoded steps; None for an episode without token ids."""
    if not has_tokens(steps):
        return None
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
    rewards = [0.0] * len(response)
    rewards[-1] = reward  # the response always ends with the last sampled completion
    return {"prompt_ids": steps[0].prompt_delta_ids, "response_ids": response, "loss_mask": mask, "logprobs": logprobs,
            "rewards": rewards, "n_prompt_tokens": len(steps[0].prompt_delta_ids), "n_response_tokens": len(response)}


def spliced_token_lists(steps: Sequence, reward: float) -> dict | None:
    """The same fields as `token_lists`, joined from the columns' stored text without decoding a number
    (see export.splice); None where that cannot be done, and `token_lists` then decodes: a column not
    read as text, an episode without ids, a prefix break, a logprob count unlike its completion's."""
    if not steps:
        return None
    response, mask, logprobs = ["["], ["["], ["["]  # pieces of each list's text, every item followed by a comma
    count = 0
    for position, step in enumerate(steps):
        items = call_items(step)
        if items is None or (position > 0 and not step.prompt_offset):
            return None
        delta, completion, sampled, sampled_count = items
        if position == 0:
            if not delta:
                return None
            prompt, prompt_count = step.prompt_delta_ids.text, count_items(delta)
        elif delta:
            environment_count = count_items(delta)
            response += (delta, ",")
            mask.append("0," * environment_count)
            logprobs.append("0.0," * environment_count)
            count += environment_count
        response += (completion, ",")
        mask.append("1," * sampled_count)
        logprobs += (sampled, ",")
        count += sampled_count
    # each list ends with its last completion: a comma piece (or "1," repeated) whose comma becomes "]"
    response[-1], logprobs[-1], mask[-1] = "]", "]", mask[-1][:-1] + "]"
    return {"prompt_ids": orjson.Fragment(prompt), "response_ids": orjson.Fragment("".join(response)),
            "loss_mask": orjson.Fragment("".join(mask)), "logprobs": orjson.Fragment("".join(logprobs)),
            "rewards": orjson.Fragment(f"[{'0.0,' * (count - 1)}{orjson.dumps(reward).decode()}]"),
            "n_prompt_tokens": prompt_count, "n_response_tokens": count}


def rl_row(bundle: EpisodeBundle) -> dict | None:
    steps, episode = bundle.steps, bundle.episode
    reward = float(episode.reward or 0.0)
    tokens = spliced_token_lists(steps, reward)
    if tokens is None:
        steps = [decoded_tokens(step) for step in steps]
        tokens = token_lists(steps, reward)
        if tokens is None:
            return None
    return {
        **ids(bundle), **tokens, **outcome(bundle),
        "excluded": episode.exit_reason in EXCLUDED_EXIT_REASONS,
        "prefix_consistent": all(step.prefix_ok is not False for step in steps),
        "prefix_breaks": [step.index for step in steps if step.prefix_ok is False],
        "finish_reason": steps[-1].finish_reason, "llm_seconds": episode.llm_seconds, "env_seconds": episode.env_seconds,
        "provenance": provenance(bundle),
    }
