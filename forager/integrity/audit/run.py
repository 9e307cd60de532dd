"""The leak audit's container edge: start the sandbox an agent would get, survey it, run the probes, store results.

Docker, the sandbox and the store are imported where they are used, so that importing the audit's pure
modules (through this package) loads none of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

from forager.integrity.audit.caches import CACHES
from forager.integrity.audit.git import GIT
from forager.integrity.audit.gold import GOLD
from forager.integrity.audit.models import LEAK_PREFIX, AuditReport, ProbeResult, SubjectAudit
from forager.integrity.audit.probe import PROBE_TIMEOUT, PYTHON, ProbeOutputError, apply_outcome, script
from forager.integrity.audit.source import SOURCE
from forager.integrity.audit.subject import AuditSubject, make_subject
from forager.tasks.patches import touched_files

PROBES = (GIT, SOURCE, GOLD, CACHES)  # in the order they run
PROBE_NAMES = tuple(p.name for p in PROBES)
SURVEY_SCRIPT = script("survey.py")


def _exec(sandbox, argv: list[str]) -> tuple[int, str, str]:
    """Run a command in the sandbox's container as root, outside the agent's shell; (exit code, stdout, stderr)."""
    from forager.sandbox.container import SHELL_ENV

    code, (out, err) = sandbox.container.exec_run(["timeout", str(PROBE_TIMEOUT), *argv], environment=SHELL_ENV,
                                                  workdir="/", demux=True)
    return code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")


def survey(sandbox, task=None, image=None, *, repo_name: str = "") -> AuditSubject:
    """What the probes need from the started container: its tracked files and the changed files' start texts."""
    gold = task.gold_patch if task is not None else ""
    changed = touched_files(gold) if gold else []
    code, out, err = _exec(sandbox, [*PYTHON, "-c", SURVEY_SCRIPT, sandbox.repo_path, *changed])
    if code != 0:
        raise ProbeOutputError(f"could not read the repository at {sandbox.repo_path}: "
                               f"{(err or out).strip().splitlines()[-1:] or f'exit code {code}'}")
    data = json.loads(out)
    return make_subject(
        sandbox.repo_path, tracked=data["tracked"], texts=data["texts"], gold_patch=gold,
        bug_patch=task.bug_patch if task is not None else "", kind=task.kind if task is not None else None,
        subject=task.instance_id if task is not None else "image",
        image_commit=image.commit if image is not None else None, project_names=[repo_name],
    )


def run_probes(sandbox, task=None, image=None, *, repo_name: str = "",
               only: Iterable[str] | None = None) -> list[ProbeResult]:
    """Run the probes (all, or those named in `only`) in an already started sandbox: the start state of `task`
    (the sandbox started with its bug patch), or of the image (`task` None)."""
    subject = survey(sandbox, task, image, repo_name=repo_name)
    wanted = set(only) if only is not None else set(PROBE_NAMES)
    results = []
    for probe in PROBES:
        if probe.name not in wanted:
            continue
        if why := probe.skip(subject):
            results.append(probe.skipped(why))
            continue
        started = time.monotonic()
        code, out, err = _exec(sandbox, probe.render(subject))
        results.append(apply_outcome(probe, subject, code, out, err, time.monotonic() - started))
    return results


def audit_start_state(engine, settings, image, task=None, *, repo_name: str = "") -> SubjectAudit:
    """Start the sandbox an agent would get (the task's bug patch applied; none for the image), run every
    probe in it, remove it. A start state that cannot be started or surveyed is an audit with an error."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    from forager.sandbox.container import Sandbox
    from forager.sandbox.errors import SandboxError

    started = time.monotonic()
    audit = SubjectAudit(subject=task.instance_id if task is not None else "image", image_id=image.id,
                         image_tag=image.tag, task_id=task.id if task is not None else None)
    try:
        if not image.tag or not engine.image_exists(image.tag):
            raise SandboxError(f"image {image.tag} is not on this Docker engine (rebuild or pull it)")
        with Sandbox(engine, image.tag, repo_path=settings.repo_path, labels={"forager.role": "audit"}) as sandbox:
            sandbox.start(task.bug_patch if task is not None else "")
            audit.probes = run_probes(sandbox, task, image, repo_name=repo_name)
    except (SandboxError, ProbeOutputError, DockerException, RequestException, OSError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        audit.error = f"{exc.__class__.__name__}: {text[0] if text else ''}"[:500]
    audit.seconds = round(time.monotonic() - started, 3)
    return audit


def tasks_to_audit(store, image) -> list:
    """The image's tasks worth auditing: valid ones, and those an earlier audit made invalid."""
    return [task for task, _repo in store.tasks() if task.image_id == image.id
            and (task.valid or (task.invalid_reason or "").startswith(LEAK_PREFIX))]


def record_image(store, image_id: int, audit: SubjectAudit) -> None:
    """images.audit := this audit (only that column: other writers may hold the row)."""
    from forager.store import Image
    from forager.store.tables import utcnow

    with store.session() as s:
        row = s.get(Image, image_id)
        if row is None:
            return
        row.audit = audit.model_dump(mode="json")
        row.updated_at = utcnow()
        s.add(row)
        s.commit()


def record_task(store, task_id: int, audit: SubjectAudit) -> str | None:
    """tasks.integrity["audit"] := this audit, keeping the other keys; a valid task that fails becomes invalid,
    one an earlier audit made invalid becomes valid when it passes. Returns "invalidated", "restored" or None."""
    from forager.store import Task
    from forager.store.tables import utcnow

    with store.session() as s:
        row = s.get(Task, task_id)
        if row is None:
            return None
        row.integrity = {**(row.integrity or {}), "audit": audit.model_dump(mode="json")}
        change = None
        if audit.failed and row.valid:
            row.valid, row.invalid_reason, change = False, audit.reason, "invalidated"
        elif audit.passed and not row.valid and (row.invalid_reason or "").startswith(LEAK_PREFIX):
            row.valid, row.invalid_reason, change = True, None, "restored"
        row.updated_at = utcnow()
        s.add(row)
        s.commit()
        return change


def audit_image(engine, settings, store, image, tasks: list | None = None, *,
                on_subject: Callable[[str], None] | None = None) -> AuditReport:
    """Audit the image's start state and each task's (default: `tasks_to_audit`), and store the results."""
    repo = store.repo(image.repo_id)
    repo_name = repo.name if repo is not None else ""
    tasks = tasks_to_audit(store, image) if tasks is None else tasks
    report = AuditReport(image_id=image.id, repo=repo_name, tag=image.tag, commit=image.commit,
                         image=SubjectAudit(subject="image"))
    if on_subject:
        on_subject(f"image {image.id}")
    report.image = audit_start_state(engine, settings, image, repo_name=repo_name)
    if image.id is not None:
        record_image(store, image.id, report.image)
    for task in tasks:
        if on_subject:
            on_subject(f"task {task.instance_id}")
        audit = audit_start_state(engine, settings, image, task, repo_name=repo_name)
        report.tasks.append(audit)
        if task.id is not None:
            change = record_task(store, task.id, audit)
            if change == "invalidated":
                report.invalidated.append(task.instance_id)
            elif change == "restored":
                report.restored.append(task.instance_id)
    return report
