"""Process and output helpers shared by every layer (pure, or the OS only: no Docker, no database)."""

from __future__ import annotations

import os


def tail(text: str, lines: int = 40) -> str:
    """The last `lines` lines of a command's output."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def pid_alive(pid: str | None) -> bool:
    """Whether a process of this host with that id exists (a store's fence: is a claimant still running?)."""
    if not pid or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
