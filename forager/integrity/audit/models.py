"""What an audit finds (pure): findings, each probe's verdict, a start state's audit and an image's report.

A finding fails its probe or is only reported (`Finding.fails`); a probe fails when one of its findings does.
A start state that fails a probe gives its task the invalid reason `leak audit: PROBE: FINDING` (`LEAK_PREFIX`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field, computed_field

from forager import __version__

LEAK_PREFIX = "leak audit: "


class Verdict(StrEnum):
    clean = "clean"  # looked, found nothing
    reported = "reported"  # found things worth knowing, none of them a leak
    failed = "failed"  # found a leak
    skipped = "skipped"  # nothing to look for (no gold patch, no line long enough)
    error = "error"  # could not look: the probe broke (not counted as a leak)


class Finding(BaseModel):
    """One thing a probe found: what kind, where, and whether it fails the probe."""

    kind: str
    detail: str
    path: str | None = None
    fails: bool = True


class ProbeResult(BaseModel):
    name: str
    description: str
    verdict: Verdict
    findings: list[Finding] = Field(default_factory=list)
    note: str = ""  # why skipped, output cut, the error's text
    seconds: float = 0.0

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.fails]

    @property
    def summary(self) -> str:
        """What a table shows: clean / FAILED: n findings / reported: n / skipped / ERROR."""
        if self.verdict == Verdict.failed:
            count = len(self.failures)
            return f"FAILED: {count} finding{'s' if count != 1 else ''}"
        if self.verdict == Verdict.reported:
            return f"reported: {len(self.findings)}"
        return "ERROR" if self.verdict == Verdict.error else self.verdict.value


class SubjectAudit(BaseModel):
    """The audit of one start state: the image's own, or a task's."""

    subject: str  # "image", or the task's instance id
    image_id: int | None = None
    image_tag: str | None = None
    task_id: int | None = None
    probes: list[ProbeResult] = Field(default_factory=list)
    error: str | None = None  # the start state could not be audited at all (the sandbox did not start)
    forager_version: str = __version__
    audited_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0

    @computed_field
    @property
    def failed(self) -> bool:
        return any(p.verdict == Verdict.failed for p in self.probes)

    @computed_field
    @property
    def passed(self) -> bool:
        """Every probe looked and none failed."""
        return self.error is None and all(p.verdict not in (Verdict.failed, Verdict.error) for p in self.probes)

    @computed_field
    @property
    def reason(self) -> str | None:
        """The invalid reason a failing start state gives its task: the first failing probe's first failure."""
        for probe in self.probes:
            if probe.failures:
                return f"{LEAK_PREFIX}{probe.name}: {probe.failures[0].detail}"
        return None


class AuditReport(BaseModel):
    """An image's audit: its own start state and each of its tasks'."""

    image_id: int | None
    repo: str
    tag: str | None
    commit: str | None
    image: SubjectAudit
    tasks: list[SubjectAudit] = Field(default_factory=list)
    invalidated: list[str] = Field(default_factory=list)  # tasks this audit made invalid
    restored: list[str] = Field(default_factory=list)  # tasks an earlier audit made invalid, valid again

    @property
    def subjects(self) -> list[SubjectAudit]:
        return [self.image, *self.tasks]

    @computed_field
    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.subjects)
