"""The `caches` probe (pure): caches and temporary folders with their sizes (reported), and archives of the
project itself (wheels, sdists, unpacked copies: failing). The program is `scripts/caches_probe.py`.
"""

from __future__ import annotations

import json

from forager.integrity.audit.models import Finding
from forager.integrity.audit.probe import PYTHON, Probe, json_findings, json_output, script
from forager.integrity.audit.subject import AuditSubject

CACHES_SCRIPT = script("caches_probe.py")


def render_caches(subject: AuditSubject) -> list[str]:
    spec = {"root": subject.root, "repo": subject.repo_path, "names": subject.project_names}
    return [*PYTHON, "-c", CACHES_SCRIPT, json.dumps(spec)]


def parse_caches(_subject: AuditSubject, output: str) -> tuple[list[Finding], str]:
    data = json_output(output, "caches")
    findings, note = json_findings(data)
    names = ", ".join(data.get("names") or []) or "none found"
    return findings, f"project names: {names}" + (f"; {note}" if note else "")


CACHES = Probe("caches", "caches and temporary folders (reported with sizes); archives of the project (failing)",
               render_caches, parse_caches)
