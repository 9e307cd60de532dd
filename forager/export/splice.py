"""Token-id and logprob lists joined as the JSON text the store holds, never decoded to numbers (pure).

An RL row of a 50-turn episode carries some 35k token ids, each as a response id, a mask value, a
logprob and a reward: decoding the stored lists into Python numbers and encoding them back was almost
all of an `rl` export's time. The text between a stored list's brackets is already the JSON of its
numbers, so a row's lists are those texts joined with commas and put into the output line as
`orjson.Fragment`s. The checks here are what make that the same value as decoding: a flat list, no
strings, and no `NaN` or `Infinity` (Python's json writes them for non-finite floats and strict readers
refuse them; the decoding path writes null). Anything else returns None and the caller decodes.
"""

from __future__ import annotations

from typing import NamedTuple

from forager.jsontext import RawJson


def list_items(text: str) -> str | None:
    """The text between the brackets of a stored flat list of numbers ('1,2,3'; '' when empty), or
    None where the list must be decoded instead."""
    if text[:1] != "[" or text[-1:] != "]":
        return None
    items = text[1:-1]
    # why single characters: `in` finds one character with memchr, many times faster than a word;
    # N and I are the only capitals NaN and Infinity need, no number has them
    if "[" in items or "]" in items or '"' in items or "N" in items or "I" in items:
        return None
    return items.strip()


def count_items(items: str) -> int:
    """How many numbers `list_items` text holds (a number holds no comma)."""
    return items.count(",") + 1 if items else 0


class CallItems(NamedTuple):
    """One model call's token columns as list items: the prompt's new ids, the completion, its logprobs."""

    delta: str
    completion: str
    sampled: str
    completion_count: int


def call_items(step) -> CallItems | None:
    """A step's three token columns as list items, or None where they must be decoded: a column not read
    as text, a list that cannot be joined, no completion, or a logprob count unlike the completion's."""
    columns = (step.prompt_delta_ids, step.completion_token_ids, step.logprobs)
    delta, completion, sampled = (list_items(column.text) if isinstance(column, RawJson) else None for column in columns)
    if delta is None or not completion or sampled is None:
        return None
    completion_count = count_items(completion)
    if count_items(sampled) != completion_count:
        return None
    return CallItems(delta, completion, sampled, completion_count)


__all__ = ["CallItems", "call_items", "count_items", "list_items"]
