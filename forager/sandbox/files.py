"""Single files in and out of tar archives (what docker's archive API speaks), and docker's path stat (pure)."""

from __future__ import annotations

import io
import tarfile
import time

# Go's os.FileMode bits as docker reports them in a path stat
GO_DIR = 1 << 31
GO_SYMLINK = 1 << 27


def tar_one(name: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0) -> bytes:
    """An archive holding one file `name` (no folders: put_archive extracts it into an existing one)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, int(time.time())
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def untar_one(archive_bytes: bytes) -> tuple[bytes, tarfile.TarInfo]:
    """The first member of an archive that get_archive made for one regular file."""
    with tarfile.open(fileobj=io.BytesIO(archive_bytes)) as archive:
        member = archive.next()
        handle = archive.extractfile(member) if member is not None else None
        if handle is None:
            raise ValueError("the archive holds no regular file")
        return handle.read(), member


def kind_of(stat: dict) -> str:
    """'dir', 'symlink' or 'file' from docker's X-Docker-Container-Path-Stat."""
    mode = stat.get("mode", 0)
    if mode & GO_DIR:
        return "dir"
    if mode & GO_SYMLINK:
        return "symlink"
    return "file"


def looks_like_diff(text: str) -> bool:
    return "diff --git " in text or text.startswith("--- ") or "\n--- " in text
