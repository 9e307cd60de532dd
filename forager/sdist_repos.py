"""Real third-party repositories without GitHub: a PyPI source distribution turned into a git repository.

Many sdists ship their test suites; tests and benchmarks use them as real repos with real suites.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

import httpx
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename

GIT_ID = ["-c", "user.name=forager", "-c", "user.email=forager@localhost", "-c", "init.defaultBranch=main"]


class SdistError(RuntimeError):
    pass


SIMPLE_INDEX = "https://pypi.org/simple"


def download_sdist(requirement: str, dest: Path, index_url: str = SIMPLE_INDEX) -> Path:
    """Fetch the sdist of 'NAME==VERSION' through the index's JSON simple API (PEP 691), reusing a cached file.

    Not `pip download`: that builds the sdist's metadata, which needs its build backend.
    """
    name, _, version = requirement.partition("==")
    if not version:
        raise SdistError(f"{requirement!r}: pin a version, e.g. {name}==1.0")
    dest.mkdir(parents=True, exist_ok=True)
    project = canonicalize_name(name)
    try:
        response = httpx.get(
            f"{index_url}/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"},
            timeout=60, follow_redirects=True,
        )
        response.raise_for_status()
        for file in response.json()["files"]:
            filename = file["filename"]
            if not filename.endswith((".tar.gz", ".zip")):
                continue
            try:
                sdist_name, sdist_version = parse_sdist_filename(filename)
            except InvalidSdistFilename:
                continue
            if sdist_name == project and str(sdist_version) == version:
                target = dest / filename
                if not target.exists():
                    data = httpx.get(file["url"], timeout=300, follow_redirects=True).raise_for_status().content
                    target.write_bytes(data)
                return target
    except httpx.HTTPError as exc:
        raise SdistError(f"cannot download {requirement}: {exc}") from exc
    raise SdistError(f"{requirement}: no source distribution on {index_url}")


def _extract(archive: Path, into: Path) -> Path:
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")
    entries = list(into.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else into


def git_commit_all(root: Path, message: str, tag: str | None = None) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *GIT_ID, *args], cwd=root, check=True, capture_output=True, text=True).stdout

    if not (root / ".git").exists():
        git("init", "-q")
    git("add", "-A", "-f")
    git("commit", "-q", "--allow-empty", "-m", message)
    if tag:
        git("tag", tag)
    return git("rev-parse", "HEAD").strip()


# why: egg-info and PKG-INFO are build outputs of the sdist, which most real repositories do not track
BUILD_OUTPUTS = shutil.ignore_patterns("*.egg-info", "PKG-INFO")


def repo_from_sdist(requirement: str, dest: Path, download_dir: Path, *, keep_build_outputs: bool = False) -> Path:
    """A git repository at `dest` holding the sdist's files in one commit (reused when it exists).

    `keep_build_outputs` tracks the sdist's egg-info too, as some real repositories do (their install rewrites it).
    """
    if (dest / ".git").is_dir():
        return dest
    archive = download_sdist(requirement, download_dir)
    with tempfile.TemporaryDirectory() as tmp:
        top = _extract(archive, Path(tmp))
        shutil.copytree(top, dest, dirs_exist_ok=True, ignore=None if keep_build_outputs else BUILD_OUTPUTS)
    # a release's sdist is a tagged commit: version tools (setuptools-scm, hatch-vcs) read the tag
    git_commit_all(dest, f"{requirement} from its source distribution", tag=requirement.partition("==")[2])
    return dest


def repo_from_sdist_history(
    requirements: list[str], dest: Path, download_dir: Path, *, keep_build_outputs: bool = False,
) -> Path:
    """A git repository whose commits are successive releases (one sdist each, tagged): a real history to mine.

    Each commit replaces the whole tree with the next release's files, so its diff is what changed
    between the two releases, tests included.
    """
    if (dest / ".git").is_dir():
        return dest
    dest.mkdir(parents=True)
    for requirement in requirements:
        archive = download_sdist(requirement, download_dir)
        for entry in dest.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        with tempfile.TemporaryDirectory() as tmp:
            top = _extract(archive, Path(tmp))
            shutil.copytree(top, dest, dirs_exist_ok=True, ignore=None if keep_build_outputs else BUILD_OUTPUTS)
        version = requirement.partition("==")[2]
        git_commit_all(dest, f"Release {version}", tag=version)
    return dest
