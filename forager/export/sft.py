"""SFT rows: one per episode, the conversation as a list of chat messages with a per-message train flag.

Assistant turns keep the episode's own format: CWM runs as the raw text the model wrote (the tool
call inside it), OpenAI runs with their `tool_calls`. `openai_tool_calls` turns CWM text into
OpenAI `tool_calls` too, from the call the agent parsed and ran (the text before the call stays as
`content`). `tools` is a JSON string (see common.json_text).
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import BaseModel

from forager.export.common import IDS_SCHEMA, OUTCOME_SCHEMA, PROVENANCE_FIELD, ids, json_text, outcome, provenance
from forager.store.stream import EpisodeBundle

STEP_COLUMNS = ("index", "assistant_message", "observation_messages", "tool", "arguments", "format_error",
                "completion_tokens")

TOOL_CALL = pa.struct([("id", pa.string()), ("type", pa.string()),
                       ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))])
# why explicit: a Parquet struct keeps only these keys (a server's reasoning text is kept by name)
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("reasoning_content", pa.string()),
                     ("name", pa.string()), ("tool_calls", pa.list_(TOOL_CALL)), ("tool_call_id", pa.string()),
                     ("train", pa.bool_())])
SCHEMA = pa.schema([
    *IDS_SCHEMA, pa.field("messages", pa.list_(MESSAGE)), pa.field("tools", pa.string()), *OUTCOME_SCHEMA,
    pa.field("patch", pa.string()), pa.field("n_format_errors", pa.int32()), PROVENANCE_FIELD,
])


class SftOptions(BaseModel):
    openai_tool_calls: bool = False
    train_format_errors: bool = True  # False: replies that were format errors are kept but not trained on


def sft_row(bundle: EpisodeBundle, options: SftOptions = SftOptions()) -> dict:
    messages = [{**message, "train": False} for message in bundle.episode.messages]
    convert = options.openai_tool_calls and bundle.run.tool_format == "cwm"
    for step in bundle.steps:
        train = step.format_error is None or options.train_format_errors
        if convert and step.tool is not None:
            call_id = f"call_{step.index}"
            text = step.assistant_message.get("content") or ""
            messages.append({"role": "assistant", "content": text[: text.find("<tool:")].strip() or None,
                             "tool_calls": [_tool_call(call_id, step.tool, step.arguments)], "train": train})
            messages += [{**message, "tool_call_id": call_id, "train": False} for message in step.observation_messages]
            continue
        # why in place: the step's messages were decoded for this row alone, and copying them is a third
        # of an export's time; a key set on a dict goes last, as in a copy with the key added
        assistant = _openai_calls(step.assistant_message)
        assistant["train"] = train
        messages.append(assistant)
        for message in step.observation_messages:
            message["train"] = False
        messages += step.observation_messages
    return {
        **ids(bundle), "messages": messages, "tools": json_text(bundle.episode.tools), **outcome(bundle),
        "patch": bundle.episode.patch or "", "n_format_errors": sum(step.format_error is not None for step in bundle.steps),
        "provenance": provenance(bundle),
    }


def _tool_call(call_id: str, name: str, arguments: dict) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json_text(arguments)}}


def _openai_calls(message: dict) -> dict:
    """A stored OpenAI reply with its tool calls cut to their standard keys (servers add their own);
    `arguments` stays the model's own JSON text."""
    if not message.get("tool_calls"):
        return message
    calls = [{"id": call.get("id") or f"call_{i}", "type": "function",
              "function": {"name": call["function"]["name"], "arguments": call["function"].get("arguments") or "{}"}}
             for i, call in enumerate(message["tool_calls"])]
    return {**message, "tool_calls": calls}
