"""The leak audit in real containers: the example's image and mutate-fix task start clean; each probe, run in the
sandbox an agent would get, catches a leak planted there; a failing task becomes invalid and valid again once its
start state passes; `forager audit` prints the reports."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from forager.engine.docker_engine import LABEL, OWNER_LABELS
from forager.integrity.audit import LEAK_PREFIX, PROBE_NAMES, Verdict, audit_image, run_probes
from forager.sandbox.container import Sandbox
from forager.sandbox.models import ToolCall
from forager.store import Task

from .conftest import example_tasks, run_cli

SITE = "/opt/venv/lib/python3.11/site-packages"
ACCOUNTS = "src/ledger/accounts.py"
# a bug whose fix adds a line long enough to search for (the example task's fix, `return total`, is too short)
MONEY_BUG = """--- a/src/ledger/money.py
+++ b/src/ledger/money.py
@@ -12,4 +12,4 @@
         raise ValueError(f"not an amount: {text!r}")
     cents = int(whole or "0") * 100 + int((frac + "00")[:2])
-    return -cents if negative else cents
+    return cents if negative else -cents
 
"""
MONEY_FIX = """--- a/src/ledger/money.py
+++ b/src/ledger/money.py
@@ -12,4 +12,4 @@
         raise ValueError(f"not an amount: {text!r}")
     cents = int(whole or "0") * 100 + int((frac + "00")[:2])
-    return cents if negative else -cents
+    return -cents if negative else cents
 
"""
MONEY_LINE = "return -cents if negative else cents"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory, engine):
    """The example's image and its one valid mutate-fix task: (settings, store, image, task, pre-bug accounts.py)."""
    settings, store, _builder, repo, tasks = example_tasks(tmp_path_factory.mktemp("audit"), engine, mutate=1,
                                                           mine=False)
    (task,) = tasks
    assert task.path == ACCOUNTS, task  # the planted copies below are of the file the bug changes
    return settings, store, store.image(task.image_id), task, (repo / ACCOUNTS).read_text()


@contextmanager
def started(engine, image, start_patch: str = ""):
    """The sandbox an agent gets: the image's start state, or a task's with its bug applied."""
    with Sandbox(engine, image.tag) as box:
        box.start(start_patch)
        yield box


def sh(box, command: str) -> str:
    code, output = box.container.exec_run(["bash", "-c", command], workdir="/testbed")
    assert code == 0, output.decode()
    return output.decode()


def put(box, path: str, text: str) -> None:
    """Write a file as the agent would (its create tool)."""
    result = box.execute(ToolCall(name="create", arguments={"path": path, "content": text}))
    assert not result.error, result.output


def probe(box, name: str, task=None, image=None):
    (result,) = run_probes(box, task, image, repo_name="ledger", only=[name])
    return result


def test_the_clean_example_passes_every_probe(ledger, engine):
    settings, store, image, task, _original = ledger
    report = audit_image(engine, settings, store, image)
    assert [s.subject for s in report.subjects] == ["image", task.instance_id]
    for subject in report.subjects:
        verdicts = {p.name: p.verdict for p in subject.probes}
        # the task's fix (`return total`) is shorter than the gold-line minimum: nothing to search for
        assert verdicts == {"git": "clean", "pre-bug-source": "clean", "gold-lines": "skipped", "caches": "clean"}, \
            subject
    assert report.passed and not report.invalidated
    stored = store.image(image.id).audit
    assert stored["passed"] is True and [p["name"] for p in stored["probes"]] == list(PROBE_NAMES)
    row = store.task(task.instance_id)
    assert row.valid and row.integrity["audit"]["passed"] is True
    assert row.integrity["audit"]["forager_version"] and row.integrity["audit"]["audited_at"]


def test_git_probe_catches_history_beyond_the_start(ledger, engine):
    _settings, _store, image, task, original = ledger
    with started(engine, image, task.bug_patch) as box:
        put(box, "/tmp/orig.py", original)
        sh(box, "git tag future $(git commit-tree 'HEAD^{tree}' -p HEAD -m 'the fix')"
                " && git hash-object -w /tmp/orig.py"
                " && echo '# wip' >> src/ledger/money.py && git stash -q && git remote add origin https://example.com/l"
                " && cp .git/HEAD .git/ORIG_HEAD && git clone -q /testbed /root/ledger-copy")
        result = probe(box, "git", task, image)
    kinds = {f.kind for f in result.findings}
    assert result.verdict == Verdict.failed
    assert {"tag", "unreachable", "stash", "reflog", "remote", "head-file", "other-repo"} <= kinds, result
    # the image's start state keeps its past (ancestors and their tags) but not a commit past HEAD
    with started(engine, image) as box:
        assert probe(box, "git", image=image).verdict == Verdict.clean
        sh(box, "git tag v0.0.1 HEAD~1 && git tag future $(git commit-tree 'HEAD^{tree}' -p HEAD -m 'the fix')")
        result = probe(box, "git", image=image)
    assert [(f.kind, f.detail.split(" ->")[0]) for f in result.findings] == [("tag", "refs/tags/future")], result


def test_pre_bug_source_probe_catches_copies_and_bytecode(ledger, engine):
    _settings, _store, image, task, original = ledger
    with started(engine, image, task.bug_patch) as box:
        put(box, "/tmp/accounts.py", original)
        sh(box, "python -c \"import py_compile; py_compile.compile('/tmp/accounts.py',"
                " cfile='/testbed/src/ledger/__pycache__/accounts.cpython-311.pyc', doraise=True)\""
                " && mkdir -p /usr/lib/python3/site-packages/ledger"
                " && mv /tmp/accounts.py /usr/lib/python3/site-packages/ledger/accounts.py"
                f" && mkdir -p {SITE}/ledger"
                f" && (cat src/ledger/accounts.py; echo '# built') > {SITE}/ledger/accounts.py")
        result = probe(box, "pre-bug-source", task, image)
    found = {f.kind: f for f in result.findings}
    assert result.verdict == Verdict.failed and set(found) == {"stale-pyc", "copy", "install-copy"}, result
    assert found["stale-pyc"].path == "/testbed/src/ledger/__pycache__/accounts.cpython-311.pyc"
    assert "compiled from src/ledger/accounts.py (the pre-bug source)" in found["stale-pyc"].detail
    assert found["copy"].path == "/usr/lib/python3/site-packages/ledger/accounts.py"
    assert found["install-copy"].path == f"{SITE}/ledger/accounts.py"
    # the image: a build's copy of a tracked source, and bytecode beside one, leak into every later task
    with started(engine, image) as box:
        sh(box, "mkdir -p build/lib/ledger && cp src/ledger/money.py build/lib/ledger/"
                " && python -c \"import py_compile; py_compile.compile('src/ledger/accounts.py', doraise=True)\"")
        result = probe(box, "pre-bug-source", image=image)
    assert {(f.kind, f.path) for f in result.findings} == {
        ("copy", "/testbed/build/lib/ledger/money.py"),
        ("pyc", "/testbed/src/ledger/__pycache__/accounts.cpython-311.pyc")}, result


def test_gold_lines_probe_catches_a_line_of_the_fix(ledger, engine):
    _settings, _store, image, task, _original = ledger
    money = Task(instance_id="ledger__planted", kind="mutate-fix", repo_id=task.repo_id, image_id=image.id,
                 bug_patch=MONEY_BUG, gold_patch=MONEY_FIX)
    with started(engine, image, money.bug_patch) as box:
        assert probe(box, "gold-lines", money, image).verdict == Verdict.clean
        sh(box, f"echo '    {MONEY_LINE}' > {SITE}/pip/_vendor/planted.py")
        vendored = probe(box, "gold-lines", money, image)
        sh(box, f"echo 'x = 1; {MONEY_LINE}' > /var/notes.txt")
        result = probe(box, "gold-lines", money, image)
    assert vendored.verdict == Verdict.reported and [f.kind for f in vendored.findings] == ["vendored"], vendored
    assert result.verdict == Verdict.failed, result
    assert [(f.kind, f.path, f.fails) for f in result.findings] == [
        ("copy", "/var/notes.txt", True), ("vendored", f"{SITE}/pip/_vendor/planted.py", False)]


def test_caches_probe_reports_caches_and_fails_on_the_projects_wheel(ledger, engine):
    _settings, _store, image, task, _original = ledger
    with started(engine, image, task.bug_patch) as box:
        sh(box, "mkdir -p /root/.cache/pip/http && head -c 3000 /dev/zero > /root/.cache/pip/http/body")
        reported = probe(box, "caches", task, image)
        sh(box, "mkdir -p /root/.cache/pip/wheels/ab && cd src && python -c \"import zipfile;"
                " zipfile.ZipFile('/root/.cache/pip/wheels/ab/ledger-0.1.0-py3-none-any.whl', 'w')"
                ".write('ledger/accounts.py')\"")
        result = probe(box, "caches", task, image)
    assert reported.verdict == Verdict.reported and [f.detail for f in reported.findings] == [
        "/root/.cache/pip: 2.9 KB in 1 file"], reported
    assert result.verdict == Verdict.failed and result.findings[0].kind == "project-archive", result
    assert result.findings[0].path == "/root/.cache/pip/wheels/ab/ledger-0.1.0-py3-none-any.whl"


def test_a_leaking_task_becomes_invalid_and_valid_again_once_clean(ledger, engine):
    settings, store, image, task, _original = ledger
    row = store.task(task.instance_id)
    row.integrity = {**row.integrity, "determinism": {"runs": 3}}
    store.save_task(row)
    leaky_tag = f"{settings.image_prefix}/ledger-leaky:audit"
    container = engine.client.containers.run(
        image.tag,
        ["bash", "-c", "mkdir -p /root/.cache/pip/wheels && touch /root/.cache/pip/wheels/ledger-0.1.0.tar.gz"],
        detach=True, network_mode="none", labels={LABEL: "1", **OWNER_LABELS})
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0
        container.commit(*leaky_tag.split(":"))
    finally:
        container.remove(force=True)
    leaky = audit_image(engine, settings, store, image.model_copy(update={"tag": leaky_tag}), [row])
    assert leaky.invalidated == [task.instance_id] and not leaky.passed
    row = store.task(task.instance_id)
    assert not row.valid and row.invalid_reason.startswith(f"{LEAK_PREFIX}caches: /root/.cache/pip/wheels/ledger-0.1.0")
    assert row.integrity["determinism"] == {"runs": 3} and row.integrity["audit"]["failed"] is True
    clean = audit_image(engine, settings, store, image, [row])
    assert clean.restored == [task.instance_id] and clean.passed
    row = store.task(task.instance_id)
    assert row.valid and row.invalid_reason is None and row.integrity["audit"]["passed"] is True
    assert row.integrity["determinism"] == {"runs": 3}


def test_cli_prints_the_reports_and_refuses_bad_input(ledger):
    settings, _store, image, task, _original = ledger
    result = run_cli("audit", "--json", settings=settings)
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    assert report["image_id"] == image.id and report["passed"] is True
    assert [t["subject"] for t in report["tasks"]] == [task.instance_id]
    table = run_cli("audit", "--repo", "ledger", settings=settings)
    assert table.returncode == 0 and "leak audit" in table.stdout and "skipped" in table.stdout, table.stderr
    unknown = run_cli("audit", "--repo", "nope", settings=settings)
    assert unknown.returncode == 2 and "--repo 'nope': no such repository" in unknown.stderr