"""The `pre-bug-source` probe (pure): copies of the files the fix changes in the form the fix leaves them.

For a mutate-fix task that form is the source before the bug: identical files anywhere, bytecode compiled from
them or gone stale beside them, install and build copies (site-packages, build/lib) that differ from the start
state. For the image: copies of tracked sources outside the repository, and bytecode beside them (what every
later task would inherit). The program is `scripts/source_probe.py`; its input is `source_spec`.
"""

from __future__ import annotations

import hashlib
import json

from forager.integrity.audit.models import Finding
from forager.integrity.audit.probe import PYTHON, Probe, json_findings, json_output, script
from forager.integrity.audit.subject import AuditSubject

MIN_COPY_BYTES = 256  # the image's tracked sources smaller than this are too generic to look for as copies
ARG_CHUNK = 100_000  # characters per argument (Linux refuses one argument over 128 KiB)
ARG_BUDGET = 1_500_000  # characters of arguments in all (Linux allows about 2 MiB with the environment)
SOURCE_SCRIPT = script("source_probe.py")


def source_spec(subject: AuditSubject, budget: int = ARG_BUDGET) -> dict:
    """The source script's input: for a task, the changed files as the fix leaves them (texts dropped, largest
    first, past the argument budget: those are then found as copies but not compared as bytecode)."""
    watched = None
    if not subject.is_image:
        watched = []
        for path, text in sorted(subject.fixed_texts.items(), key=lambda item: len(item[1])):
            data = text.encode("utf-8", "surrogateescape")
            budget -= len(json.dumps(text))
            watched.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                            "text": text if budget > 0 else None})
    return {"root": subject.root, "repo": subject.repo_path, "label": subject.label, "image": subject.is_image,
            "min_bytes": MIN_COPY_BYTES, "watched": watched}


def chunked(text: str, size: int = ARG_CHUNK) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def render_source(subject: AuditSubject) -> list[str]:
    return [*PYTHON, "-c", SOURCE_SCRIPT, *chunked(json.dumps(source_spec(subject)))]


def parse_source(_subject: AuditSubject, output: str) -> tuple[list[Finding], str]:
    data = json_output(output, "pre-bug-source")
    findings, note = json_findings(data)
    walked = f"{data.get('files', 0)} files walked, {data.get('watched', 0)} sources watched"
    return findings, f"{walked}; {note}" if note else walked


def skip_source(subject: AuditSubject) -> str | None:
    if subject.has_gold and not subject.fixed_texts:
        return "the gold patch's changes could not be rebuilt as files (renames, binary changes or deletions only)"
    return None


SOURCE = Probe("pre-bug-source", "copies of the changed files as the fix leaves them: identical files, bytecode "
               "compiled from them or stale beside them, install and build copies", render_source, parse_source,
               skip_source)
