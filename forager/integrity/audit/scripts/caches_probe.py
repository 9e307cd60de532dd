"""The caches probe's program: what the cache and temporary folders hold, and archives of the project anywhere.

It runs inside the audited container, under the image's own interpreter (`python3 -I -S -B -c TEXT SPEC`,
rendered by forager/integrity/audit/caches.py), where forager is not installed: so it imports only the standard
library and keeps to syntax old Pythons read (no f-strings). Importing it runs nothing.

Input: JSON {root, repo, names}. Reports each entry of the cache folders (~/.cache/* of root and /home/*, /tmp/*,
/var/tmp/*, $PIP_CACHE_DIR, $UV_CACHE_DIR, $XDG_CACHE_HOME) with its size; walks the filesystem (leaving out
/proc, /sys and /dev) for archives of the project (wheels, sdists, eggs; and unpacked .dist-info/.egg-info in the
caches), the project's names being the given ones and those of distributions installed from the repository.
Prints JSON: findings (the first 200), names, more (left out).
"""

import json
import os
import re
import stat
import subprocess
import sys

EXTS = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".zip", ".egg")
INFO = (".dist-info", ".egg-info")
MAX_FINDINGS = 200  # forager's MAX_FINDINGS: the rest are only counted


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_of(name):
    """The distribution an archive's or metadata folder's name belongs to (None: not one of those)."""
    for ext in EXTS + INFO:
        if name.endswith(ext):
            stem = name[: -len(ext)]
            segs = stem.split("-")
            for i in range(1, len(segs)):
                if segs[i][:1].isdigit():
                    return "-".join(segs[:i])
            return stem if ext in INFO else None
    return None


def size_of(path):
    """(bytes, files) of a file or a folder's tree."""
    total = count = 0
    try:
        st = os.lstat(path)
    except OSError:
        return 0, 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size, 1
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
                count += 1
            except OSError:
                pass
    return total, count


def human(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024


def cache_folders(base):
    """The cache and temporary folders below `base` that exist (no link), each once."""
    homes = [base + "/root"]
    try:
        homes += sorted(os.path.join(base + "/home", h) for h in os.listdir(base + "/home"))
    except OSError:
        pass
    caches = [h + "/.cache" for h in homes] + [base + "/tmp", base + "/var/tmp"]
    for var in ("PIP_CACHE_DIR", "UV_CACHE_DIR", "XDG_CACHE_HOME"):
        if os.environ.get(var, "").startswith("/"):
            caches.append(base + os.environ[var].rstrip("/"))
    return [c for i, c in enumerate(caches) if c not in caches[:i] and os.path.isdir(c) and not os.path.islink(c)]


def find_archives(top, repo, caches, names):
    """(path, distribution, what) of each archive below `top` and each unpacked copy in `caches`; the names of
    distributions installed from `repo` are added to `names`."""

    def in_cache(path):
        return any(path.startswith(c + "/") for c in caches)

    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath == top:
            dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
        for name in dirnames:
            if not name.endswith(INFO):
                continue
            path = os.path.join(dirpath, name)
            dist = dist_of(name)
            try:
                with open(os.path.join(path, "direct_url.json")) as handle:
                    url = json.load(handle).get("url", "")
            except (OSError, ValueError, AttributeError):
                url = ""
            if dist and (url.rstrip("/") == "file://" + repo or path.startswith(repo + "/")):
                names.add(norm(dist))
            if dist and in_cache(path):
                found.append((path, dist, "an unpacked copy"))
        for name in filenames:
            if name.endswith(EXTS) and ".editable" not in name:  # an editable wheel points at the repository, no copy
                dist = dist_of(name)
                if dist:
                    found.append((os.path.join(dirpath, name), dist, "an archive"))
    return found


def main(args):
    spec = json.loads(args[0])
    base, repo = spec["root"].rstrip("/"), spec["repo"].rstrip("/")
    findings, more = [], [0]

    def add(kind, path, detail, fails):
        if len(findings) < MAX_FINDINGS:
            findings.append({"kind": kind, "path": path, "detail": detail, "fails": fails})
        else:
            more[0] += 1

    listed = subprocess.run(["git", "-C", repo, "ls-files", "-z"], capture_output=True).stdout
    tracked = {os.path.join(repo, p) for p in listed.decode("utf-8", "surrogateescape").split("\0") if p}
    caches = cache_folders(base)
    for cache in caches:
        for entry in sorted(os.listdir(cache)):
            path = os.path.join(cache, entry)
            size, count = size_of(path)
            add("cache", path, "%s: %s in %d file%s" % (path, human(size), count, "" if count == 1 else "s"), False)
    names = {norm(n) for n in spec["names"] if n}
    for path, dist, what in find_archives(base or "/", repo, caches, names):
        if norm(dist) in names and path not in tracked:
            add("project-archive", path, "%s: %s of the project %s (its source before the task)" % (path, what, dist),
                True)
    print(json.dumps({"findings": findings, "names": sorted(names), "more": more[0]}))


if __name__ == "__main__":
    main(sys.argv[1:])
