"""The episode's opening messages (pure): a system prompt describing the environment and tools, and the task."""

from __future__ import annotations

from forager.agent.formats import CWM_SYNTAX, TOOL_DOCS
from forager.sandbox.models import TOOL_NAMES

# CWM's reasoning preamble: the released model expects it to think before each reply.
REASONING_PREAMBLE = (
    "You are a helpful AI assistant. You always reason before responding, using the following format:\n\n"
    "<think>\nyour internal reasoning\n</think>\nyour external response"
)


def system_prompt(*, tool_format: str, repo_path: str, max_turns: int, command_timeout: int, reasoning: bool) -> str:
    lines = [REASONING_PREAMBLE, ""] if reasoning else []
    lines += [
        "# Environment",
        f"You work in a Linux container on a software repository at {repo_path}; its dependencies are installed "
        "and its tests can be run. There is no network. You have at most "
        f"{max_turns} turns, and you make exactly one tool call per turn.",
        "",
        "## Tools",
    ]
    for name in TOOL_NAMES:
        lines.append(f"- {name}: {TOOL_DOCS[name].format(timeout=command_timeout)}")
        if tool_format == "cwm":
            lines += ["```", CWM_SYNTAX[name], "```"]
    lines += ["", "Paths are relative to the repository root unless they are absolute."]
    return "\n".join(lines)


def task_prompt(problem_statement: str, repo_path: str) -> str:
    return (
        f"<issue_description>\n{problem_statement.strip()}\n</issue_description>\n\n"
        f"The repository is at {repo_path}. Find the cause of the problem described above and fix it in the "
        "source code, so that the repository's tests pass. Do not change the tests. When you are done, submit "
        "your change with the submit tool."
    )


def opening_messages(
    problem_statement: str, *, tool_format: str, repo_path: str, max_turns: int, command_timeout: int,
    reasoning: bool = False,
) -> list[dict]:
    return [
        {"role": "system", "content": system_prompt(tool_format=tool_format, repo_path=repo_path, max_turns=max_turns,
                                                    command_timeout=command_timeout, reasoning=reasoning)},
        {"role": "user", "content": task_prompt(problem_statement, repo_path)},
    ]
