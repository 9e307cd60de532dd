"""Real third-party repositories without GitHub: a PyPI source distribution turned into a git repository.

Many sdists ship their test suites; tests and benchmarks use them as real repos with real suites.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

GIT_ID = ["-c", "user.name=forager", "-c", "user.email=forager@localhost", "-c", "init.defaultBranch=main"]


class SdistError(RuntimeError):
    pass


def download_sdist(requirement: str, dest: Path) -> Path:
    """`pip download` the sdist of `requirement` (e.g. 'six==1.17.0') into `dest`, reusing a cached file."""
    dest.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].lower().replace("-", "_").replace(".", "_")
    version = requirement.partition("==")[2]
    for existing in dest.iterdir():
        stem = existing.name.lower().replace("-", "_").replace(".", "_")
        if stem.startswith(f"{name}_{version.replace('.', '_')}") and version:
            return existing
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
         "-q", "-d", str(dest), requirement],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        raise SdistError(f"pip download {requirement} failed: {proc.stderr.strip().splitlines()[-1:]}")
    files = sorted(dest.iterdir(), key=lambda p: p.stat().st_mtime)
    return files[-1]


def _extract(archive: Path, into: Path) -> Path:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    entries = list(into.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else into


def git_commit_all(root: Path, message: str) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *GIT_ID, *args], cwd=root, check=True, capture_output=True, text=True).stdout

    if not (root / ".git").exists():
        git("init", "-q")
    git("add", "-A", "-f")
    git("commit", "-q", "--allow-empty", "-m", message)
    return git("rev-parse", "HEAD").strip()


def repo_from_sdist(requirement: str, dest: Path, download_dir: Path) -> Path:
    """A git repository at `dest` holding the sdist's files in one commit (reused when it exists)."""
    if (dest / ".git").is_dir():
        return dest
    archive = download_sdist(requirement, download_dir)
    with tempfile.TemporaryDirectory() as tmp:
        top = _extract(archive, Path(tmp))
        # why: egg-info and PKG-INFO are build outputs of the sdist, never tracked in a real repository
        shutil.copytree(top, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.egg-info", "PKG-INFO"))
    git_commit_all(dest, f"{requirement} from its source distribution")
    return dest
