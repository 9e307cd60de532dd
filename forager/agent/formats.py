"""Tool-call wire formats (pure): how a call is read out of a model reply and how results go back.

Two formats:
- `cwm` (default): CWM's plain text, one call per turn: `<tool: NAME>\\n...\\n</tool>`, parsed by us from
  the raw completion text. No server-side tool parser is involved, so nothing can be dropped on the way.
- `openai`: OpenAI-native `tool_calls` with JSON arguments, for models trained on that format.

A reply with no call, several calls or a malformed one is a format error: the error text goes back to
the model as a user message and the episode goes on (until too many in a row).
"""

from __future__ import annotations

import json
import re
from typing import Protocol

from pydantic import BaseModel

from forager.sandbox.models import ToolCall
from forager.sandbox.tools import DIVIDER, REPLACE_MARK, SEARCH_MARK, TOOL_NAMES, TOOLS, TOOLS_BY_NAME, Tool

_CWM_CALL_RE = re.compile(r"<tool:\s*([A-Za-z_]+)>\n(.*?)\n?</tool>", re.DOTALL)
_OPEN_TAG_RE = re.compile(r"<tool:")
_CLOSE_TAG = "</tool>"
TOOL_LIST = ", ".join(TOOL_NAMES)


class FormatError(ValueError):
    """A reply the agent loop cannot act on; the message is shown to the model."""


class Parsed(BaseModel):
    call: ToolCall | None = None
    error: str | None = None


def tool_schemas(command_timeout: int) -> list[dict]:
    """OpenAI function-tool schemas of the tools (also what the `openai` format sends)."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.describe(command_timeout),
                "parameters": {
                    "type": "object",
                    "properties": {arg: {"type": "string", "description": text} for arg, text in tool.arguments.items()},
                    "required": list(tool.required),
                },
            },
        }
        for tool in TOOLS
    ]


def parse_cwm(text: str) -> Parsed:
    """The one `<tool: NAME>` call in a reply, its body turned into the tool's arguments."""
    opened, closed = len(_OPEN_TAG_RE.findall(text)), text.count(_CLOSE_TAG)
    if opened == 0:
        return Parsed(error=f"No tool call found. Reply with exactly one call such as\n{TOOLS_BY_NAME['bash'].cwm_syntax}\n"
                      f"(tools: {TOOL_LIST}).")
    if opened > 1 or closed > 1:
        return Parsed(error=f"Found {opened} tool calls; make exactly one call per reply.")
    match = _CWM_CALL_RE.search(text)
    if match is None:
        return Parsed(error="Malformed tool call: write `<tool: NAME>` on its own line, then the arguments, "
                      "then `</tool>` on its own line.")
    name, body = match.group(1), match.group(2)
    try:
        return Parsed(call=ToolCall(name=name, arguments=_cwm_arguments(name, body)))
    except FormatError as exc:
        return Parsed(error=str(exc))


def _cwm_arguments(name: str, body: str) -> dict[str, str]:
    tool = TOOLS_BY_NAME.get(name)
    if tool is None:
        raise FormatError(f"Unknown tool {name!r}; the tools are {TOOL_LIST}.")
    first, *others = tool.arguments
    if tool.cwm_layout == "line":
        return {first: body.strip()}
    if tool.required and not body.strip():
        raise FormatError(f"The {name} call is empty; its syntax is\n{tool.cwm_syntax}")
    if tool.cwm_layout == "text":
        return {first: body}
    line, _, rest = body.partition("\n")
    if not line.strip():
        raise FormatError(f"The {name} call must start with the file path on its first line:\n{tool.cwm_syntax}")
    if tool.cwm_layout == "line+text":
        return {first: line.strip(), others[0]: rest}
    return {first: line.strip(), **_search_replace(rest, tool, *others)}


def _search_replace(block: str, tool: Tool, search: str, replace: str) -> dict[str, str]:
    """One SEARCH/REPLACE block; anything else is a format error naming what is wrong."""
    lines = block.split("\n")
    marks = {mark: [i for i, line in enumerate(lines) if line.rstrip() == mark] for mark in (SEARCH_MARK, DIVIDER, REPLACE_MARK)}
    if any(len(found) != 1 for found in marks.values()):
        counts = ", ".join(f"{mark!r} x{len(found)}" for mark, found in marks.items())
        raise FormatError(f"An edit needs exactly one SEARCH/REPLACE block ({counts}):\n{tool.cwm_syntax}")
    start, middle, end = marks[SEARCH_MARK][0], marks[DIVIDER][0], marks[REPLACE_MARK][0]
    if not start < middle < end:
        raise FormatError(f"The edit block's markers are out of order; write them as\n{tool.cwm_syntax}")
    return {search: "\n".join(lines[start + 1 : middle]), replace: "\n".join(lines[middle + 1 : end])}


def render_cwm(call: ToolCall) -> str:
    """A call as CWM text (the oracle writes its actions this way; the inverse of parse_cwm)."""
    tool, args = TOOLS_BY_NAME[call.name], call.arguments
    first, *others = tool.arguments
    if tool.cwm_layout == "line":
        body = args.get(first, "")
    elif tool.cwm_layout == "text":
        body = args[first]
    elif tool.cwm_layout == "line+text":
        body = f"{args[first]}\n{args[others[0]]}"
    else:
        search, replace = others
        body = f"{args[first]}\n{SEARCH_MARK}\n{args[search]}\n{DIVIDER}\n{args[replace]}\n{REPLACE_MARK}"
    return f"<tool: {call.name}>\n{body}\n</tool>"


def parse_openai(tool_calls: list[dict] | None) -> Parsed:
    """The one OpenAI `tool_calls` entry of a reply, its JSON arguments checked against the tool."""
    if not tool_calls:
        return Parsed(error=f"No tool call found. Call exactly one of the tools ({TOOL_LIST}).")
    if len(tool_calls) > 1:
        return Parsed(error=f"Found {len(tool_calls)} tool calls; make exactly one call per reply.")
    function = tool_calls[0].get("function") or {}
    name = function.get("name") or ""
    tool = TOOLS_BY_NAME.get(name)
    if tool is None:
        return Parsed(error=f"Unknown tool {name!r}; the tools are {TOOL_LIST}.")
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except json.JSONDecodeError as exc:
        return Parsed(error=f"The arguments of {name} are not valid JSON ({exc.msg} at position {exc.pos}).")
    if not isinstance(arguments, dict) or not all(isinstance(v, str) for v in arguments.values()):
        return Parsed(error=f"The arguments of {name} must be a JSON object of strings.")
    missing = [arg for arg in tool.required if arg not in arguments]
    if missing:
        return Parsed(error=f"{name} needs the arguments {', '.join(tool.required)}; missing {', '.join(missing)}.")
    return Parsed(call=ToolCall(name=name, arguments={k: v for k, v in arguments.items() if k in tool.arguments}))


def observation_text(output: str, turns_left: int, tokens_left: int | None) -> str:
    """A tool's output as CWM wraps it: the output, then what is left of the budget."""
    budget = [f"* Remaining turns: {turns_left}"]
    if tokens_left is not None:
        budget.append(f"* Remaining tokens: {tokens_left}")
    return f"<output>\n{output}\n</output>\n<budget>\n" + "\n".join(budget) + "\n</budget>"


class ToolFormat(Protocol):
    name: str

    def parse(self, text: str, tool_calls: list[dict] | None) -> Parsed: ...
    def assistant_message(self, text: str, tool_calls: list[dict] | None) -> dict: ...
    def observation_message(self, call: ToolCall, text: str, tool_calls: list[dict] | None) -> dict: ...
    def error_messages(self, error: str, tool_calls: list[dict] | None) -> list[dict]: ...
    def request_tools(self, command_timeout: int) -> list[dict] | None: ...


class CwmFormat:
    name = "cwm"

    def parse(self, text: str, tool_calls: list[dict] | None) -> Parsed:
        return parse_cwm(text)

    def assistant_message(self, text: str, tool_calls: list[dict] | None) -> dict:
        return {"role": "assistant", "content": text}

    def observation_message(self, call: ToolCall, text: str, tool_calls: list[dict] | None) -> dict:
        # why: CWM's template renders role "tool" with its name as the `tool: NAME` header
        return {"role": "tool", "name": call.name, "content": text}

    def error_messages(self, error: str, tool_calls: list[dict] | None) -> list[dict]:
        return [format_error_message(error)]

    def request_tools(self, command_timeout: int) -> list[dict] | None:
        return None  # the tools are described in the system prompt


class OpenAIFormat:
    name = "openai"

    def parse(self, text: str, tool_calls: list[dict] | None) -> Parsed:
        return parse_openai(tool_calls)

    def assistant_message(self, text: str, tool_calls: list[dict] | None) -> dict:
        message: dict = {"role": "assistant", "content": text or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return message

    def observation_message(self, call: ToolCall, text: str, tool_calls: list[dict] | None) -> dict:
        call_id = (tool_calls or [{}])[0].get("id") or "call_0"
        return {"role": "tool", "tool_call_id": call_id, "name": call.name, "content": text}

    def error_messages(self, error: str, tool_calls: list[dict] | None) -> list[dict]:
        """Every call the reply made gets an answer (strict servers reject a history with unanswered calls)."""
        if not tool_calls:
            return [format_error_message(error)]
        content = format_error_message(error)["content"]
        return [{"role": "tool", "tool_call_id": call.get("id") or f"call_{index}",
                 "name": (call.get("function") or {}).get("name") or "", "content": content}
                for index, call in enumerate(tool_calls)]

    def request_tools(self, command_timeout: int) -> list[dict] | None:
        return tool_schemas(command_timeout)


FORMATS: dict[str, type] = {"cwm": CwmFormat, "openai": OpenAIFormat}


def format_named(name: str) -> ToolFormat:
    try:
        return FORMATS[name]()
    except KeyError:
        raise ValueError(f"unknown tool format {name!r}; choose {' or '.join(FORMATS)}") from None


def format_error_message(error: str) -> dict:
    """A format error goes back as a user message (there is no tool whose result it could be)."""
    return {"role": "user", "content": f"<format_error>\n{error}\n</format_error>"}
