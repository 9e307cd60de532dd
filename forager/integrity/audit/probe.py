"""What a probe is (pure): a script rendered from the subject, a parser of what it printed, a rule for skipping.

Each probe module (git, source, gold, caches) builds one `Probe`; `apply_outcome` turns how its script ended in
the container into the probe's result. The scripts that are programs of their own lie in `scripts/` beside this
file, read once here and handed to the container's `python3 -c` or `bash -c` (the container has no forager).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forager.integrity.audit.models import Finding, ProbeResult, Verdict
from forager.integrity.audit.subject import AuditSubject

MAX_FINDINGS = 200  # kept per probe (the scripts stop collecting there too)
PROBE_TIMEOUT = 300  # seconds one probe may run in the container
PYTHON = ["python3", "-I", "-S", "-B"]  # the image's python; isolated, no site (no .pth code), writes no .pyc
SCRIPTS = Path(__file__).with_name("scripts")


def script(name: str) -> str:
    """The text of a script in `scripts/`, as the container runs it."""
    return (SCRIPTS / name).read_text()


class ProbeOutputError(ValueError):
    """A probe's script printed something its parser cannot read (it crashed, or was cut off)."""


@dataclass(frozen=True)
class Probe:
    name: str  # stable: the invalid reason and the stored records name it
    description: str
    render: Callable[[AuditSubject], list[str]]  # the command run in the container
    parse: Callable[[AuditSubject, str], tuple[list[Finding], str]]  # (findings, note) from its stdout
    skip: Callable[[AuditSubject], str | None] = lambda _subject: None  # why there is nothing to look for

    def result(self, findings: list[Finding], note: str = "", seconds: float = 0.0) -> ProbeResult:
        """The probe's verdict from its findings: failed if one fails, reported if any, clean if none."""
        findings = sorted(findings, key=lambda f: not f.fails)  # failures first: the reason names one
        verdict = Verdict.failed if any(f.fails for f in findings) else Verdict.reported if findings else Verdict.clean
        return ProbeResult(name=self.name, description=self.description, verdict=verdict,
                           findings=findings[:MAX_FINDINGS], note=note, seconds=round(seconds, 3))

    def skipped(self, why: str) -> ProbeResult:
        return ProbeResult(name=self.name, description=self.description, verdict=Verdict.skipped, note=why)

    def broken(self, why: str, seconds: float = 0.0) -> ProbeResult:
        return ProbeResult(name=self.name, description=self.description, verdict=Verdict.error, note=why[:2000],
                           seconds=round(seconds, 3))


def apply_outcome(probe: Probe, subject: AuditSubject, exit_code: int, stdout: str, stderr: str,
                  seconds: float = 0.0) -> ProbeResult:
    """A probe's result from how its script ended (pure): a timeout, a crash or unreadable output is an error."""
    if exit_code == 124:
        return probe.broken(f"timed out after {PROBE_TIMEOUT}s", seconds)
    try:
        if exit_code != 0:
            raise ProbeOutputError(f"exit code {exit_code}")
        findings, note = probe.parse(subject, stdout)
    except (ProbeOutputError, ValueError) as exc:
        tail = " | ".join((stderr or stdout).strip().splitlines()[-3:])
        return probe.broken(f"{exc}{': ' + tail if tail else ''}", seconds)
    return probe.result(findings, note, seconds)


def json_output(output: str, probe: str) -> dict:
    """The JSON object a Python script prints last: its findings (a list) and counts."""
    try:
        data = json.loads(output.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise ProbeOutputError(f"the {probe} probe printed no result") from None
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        raise ProbeOutputError(f"the {probe} probe printed no findings")
    return data


def json_findings(data: dict) -> tuple[list[Finding], str]:
    """The findings of a script's JSON output, and a note of how many it left out."""
    findings = [Finding.model_validate(item) for item in data["findings"]]
    more = int(data.get("more") or 0)
    return findings, f"{more} more findings left out" if more else ""
