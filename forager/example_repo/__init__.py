"""forager's bundled example repository (a tiny ledger library with a pytest suite), made into a git repo on demand."""

from __future__ import annotations

import shutil
from pathlib import Path

import git

FILES = Path(__file__).parent / "files"
# The example's history has a real-shaped fix: `files/` is the fixed state, and this patch takes it back
# to the commit before the fix (a bug in format_amount for negative amounts, and tests that missed it).
BEFORE_FIX = Path(__file__).parent / "before-fix.patch"
FIX_MESSAGE = """Fix format_amount for negative amounts

format_amount(-5) gave '-1.95': divmod of a negative number rounds towards minus infinity.
Format the absolute value and put the sign in front; test negative amounts and round trips.
"""


def materialise(dest: Path) -> Path:
    """Write the example as a git repository at `dest` (reused if already there): two commits, the second a bug fix."""
    if (dest / ".git").is_dir():
        return dest
    shutil.copytree(FILES, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    repo = git.Repo.init(dest, initial_branch="main")
    identity = ["-c", "user.name=forager", "-c", "user.email=forager@localhost"]
    repo.git.apply(str(BEFORE_FIX))
    repo.git.add("-A")
    repo.git.execute(["git", *identity, "commit", "-q", "-m", "ledger: example repository for forager"])
    repo.git.apply("-R", str(BEFORE_FIX))
    repo.git.add("-A")
    repo.git.execute(["git", *identity, "commit", "-q", "-m", FIX_MESSAGE])
    return dest
