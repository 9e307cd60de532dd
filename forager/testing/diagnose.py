"""Why a pytest run reported no results, named from its own output (pure: log text in, one line out).

A suite that exits 1-5 without a JUnit result is a build's least helpful failure ("pytest exited 4 without
reporting tests"); its log almost always says why: a conftest that fails to import, an option no plugin
provides, a required plugin that is missing, an internal error. The first such line wins.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

# "E   ImportError: cannot import name 'soft_unicode' from 'markupsafe' (/venv/.../markupsafe/__init__.py)"
_REMOVED_NAME = re.compile(r"cannot import name '([^']+)' from '([^']+)'")
_NO_MODULE = re.compile(r"No module named '([^']+)'")
_CONFTEST = re.compile(r"ImportError while loading conftest '([^']+)'")
_PLUGIN = re.compile(r"Error importing plugin \"([^\"]+)\"")
_CAUSES = (
    re.compile(r"(unrecognized arguments: .+)"),
    re.compile(r"(Missing required plugins: .+)"),
    re.compile(r"(no such option: .+)"),
    re.compile(r"((?:ImportError|ModuleNotFoundError|AttributeError|SyntaxError|TypeError|NameError): .+)"),
    re.compile(r"INTERNALERROR> .*?(\w+(?:Error|Exception): .+)"),
)
_MAX = 240


class NoResultsCause(BaseModel):
    """What stopped pytest before it reported a test."""

    line: str
    # the code imports a name its dependency no longer has: a release newer than the code
    newer_dependency: bool = False


def _strip(line: str) -> str:
    return re.sub(r"^(E\s+|ERROR:?\s+|pytest: error:\s+)", "", line.strip())


def no_results_cause(log: str) -> NoResultsCause | None:
    """The cause of a run without results, from its log; None when the log names none."""
    lines = [_strip(line) for line in log.splitlines() if line.strip()]
    where = next((f" (loading conftest {m.group(1).removeprefix('/testbed/')})" for line in lines
                  if (m := _CONFTEST.search(line))), "")
    plugin = next((m.group(1) for line in lines if (m := _PLUGIN.search(line))), None)
    for pattern in _CAUSES:
        for line in lines:
            if match := pattern.search(line):
                cause = re.sub(r" \(/[^)]*\)$", "", match.group(1))  # the installed file's path says nothing new
                if plugin:
                    cause = f"plugin {plugin}: {cause}"
                return NoResultsCause(line=(cause + where)[:_MAX], newer_dependency=bool(_REMOVED_NAME.search(cause)))
    return None


_NOISE = ("Removing intermediate container", "hint:", "---> ", "note: This error originates",
          "[end of output]", "Step ", "The command '")
_ERRORISH = re.compile(r"(?i)(error\b|\b(failed|cannot|could not|no solution|unsatisfiable)\b)")


def install_error_line(log_tail: str) -> str | None:
    """The line of a failed install's output that says what went wrong (pure): the last one that reads like an
    error, past Docker's own lines; None when there is none."""
    lines = [line.strip().lstrip("×").strip() for line in log_tail.splitlines()]
    lines = [line for line in lines if line and not line.startswith(_NOISE) and not line.startswith("\x1b")]
    for line in reversed(lines):
        if _ERRORISH.search(line):
            return re.sub(r"\x1b\[[0-9;]*m", "", line)[:_MAX]
    return None
