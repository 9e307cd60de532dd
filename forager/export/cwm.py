"""CWM text rows: one per episode, the whole conversation in CWM's chat serialisation.

`<|begin_of_text|>`, then per message `<|start_header_id|>ROLE<|end_header_id|>\\n\\nCONTENT<|eot_id|>`
with roles system, user, assistant and `tool: NAME`. It is rendered the way forager's CWM chat template
renders a history for the model (forager.dev.tiny_model.CHAT_TEMPLATE): contents verbatim, OpenAI
tool calls as `<tool: NAME>\\nARGUMENTS\\n</tool>` after the content, so the text is what was fed.

`segments` cut `text` into one span per message (header to `<|eot_id|>`, character offsets) with a
loss flag: assistant turns and tool observations are trained (CWM predicts both), system and user
messages are not. `mask_observations` drops that share of observations from the loss, each one
independently, from a generator seeded by (seed, trajectory id): the same episode gets the same mask
whatever else is exported with it.
"""

from __future__ import annotations

import random

import pyarrow as pa
from pydantic import BaseModel, Field

from forager.export.common import (
    IDS_SCHEMA,
    OUTCOME_SCHEMA,
    PROVENANCE_FIELD,
    history,
    ids,
    json_text,
    outcome,
    provenance,
)
from forager.store.stream import EpisodeBundle

BEGIN, START, END, EOT = "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
STEP_COLUMNS = ("assistant_message", "observation_messages", "completion_tokens")

SEGMENT = pa.struct([("role", pa.string()), ("start", pa.int64()), ("end", pa.int64()), ("loss", pa.bool_())])
SCHEMA = pa.schema([*IDS_SCHEMA, pa.field("text", pa.string()), pa.field("segments", pa.list_(SEGMENT)),
                    *OUTCOME_SCHEMA, PROVENANCE_FIELD])


class CwmOptions(BaseModel):
    mask_observations: float = Field(default=0.0, ge=0.0, le=1.0, description="share of observations kept out of the loss")
    seed: int = 0


def role_of(message: dict) -> str:
    if message["role"] == "tool":
        return f"tool: {message.get('name') or 'tool'}"
    return message["role"]


def body_of(message: dict) -> str:
    content = message.get("content")
    calls = message.get("tool_calls")
    if not calls:
        return content if isinstance(content, str) else ""
    parts = [content] if isinstance(content, str) and content else []
    for call in calls:
        function = call.get("function", call)
        arguments = function.get("arguments") or {}
        arguments = arguments if isinstance(arguments, str) else json_text(arguments)
        parts.append(f"<tool: {function['name']}>\n{arguments}\n</tool>")
    return "\n".join(parts)


def cwm_row(bundle: EpisodeBundle, options: CwmOptions = CwmOptions()) -> dict:
    row_ids = ids(bundle)
    draw = random.Random(f"{options.seed}:{row_ids['trajectory_id']}").random
    frame = len(START) + len(END) + 2 + len(EOT)  # a block's characters besides its role and body
    pieces, segments, at = [BEGIN], [], len(BEGIN)
    for message in history(bundle):
        kind = message["role"]
        if kind == "tool":
            role, loss = role_of(message), draw() >= options.mask_observations
        else:
            role, loss = kind, kind == "assistant"
        body = body_of(message)
        end = at + frame + len(role) + len(body)
        segments.append({"role": role, "start": at, "end": end, "loss": loss})
        # why parts, not a block string per message: the text is then copied once, by the join
        pieces += (START, role, END, "\n\n", body, EOT)
        at = end
    return {**row_ids, "text": "".join(pieces), "segments": segments, **outcome(bundle), "provenance": provenance(bundle)}
