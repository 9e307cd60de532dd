"""The corpus of real repositories beside the checkout (../shared/corpus/*.bundle), as the benchmarks use it:
cloned into a work folder, never written to."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"


def one_line(text: str, limit: int = 300) -> str:
    text = (text or "").strip()
    return text.splitlines()[0][:limit] if text else ""


def inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def clone_bundle(bundle: Path, dest: Path) -> Path:
    """A clone of the bundle at `dest` (reused when it is there), with the bundle's branches and tags."""
    if (dest / ".git").is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["git", "clone", "--quiet", str(bundle), str(dest)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git clone {bundle.name} failed: {one_line(done.stderr)}")
    return dest
