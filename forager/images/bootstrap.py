"""Make a base image with no registry at all: debootstrap a Debian root file system and `docker import` it.

For air-gapped hosts (and the test machines here). Debian's suite fixes the Python version.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from forager.images.bases import SUITE_FOR_PYTHON
from forager.engine.docker_engine import Engine

PACKAGES = ["python3", "python3-venv", "python3-pip", "python3-dev", "git", "ca-certificates", "gcc", "libc6-dev"]
# Caches the image does not need (about 170 MB): apt's package lists and downloaded archives.
PRUNE = ["var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"]


DEBOOTSTRAP_TIMEOUT = 1800


class BootstrapError(RuntimeError):
    pass


def debootstrap_command(suite: str, target: Path, mirror: str) -> list[str]:
    return [
        "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(target), mirror,
    ]


def bootstrap_base(engine: Engine, python: str, tag: str, mirror: str = "http://deb.debian.org/debian") -> str:
    """Create `tag` from Debian's packages; returns the image id. Needs root and the debootstrap program."""
    suite = SUITE_FOR_PYTHON.get(python)
    if suite is None:
        raise BootstrapError(
            f"no Debian suite ships Python {python}; choose one of {', '.join(SUITE_FOR_PYTHON)} "
            "or use a registry image via FORAGER_BASE_IMAGE"
        )
    if shutil.which("debootstrap") is None:
        raise BootstrapError("debootstrap is not installed; run `apt-get install -y debootstrap` as root")
    with tempfile.TemporaryDirectory(prefix="forager-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        try:
            proc = subprocess.run(
                debootstrap_command(suite, root, mirror), capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise BootstrapError(f"debootstrap {suite} did not finish within {DEBOOTSTRAP_TIMEOUT}s") from None
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BootstrapError(f"debootstrap {suite} failed: {last[0]}")
        for rel in PRUNE:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir(parents=True)
        # why: minbase has no /usr/bin/python; images and scripts say `python`.
        python_link = root / "usr/bin/python"
        if not python_link.exists():
            python_link.symlink_to("python3")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            engine.import_rootfs(tar.stdout, tag)
        finally:
            tar.stdout.close()
            tar.wait()
    return engine.client.images.get(tag).id
