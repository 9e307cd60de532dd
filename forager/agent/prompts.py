"""The episode's opening messages (pure): a system prompt describing the environment and tools, and the task.

The texts are data files (agent/templates/*.txt, `{name}` placeholders filled with str.format); the tools'
documentation comes from sandbox/tools.py. `prompt_sha256` hashes both: it is part of a run's identity,
so a changed prompt starts a new run instead of resuming one whose episodes saw another prompt.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.resources import files

from forager.sandbox.tools import TOOLS, Tool

TEMPLATE_NAMES = ("reasoning", "system", "task", "tool", "tool_cwm")


@cache
def templates() -> dict[str, str]:
    """Every prompt template by name, as the package ships it (without the file's final newline)."""
    folder = files("forager.agent") / "templates"
    return {name: (folder / f"{name}.txt").read_text(encoding="utf-8").removesuffix("\n") for name in TEMPLATE_NAMES}


def prompt_sha256(texts: dict[str, str] | None = None, tools: tuple[Tool, ...] = TOOLS) -> str:
    """The hash of everything the prompts are made of: the templates and each tool's name, arguments and docs."""
    blob = json.dumps({"templates": texts if texts is not None else templates(),
                       "tools": [tool.model_dump(mode="json", exclude={"method"}) for tool in tools]},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def tools_section(tool_format: str, command_timeout: int) -> str:
    texts = templates()
    entries = []
    for tool in TOOLS:
        entries.append(texts["tool"].format(name=tool.name, doc=tool.describe(command_timeout)))
        if tool_format == "cwm":  # the openai format sends the tools as schemas instead
            entries.append(texts["tool_cwm"].format(syntax=tool.cwm_syntax))
    return "\n".join(entries)


def system_prompt(*, tool_format: str, repo_path: str, max_turns: int, command_timeout: int, reasoning: bool) -> str:
    texts = templates()
    body = texts["system"].format(repo_path=repo_path, max_turns=max_turns,
                                  tools=tools_section(tool_format, command_timeout))
    # the reasoning preamble is CWM's: the released model expects it to think before each reply
    return f"{texts['reasoning']}\n\n{body}" if reasoning else body


def task_prompt(problem_statement: str, repo_path: str) -> str:
    return templates()["task"].format(problem_statement=problem_statement.strip(), repo_path=repo_path)


def opening_messages(
    problem_statement: str, *, tool_format: str, repo_path: str, max_turns: int, command_timeout: int,
    reasoning: bool = False,
) -> list[dict]:
    return [
        {"role": "system", "content": system_prompt(tool_format=tool_format, repo_path=repo_path, max_turns=max_turns,
                                                    command_timeout=command_timeout, reasoning=reasoning)},
        {"role": "user", "content": task_prompt(problem_statement, repo_path)},
    ]
