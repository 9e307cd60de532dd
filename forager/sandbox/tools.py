"""The agent's tools, each defined once (pure): name, arguments, documentation, CWM syntax, implementation.

The tool-call formats (agent/formats.py) parse and render calls from these values, the system prompt
(agent/prompts.py) lists them, and the sandbox (sandbox/container.py) dispatches a call to the method a
tool names. Adding a tool is one `Tool` here and one method on `Sandbox`. The documentation and syntax
are part of what the model is shown, so they are hashed into a run's identity (agent/prompts.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SEARCH_MARK, DIVIDER, REPLACE_MARK = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"

# How a CWM call's body (the text between `<tool: NAME>` and `</tool>`) maps to the arguments, in order:
#   text        the whole body, verbatim, is the one argument
#   line        the body, stripped, is the one argument (may be empty)
#   line+text   the first line (stripped), then the rest verbatim
#   line+block  the first line (stripped), then one SEARCH/REPLACE block giving the other two
CwmLayout = Literal["text", "line", "line+text", "line+block"]


class Tool(BaseModel):
    """One tool as every layer sees it."""

    model_config = ConfigDict(frozen=True)

    name: str
    arguments: dict[str, str]  # argument -> what it means (the OpenAI schema's descriptions), in CWM body order
    required: tuple[str, ...]
    doc: str  # shown to the model; `{timeout}` is the bash command timeout in seconds
    cwm_syntax: str  # the call as CWM text, shown in the prompt and in format errors
    cwm_layout: CwmLayout
    method: str  # the Sandbox method that runs it: (arguments, timeout) -> ToolResult

    def describe(self, command_timeout: int) -> str:
        return self.doc.format(timeout=command_timeout)

    def signature(self) -> str:
        """`edit {path, search, replace}`, optional arguments marked `?` (for error messages)."""
        args = ", ".join(arg if arg in self.required else arg + "?" for arg in self.arguments)
        return f"{self.name} {{{args}}}"


TOOLS: tuple[Tool, ...] = (
    Tool(
        name="bash",
        arguments={"command": "the shell command to run"},
        required=("command",),
        doc="Run a command in a persistent bash shell (state such as the working directory carries over). "
        "Each command may run for {timeout} seconds; long output is cut in the middle.",
        cwm_syntax="<tool: bash>\nCOMMAND\n</tool>",
        cwm_layout="text",
        method="_bash",
    ),
    Tool(
        name="edit",
        arguments={"path": "file to edit (relative to the repository root or absolute)",
                   "search": "exact text to find (must occur once)", "replace": "text to put in its place"},
        required=("path", "search", "replace"),
        doc="Replace exactly one occurrence of a block of text in a file. The SEARCH text must match the file "
        "exactly once, whitespace and indentation included. Answers with the changed lines, numbered.",
        cwm_syntax=f"<tool: edit>\nPATH\n{SEARCH_MARK}\nOLD TEXT\n{DIVIDER}\nNEW TEXT\n{REPLACE_MARK}\n</tool>",
        cwm_layout="line+block",
        method="_edit",
    ),
    Tool(
        name="create",
        arguments={"path": "file to create", "content": "the whole content of the new file"},
        required=("path", "content"),
        doc="Create a new file with the given content. Refuses to overwrite an existing file; the parent "
        "directory must exist.",
        cwm_syntax="<tool: create>\nPATH\nCONTENT\n</tool>",
        cwm_layout="line+text",
        method="_create_file",
    ),
    Tool(
        name="submit",
        arguments={"path": "a file holding a unified diff; empty to submit the repository's git diff"},
        required=(),
        doc="Submit your change and end the episode. Give the path of a file holding a unified diff, or "
        "nothing to submit the repository's current `git diff`.",
        cwm_syntax="<tool: submit>\nPATH-OR-NOTHING\n</tool>",
        cwm_layout="line",
        method="_submit",
    ),
)
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}
TOOL_NAMES = tuple(TOOLS_BY_NAME)


def tool_named(name: str) -> Tool | None:
    return TOOLS_BY_NAME.get(name)


def tools_line() -> str:
    """Every tool with its arguments, for the sandbox's refusals: `the tools are: bash {command}, ...`."""
    return "the tools are: " + ", ".join(tool.signature() for tool in TOOLS)
