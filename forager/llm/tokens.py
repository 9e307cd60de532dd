"""Token-id bookkeeping of a trajectory (pure): the prefix check, and prompts stored as deltas.

An agent's prompt grows every turn; storing each call's whole prompt would make a 128-turn episode
quadratic in size. A step stores only the tokens its prompt adds after `prompt_offset` tokens, which
are the previous call's prompt + completion exactly (the offset is 0, and the prompt stored whole,
when the prompt did not extend them).
"""

from __future__ import annotations

from typing import Protocol


class StepTokens(Protocol):
    prompt_offset: int
    prompt_delta_ids: list
    completion_token_ids: list


def prefix_check(previous_prompt: list[int], previous_completion: list[int], prompt: list[int]) -> tuple[bool, int | None]:
    """Does `prompt` start with the previous call's prompt + completion? (ok, first differing index)

    With an append-only history this holds unless the chat template re-tokenises the model's earlier
    reply differently from how it was sampled: the place where it breaks is what a trainer must know.
    """
    expected = previous_prompt + previous_completion
    for index, (want, got) in enumerate(zip(expected, prompt, strict=False)):
        if want != got:
            return False, index
    if len(prompt) < len(expected):
        return False, len(prompt)
    return True, None


def full_prompts(steps: list[StepTokens]) -> list[list[int]]:
    """Each step's whole prompt, rebuilt from the deltas (steps in order, from the first)."""
    prompts: list[list[int]] = []
    sampled: list[int] = []
    for step in steps:
        prompt = sampled[: step.prompt_offset] + list(step.prompt_delta_ids) if step.prompt_offset else list(step.prompt_delta_ids)
        prompts.append(prompt)
        sampled = prompt + list(step.completion_token_ids)
    return prompts
