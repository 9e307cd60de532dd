"""The `gold-lines` probe (pure): the gold patch's added lines searched for on the whole filesystem.

The script (short: kept here) greps for the subject's gold lines; `classify_matches` says which places fail.
"""

from __future__ import annotations

from collections import Counter

from forager.integrity.audit.models import Finding
from forager.integrity.audit.probe import Probe, ProbeOutputError
from forager.integrity.audit.subject import MIN_LINE, AuditSubject

COMMON_FILES = 5  # a gold line found in more files than this (outside the exemptions) is boilerplate
MAX_MATCHES = 5000  # lines of grep output read
VENDOR_OWNERS = ("pip", "setuptools", "pkg_resources")  # whose `_vendor` folders only get reported

# Prints "PATH:LINE" for each gold line found in a file (grep -o), each pair once, then "done". $1 the root;
# the rest are the lines. Kernel views and devices are left out; grep -r follows no symbolic link below them.
GOLD_SCRIPT = r"""
base=${1%/}
shift
patterns=()
for line in "$@"; do patterns+=(-e "$line"); done
roots=()
for entry in "$base"/* "$base"/.[!.]*; do
  case $entry in "$base/proc"|"$base/sys"|"$base/dev") continue ;; esac
  [ -e "$entry" ] && [ ! -L "$entry" ] && roots+=("$entry")
done
if [ ${#roots[@]} -gt 0 ]; then
  LC_ALL=C grep -rIsoF "${patterns[@]}" -- "${roots[@]}" | LC_ALL=C sort -u | head -n MAX_MATCHES
fi
echo done
""".replace("MAX_MATCHES", str(MAX_MATCHES + 1))


def render_gold(subject: AuditSubject) -> list[str]:
    return ["bash", "-c", GOLD_SCRIPT, "gold-probe", subject.root, *subject.gold_lines]


def match_pairs(output: str, lines: list[str]) -> list[tuple[str, str]]:
    """(path, gold line) pairs from grep's "PATH:LINE" output: the line is the longest one the text ends with
    (a path may hold colons; a line is known)."""
    pairs = []
    by_length = sorted(lines, key=len, reverse=True)
    for text in output.splitlines():
        line = next((line for line in by_length if text.endswith(":" + line) and len(text) > len(line) + 1), None)
        if line is not None:
            pairs.append((text[:-len(line) - 1], line))
    return pairs


def vendored(path: str) -> bool:
    """In pip's or setuptools' own `_vendor` folder: copies of other projects the installers carry."""
    parts = path.split("/")
    return any(part == "_vendor" and i > 0 and parts[i - 1] in VENDOR_OWNERS for i, part in enumerate(parts))


def classify_matches(subject: AuditSubject, pairs: list[tuple[str, str]]) -> list[Finding]:
    """Findings from where gold lines were found. Not failing: the gold patch's own files (they lack the lines
    by construction; skipped), the repository's other tracked files (its own code, which repeats itself),
    installers' `_vendor` folders, and lines found in more than COMMON_FILES other files (boilerplate). Every
    other file fails: it holds a line of the fix that the start state does not."""
    repo = subject.repo_path.rstrip("/") + "/"
    tracked, changed = set(subject.tracked), set(subject.start_texts) | set(subject.fixed_texts)
    placed: list[tuple[str, str, str]] = []  # (kind, path, line)
    for path, line in pairs:
        inside = path[len(repo):] if path.startswith(repo) else None
        if inside is not None and inside in changed:
            continue
        placed.append(("tracked" if inside is not None and inside in tracked else
                       "vendored" if vendored(path) else "copy", path, line))
    spread = Counter(line for kind, _path, line in placed if kind == "copy")
    findings = []
    for kind, path, line in placed:
        if kind == "copy" and spread[line] > COMMON_FILES:
            kind = "common"
        detail = {
            "copy": "holds a line of the fix",
            "tracked": "a tracked file of the repository holds a line of the fix (its own code repeats itself)",
            "vendored": "an installer's vendored copy holds a line of the fix",
            "common": f"holds a line of the fix that {spread[line]} files hold (boilerplate)",
        }[kind]
        findings.append(Finding(kind=kind, path=path, detail=f"{path}: {detail}: {line!r}", fails=kind == "copy"))
    return findings


def parse_gold(subject: AuditSubject, output: str) -> tuple[list[Finding], str]:
    lines = output.splitlines()
    if not lines or lines[-1].strip() != "done":
        raise ProbeOutputError("the gold-lines probe stopped before its end")
    body = lines[:-1]
    note = f"{len(subject.gold_lines)} lines of {MIN_LINE}+ characters searched"
    if len(body) > MAX_MATCHES:
        body, note = body[:MAX_MATCHES], note + f"; output cut at {MAX_MATCHES} matches"
    return classify_matches(subject, match_pairs("\n".join(body), subject.gold_lines)), note


def skip_gold(subject: AuditSubject) -> str | None:
    if not subject.has_gold:
        return "no gold patch: nothing to look for"
    if not subject.gold_lines:
        return f"no added line of {MIN_LINE}+ characters that the start state lacks: nothing distinctive to look for"
    return None


GOLD = Probe("gold-lines", f"the gold patch's added lines ({MIN_LINE}+ characters) anywhere on the filesystem",
             render_gold, parse_gold, skip_gold)
