"""forager's bundled example repository (a tiny ledger library with a pytest suite), made into a git repo on demand."""

from __future__ import annotations

import shutil
from pathlib import Path

import git

FILES = Path(__file__).parent / "files"


def materialise(dest: Path) -> Path:
    """Write the example as a git repository with one commit at `dest` (reused if already there)."""
    if (dest / ".git").is_dir():
        return dest
    shutil.copytree(FILES, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    repo = git.Repo.init(dest, initial_branch="main")
    repo.git.add("-A")
    identity = ["-c", "user.name=forager", "-c", "user.email=forager@localhost"]
    repo.git.execute(["git", *identity, "commit", "-q", "-m", "ledger: example repository for forager"])
    return dest
