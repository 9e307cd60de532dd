"""The survey's program: what the leak audit reads from a started container before its probes run.

It runs inside the audited container, under the image's own interpreter (`python3 -I -S -B -c TEXT REPO PATH...`,
by forager/integrity/audit/run.py), where forager is not installed: so it imports only the standard library and
keeps to syntax old Pythons read. Importing it runs nothing.

Prints JSON: tracked (the paths git tracks in REPO) and texts (each PATH's text in REPO, null for one missing or
not UTF-8).
"""

import json
import os
import subprocess
import sys


def main(args):
    repo, paths = args[0], args[1:]
    listed = subprocess.run(["git", "-C", repo, "ls-files", "-z"], capture_output=True, check=True).stdout
    texts = {}
    for path in paths:
        try:
            with open(os.path.join(repo, path), "rb") as handle:
                texts[path] = handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            texts[path] = None
    tracked = [p for p in listed.decode("utf-8", "surrogateescape").split("\0") if p]
    print(json.dumps({"tracked": tracked, "texts": texts}))


if __name__ == "__main__":
    main(sys.argv[1:])
