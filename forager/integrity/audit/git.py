"""The `git` probe (pure): anything in the repository's git data beyond the start commit.

Refs, reflogs, stashes and unreachable objects, remotes, leftover ORIG_HEAD-style files, borrowed objects,
other worktrees, an index that differs from HEAD, and other repositories on the filesystem; every finding
fails. The script is `scripts/git_probe.sh`; it prints "finding<TAB>KIND<TAB>DETAIL" lines, then "done".
"""

from __future__ import annotations

from forager.integrity.audit.models import Finding
from forager.integrity.audit.probe import Probe, ProbeOutputError, script
from forager.integrity.audit.subject import AuditSubject

GIT_SCRIPT = script("git_probe.sh")


def render_git(subject: AuditSubject) -> list[str]:
    return ["bash", "-c", GIT_SCRIPT, "git-probe", subject.repo_path, "1" if subject.only_commit else "",
            subject.image_commit or "", subject.root]


def parse_git(_subject: AuditSubject, output: str) -> tuple[list[Finding], str]:
    lines = output.splitlines()
    if not lines or lines[-1].strip() != "done":
        raise ProbeOutputError("the git probe stopped before its end")
    findings = []
    for line in lines[:-1]:
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[0] == "finding":
            findings.append(Finding(kind=parts[1], detail=parts[2], fails=True))
    return findings, ""


GIT = Probe("git", "anything in git beyond the start commit: refs, reflogs, stashes, unreachable objects, remotes, "
            "ORIG_HEAD-style files, other repositories", render_git, parse_git)
