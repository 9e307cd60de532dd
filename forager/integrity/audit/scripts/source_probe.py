"""The pre-bug-source probe's program: copies of the watched files anywhere on a filesystem, and bytecode
compiled from them or gone stale beside them, found in one walk.

It runs inside the audited container, under the image's own interpreter (`python3 -I -S -B -c TEXT SPEC...`,
rendered by forager/integrity/audit/source.py), where forager is not installed: so it imports only the standard
library and keeps to syntax old Pythons read (no f-strings). Importing it runs nothing.

Input: JSON, split over the arguments: root, repo, label, image (bool), min_bytes, watched:
[{path, size, sha256, text}] (the files as the fix leaves them; text may be null) or null for the image (every
tracked .py, as it is). /proc, /sys and /dev are left out. Prints JSON: findings (the first 200), more (left
out), files (walked), watched (how many).
"""

import hashlib
import importlib.util
import json
import marshal
import os
import stat
import subprocess
import sys

MAGIC = importlib.util.MAGIC_NUMBER
MAX_FINDINGS = 200  # forager's MAX_FINDINGS: the rest are only counted


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def tracked_files(repo):
    """Absolute paths of the files git tracks in `repo`."""
    listed = subprocess.run(["git", "-C", repo, "ls-files", "-z"], capture_output=True).stdout
    return {os.path.join(repo, p) for p in listed.decode("utf-8", "surrogateescape").split("\0") if p}


class Watched:
    """A file looked for: its path in the repository, and its watched form (the form the fix leaves it in, given
    as size, hash and maybe text; for the image, the file as it is)."""

    def __init__(self, repo, image, rel, size=None, sha=None, text=None):
        self.image = image
        self.rel, self.abs, self.given_size, self.given_sha = rel, os.path.join(repo, rel), size, sha
        self.text = None if text is None else text.encode("utf-8", "surrogateescape")
        self.stem = os.path.basename(rel).split(".")[0]
        parts = rel.split("/")
        if len(parts) > 2 and parts[0] in ("src", "lib"):
            parts = parts[1:]
        self.tails = ["/".join(parts[-2:])] if len(parts) > 1 else [d + "/" + parts[0] for d in
                                                                     ("site-packages", "dist-packages", "lib")]
        self.codes = {}

    def leak(self):  # the watched form's bytes: given, or (the image) the file as it is
        if self.text is None and self.image:
            try:
                self.text = read(self.abs)
            except OSError:
                pass
        return self.text

    def size(self):
        if self.given_size is None:
            self.given_size = os.lstat(self.abs).st_size
        return self.given_size

    def sha(self):
        if self.given_sha is None:
            self.given_sha = hashlib.sha256(self.leak() or b"").hexdigest()
        return self.given_sha

    def code(self, level):
        if level not in self.codes:
            try:
                leak = self.leak()
                self.codes[level] = None if leak is None else compile(leak, self.abs, "exec", dont_inherit=True,
                                                                      optimize=level)
            except (SyntaxError, ValueError):
                self.codes[level] = None
        return self.codes[level]

    def start(self):
        try:
            return read(self.abs)
        except OSError:
            return None


def install_place(parts):
    """Whether a path (split at "/") lies in an install or build folder."""
    for i, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages") or part.endswith(".egg"):
            return True
        if part == "build" and parts[i + 1].startswith("lib"):
            return True
    return False


def same_code(data, w, level):
    """Whether bytecode `data` is the watched form of `w` compiled at optimisation `level`."""
    code = w.code(level)
    if code is None or data[:4] != MAGIC:
        return False
    try:
        return marshal.loads(data[16:]) == code
    except Exception:
        return False


def fresh(data, source):
    """Whether bytecode `data`'s header matches the file `source` (its hash, or its mtime and size)."""
    try:
        st, text = os.stat(source), read(source)
    except OSError:
        return False
    if int.from_bytes(data[4:8], "little") & 1:
        return data[8:16] == importlib.util.source_hash(text)
    return (int.from_bytes(data[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(data[12:16], "little") == st.st_size & 0xFFFFFFFF)


class Search:
    """One walk of a filesystem for the watched files: indexed by size (copies), stem (bytecode) and install
    tail (installed or built copies); what it finds."""

    def __init__(self, watched, tracked, label, image, min_bytes):
        self.tracked, self.label, self.image, self.min_bytes = tracked, label, image, min_bytes
        self.findings, self.more, self.hashes = [], 0, {}
        self.by_size, self.by_stem, self.by_tail = {}, {}, {}
        for w in watched:
            try:
                if not image or w.size() >= min_bytes:
                    self.by_size.setdefault(w.size(), []).append(w)
            except OSError:
                pass
            self.by_stem.setdefault(w.stem, []).append(w)
            for tail in w.tails:
                self.by_tail.setdefault(tail, []).append(w)

    def add(self, kind, path, detail, fails=True):
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append({"kind": kind, "path": path, "detail": path + ": " + detail, "fails": fails})
        else:
            self.more += 1

    def sha_of(self, path):
        if path not in self.hashes:
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
            self.hashes[path] = digest.hexdigest()
        return self.hashes[path]

    def check_pyc(self, path, name, parts):
        stem = name.split(".")[0]
        if stem not in self.by_stem:
            return
        image, label = self.image, self.label
        level = 2 if ".opt-2." in name else 1 if ".opt-1." in name else 0
        folder = os.path.dirname(path)
        pycache = os.path.basename(folder) == "__pycache__"
        source = os.path.join(os.path.dirname(folder) if pycache else folder, stem + ".py")
        try:
            data = read(path)
        except OSError:
            return
        for w in self.by_stem[stem]:
            if w.abs != source:
                continue
            if data[:4] != MAGIC:
                self.add("stale-pyc", path, "bytecode of %s from another Python (magic %s)" % (w.rel, data[:4].hex()))
            elif image:
                self.add("pyc", path, "bytecode of %s in the image: a task that changes the file leaves it compiled "
                         "from the original" % w.rel)
            elif same_code(data, w, level):
                self.add("stale-pyc", path, "bytecode compiled from %s (%s)" % (w.rel, label))
            elif not fresh(data, source):
                self.add("stale-pyc", path, "bytecode of %s whose header does not match the file (compiled from "
                         "another version of it)" % w.rel)
            return
        tail = "/".join(parts[-3:-2] + [stem + ".py"]) if pycache else "/".join(parts[-2:-1] + [stem + ".py"])
        for w in self.by_stem[stem]:
            if (image and tail not in w.tails) or not same_code(data, w, level):
                continue
            if image and w.size() < self.min_bytes:
                continue  # a tiny file (an empty __init__.py) compiles to the same bytecode as any other
            if path in self.tracked:
                self.add("tracked-pyc", path, "a tracked file: bytecode compiled from %s (%s)" % (w.rel, label),
                         fails=False)
            else:
                self.add("compiled-copy", path, "bytecode compiled from %s (%s)" % (w.rel, label))
            return

    def check_copy(self, path, size, parts):
        image, label, tracked = self.image, self.label, self.tracked
        copied = False
        for w in self.by_size.get(size, ()):
            if path == w.abs:
                continue
            try:
                if self.sha_of(path) != w.sha():
                    continue
            except OSError:
                continue
            copied = True
            if path in tracked:
                if not image:
                    self.add("tracked-copy", path, "a tracked file identical to %s (%s): the repository repeats "
                             "itself" % (w.rel, label), fails=False)
            else:
                self.add("copy", path, "identical to %s (%s)" % (w.rel, label))
        if copied or image or path in tracked or not install_place(parts):
            return
        for w in self.by_tail.get("/".join(parts[-2:]), ()):
            if path == w.abs:
                continue
            try:
                data = read(path)
            except OSError:
                return
            if data != w.start():
                self.add("install-copy", path, "an installed or built copy of %s that differs from the start state"
                         % w.rel)
            return

    def walk(self, top):
        """Check every regular file below `top` (its proc, sys and dev left out); how many there were."""
        files = 0
        for dirpath, dirnames, filenames in os.walk(top):
            if dirpath == top:
                dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                files += 1
                parts = path.split("/")
                self.check_copy(path, st.st_size, parts)
                if name.endswith(".pyc"):
                    self.check_pyc(path, name, parts)
        return files


def main(args):
    spec = json.loads("".join(args))
    root, repo, label, image = spec["root"].rstrip("/") or "/", spec["repo"].rstrip("/"), spec["label"], spec["image"]
    tracked = tracked_files(repo)
    if spec["watched"] is None:
        watched = [Watched(repo, image, p[len(repo) + 1:]) for p in sorted(tracked)
                   if p.endswith(".py") and os.path.isfile(p)]
    else:
        watched = [Watched(repo, image, w["path"], w["size"], w["sha256"], w.get("text")) for w in spec["watched"]]
    search = Search(watched, tracked, label, image, spec["min_bytes"])
    files = search.walk(root)
    print(json.dumps({"findings": search.findings, "more": search.more, "files": files, "watched": len(watched)}))


if __name__ == "__main__":
    main(sys.argv[1:])
