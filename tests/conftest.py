"""Shared helpers: make real git repositories from files at test time."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

GIT_ID = ["-c", "user.name=forager-tests", "-c", "user.email=tests@localhost", "-c", "init.defaultBranch=main"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def make_repo(root: Path, *commits: dict[str, str]) -> list[str]:
    """A git repo at `root` with one commit per files dict; returns the commit shas in order."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    shas = []
    for index, files in enumerate(commits):
        write_files(root, files)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"commit {index}")
        shas.append(git(root, "rev-parse", "HEAD"))
    return shas


@pytest.fixture
def repo_factory(tmp_path):
    def factory(name: str, *commits: dict[str, str]) -> tuple[Path, list[str]]:
        root = tmp_path / name
        return root, make_repo(root, *commits)

    return factory


def minimal_pyproject(name: str) -> str:
    """The pyproject.toml of a one-package project with a `test` extra (pytest), as fixture repositories use."""
    return f"""
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "0.1"
requires-python = ">=3.8"

[project.optional-dependencies]
test = ["pytest"]
"""
