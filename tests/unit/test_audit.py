"""The leak audit's pure pieces: subjects from patches, probe scripts' rendering, their outputs parsed into findings
and verdicts; and the probe scripts themselves run on a planted folder of this machine (no Docker)."""

from __future__ import annotations

import hashlib
import json
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from forager.integrity.audit import (
    CACHES, COMMON_FILES, GIT, GOLD, LEAK_PREFIX, MIN_LINE, PROBE_NAMES, SOURCE, AuditSubject, Finding,
    ProbeOutputError, ProbeResult, SubjectAudit, Verdict, added_lines, apply_outcome, chunked, classify_matches, fixed_text, gold_lines,
    make_subject, match_pairs, parse_caches, parse_git, parse_gold, parse_source, source_spec, vendored,
)
from forager.tasks.patches import file_changes

ORIGINAL = '''"""Amounts."""


def parse_amount(text):
    negative = text.startswith("-")
    cents = int(text.strip("-"))
    return -cents if negative else cents


def double(x):
    return x * 2
'''
BUGGY = ORIGINAL.replace("return -cents if negative else cents", "return cents if negative else -cents")
BUG = """--- a/src/ledger/money.py
+++ b/src/ledger/money.py
@@ -5,5 +5,5 @@
     negative = text.startswith("-")
     cents = int(text.strip("-"))
-    return -cents if negative else cents
+    return cents if negative else -cents
 
 
"""
GOLD_PATCH = """--- a/src/ledger/money.py
+++ b/src/ledger/money.py
@@ -5,5 +5,5 @@
     negative = text.startswith("-")
     cents = int(text.strip("-"))
-    return cents if negative else -cents
+    return -cents if negative else cents
 
 
"""
LINE = "return -cents if negative else cents"


def task_subject(**overrides) -> AuditSubject:
    subject = make_subject("/testbed", tracked=["src/ledger/money.py", "src/ledger/other.py", "README"],
                           texts={"src/ledger/money.py": BUGGY}, gold_patch=GOLD_PATCH, bug_patch=BUG,
                           kind="mutate-fix", subject="ledger__mutate-1", image_commit="abc", project_names=["ledger"])
    return subject.model_copy(update=overrides)


# -- subjects --------------------------------------------------------------------------------------


def test_the_fixed_form_is_the_start_with_the_gold_patch_applied():
    assert fixed_text(BUGGY, file_changes(GOLD_PATCH)[0]) == ORIGINAL
    # a hunk whose old lines the file lacks, a deletion, a created file
    assert fixed_text(ORIGINAL, file_changes(GOLD_PATCH)[0]) is None
    deleted = "--- a/x.py\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-x = 1\n"
    assert fixed_text("x = 1\n", file_changes(deleted)[0]) is None
    created = "--- /dev/null\n+++ b/y.py\n@@ -0,0 +1,2 @@\n+a = 1\n+b = 2\n"
    assert fixed_text("", file_changes(created)[0]) == "a = 1\nb = 2\n"


def test_two_hunks_are_placed_in_order():
    text = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"
    diff = "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n+A\n b\n@@ -9,2 +9,2 @@\n i\n-j\n+J\n"
    assert fixed_text(text, file_changes(diff)[0]) == "A\nb\nc\nd\ne\nf\ng\nh\ni\nJ\n"


def test_gold_lines_are_long_added_lines_the_start_state_lacks():
    assert added_lines(GOLD_PATCH) == ["    return -cents if negative else cents"]
    assert gold_lines(GOLD_PATCH, {"src/ledger/money.py": BUGGY}) == [LINE]
    assert gold_lines(GOLD_PATCH, {"src/ledger/money.py": BUGGY + f"# {LINE}\n"}) == []  # the start has it
    assert gold_lines(GOLD_PATCH, {}, min_len=len(LINE) + 1) == []  # too short
    short = "--- a/a.py\n+++ b/a.py\n@@ -1,1 +1,2 @@\n x = 1\n+        return total\n"
    assert gold_lines(short, {"a.py": "x = 1\n"}) == [] and len("return total") < MIN_LINE


def test_a_mutate_fix_subject_watches_the_pre_bug_source_and_its_single_commit():
    subject = task_subject()
    assert subject.only_commit and subject.image_commit is None and not subject.is_image
    assert subject.fixed_texts == {"src/ledger/money.py": ORIGINAL}
    assert subject.start_texts == {"src/ledger/money.py": BUGGY}
    assert subject.label == "the pre-bug source" and subject.gold_lines == [LINE]


def test_an_issue_fix_subject_watches_the_fixed_source_on_the_image_commit():
    subject = make_subject("/testbed", tracked=[], texts={"src/ledger/money.py": BUGGY}, gold_patch=GOLD_PATCH,
                           kind="issue-fix", subject="x__1", image_commit="abc")
    assert not subject.only_commit and subject.image_commit == "abc" and subject.label == "the fixed source"
    image = make_subject("/testbed", tracked=["a.py"], texts={}, image_commit="abc", project_names=["", "ledger"])
    assert image.is_image and not image.has_gold and image.fixed_texts == {} and image.project_names == ["ledger"]


# -- verdicts --------------------------------------------------------------------------------------


def test_a_probe_fails_on_a_failing_finding_and_lists_failures_first():
    note = Finding(kind="cache", detail="/tmp/x: 1 B", fails=False)
    leak = Finding(kind="copy", detail="/tmp/y: identical")
    result = SOURCE.result([note, leak], seconds=0.12345)
    assert result.verdict == Verdict.failed and result.findings[0] == leak and result.summary == "FAILED: 1 finding"
    assert SOURCE.result([note]).verdict == Verdict.reported and SOURCE.result([note]).summary == "reported: 1"
    assert SOURCE.result([]).verdict == Verdict.clean and SOURCE.result([]).summary == "clean"
    assert GOLD.skipped("why").summary == "skipped" and GOLD.broken("boom").summary == "ERROR"


def test_a_failing_start_state_gives_its_reason_and_is_stored_with_its_verdicts():
    audit = SubjectAudit(subject="t", probes=[
        GIT.result([]), SOURCE.result([Finding(kind="copy", detail="/tmp/y: identical to a.py")]),
        CACHES.result([Finding(kind="cache", detail="/tmp/z", fails=False)]),
    ])
    assert audit.failed and not audit.passed
    assert audit.reason == f"{LEAK_PREFIX}pre-bug-source: /tmp/y: identical to a.py"
    stored = audit.model_dump(mode="json")
    assert stored["passed"] is False and stored["failed"] is True and stored["reason"] == audit.reason
    assert SubjectAudit.model_validate(stored).probes[1].findings[0].kind == "copy"
    # a probe that could not run is no leak, but no pass either; nor is a start state that would not start
    broken = SubjectAudit(subject="t", probes=[GIT.broken("exit code 2")])
    assert not broken.failed and not broken.passed and broken.reason is None
    assert not SubjectAudit(subject="t", error="SandboxError: x").passed


def test_outcomes_that_are_not_results_are_errors():
    subject = task_subject()
    assert apply_outcome(GIT, subject, 124, "", "").verdict == Verdict.error
    crashed = apply_outcome(SOURCE, subject, 1, "", "Traceback\nKeyError: 'x'")
    assert crashed.verdict == Verdict.error and "KeyError" in crashed.note
    assert apply_outcome(GIT, subject, 0, "finding\tref\tx\n", "").verdict == Verdict.error  # cut before "done"
    assert apply_outcome(GIT, subject, 0, "finding\tref\tx\ndone\n", "").verdict == Verdict.failed


# -- git -------------------------------------------------------------------------------------------


def test_git_is_rendered_with_what_the_start_must_be():
    argv = GIT.render(task_subject())
    assert argv[:2] == ["bash", "-c"] and argv[-4:] == ["/testbed", "1", "", "/"]
    image = make_subject("/testbed", tracked=[], texts={}, image_commit="abc")
    assert GIT.render(image)[-4:] == ["/testbed", "", "abc", "/"]


def test_git_output_parsed():
    output = ("finding\ttag\trefs/tags/future -> 1234 is not in HEAD's history\n"
              "finding\tstash\trefs/stash -> 5678 is not in HEAD's history\n"
              "noise from git\n"
              "finding\tunreachable\tblob 9abc is stored but nothing reaches it\n"
              "done\n")
    findings, _note = parse_git(task_subject(), output)
    assert [f.kind for f in findings] == ["tag", "stash", "unreachable"] and all(f.fails for f in findings)
    assert parse_git(task_subject(), "done\n") == ([], "")
    with pytest.raises(ProbeOutputError):
        parse_git(task_subject(), "")


# -- pre-bug source --------------------------------------------------------------------------------


def test_source_spec_carries_hashes_and_texts_within_the_budget():
    spec = source_spec(task_subject())
    watched = spec["watched"][0]
    assert watched["sha256"] == hashlib.sha256(ORIGINAL.encode()).hexdigest() and watched["size"] == len(ORIGINAL)
    assert watched["text"] == ORIGINAL and spec["image"] is False and spec["label"] == "the pre-bug source"
    assert source_spec(task_subject(), budget=10)["watched"][0]["text"] is None  # found as a copy, not compared as code
    image = make_subject("/testbed", tracked=[], texts={})
    assert source_spec(image)["watched"] is None and source_spec(image)["image"] is True
    assert "".join(chunked("x" * 250_001)) == "x" * 250_001 and len(chunked("x" * 250_001)) == 3


def test_source_output_parsed():
    output = json.dumps({"findings": [
        {"kind": "stale-pyc", "path": "/testbed/src/__pycache__/m.cpython-311.pyc", "detail": "d1", "fails": True},
        {"kind": "tracked-copy", "path": "/testbed/other.py", "detail": "d2", "fails": False},
    ], "more": 3, "files": 1000, "watched": 1})
    findings, note = parse_source(task_subject(), "warning: something\n" + output + "\n")
    assert [(f.kind, f.fails) for f in findings] == [("stale-pyc", True), ("tracked-copy", False)]
    assert "1000 files walked" in note and "3 more findings" in note
    for broken in ("", "Traceback (most recent call last):\n  KeyError", '{"no": "findings"}'):
        with pytest.raises(ProbeOutputError):
            parse_source(task_subject(), broken)


def test_source_is_skipped_when_the_fix_cannot_be_rebuilt():
    assert SOURCE.skip(task_subject()) is None
    assert "could not be rebuilt" in SOURCE.skip(task_subject(fixed_texts={}))
    assert SOURCE.skip(make_subject("/testbed", tracked=[], texts={})) is None  # the image: every tracked source


# -- gold lines ------------------------------------------------------------------------------------


def test_gold_lines_are_rendered_as_patterns_and_skipped_without_any():
    argv = GOLD.render(task_subject())
    assert argv[:2] == ["bash", "-c"] and argv[-2:] == ["/", LINE]
    assert "no gold patch" in GOLD.skip(make_subject("/testbed", tracked=[], texts={}))
    assert f"{MIN_LINE}+ characters" in GOLD.skip(task_subject(gold_lines=[]))
    assert GOLD.skip(task_subject()) is None


def test_matches_are_split_at_the_line_even_with_colons_in_the_path():
    lines = ["return x", "return x if y else z"]
    output = "/tmp/a:b.txt:return x if y else z\n/srv/c.py:return x\nnot a match\n/srv/d.py:return x if y\n"
    assert match_pairs(output, lines) == [("/tmp/a:b.txt", "return x if y else z"), ("/srv/c.py", "return x")]


def test_matches_classified():
    subject = task_subject()
    site = "/opt/venv/lib/python3.11/site-packages"
    pairs = [
        ("/testbed/src/ledger/money.py", LINE),  # the gold patch's own file: left out
        ("/testbed/src/ledger/other.py", LINE),  # tracked: the repository repeats itself
        (f"{site}/pip/_vendor/x.py", LINE),  # an installer's vendored copy
        (f"{site}/pip/x.py", LINE),  # pip's own code is not vendored
        ("/testbed/build/lib/ledger/money.py", LINE),  # untracked, in the repository
    ]
    findings = {f.path: f for f in classify_matches(subject, pairs)}
    assert "/testbed/src/ledger/money.py" not in findings
    other = findings["/testbed/src/ledger/other.py"]
    assert other.kind == "tracked" and not other.fails
    assert findings[f"{site}/pip/_vendor/x.py"].kind == "vendored" and not findings[f"{site}/pip/_vendor/x.py"].fails
    assert findings[f"{site}/pip/x.py"].fails and findings["/testbed/build/lib/ledger/money.py"].fails
    assert LINE in findings[f"{site}/pip/x.py"].detail
    assert vendored(f"{site}/setuptools/_vendor/a/b.py") and not vendored(f"{site}/thing/_vendor/a.py")


def test_a_line_in_many_files_is_boilerplate():
    subject = task_subject()
    many = [(f"/usr/lib/python3/x{i}.py", LINE) for i in range(COMMON_FILES + 1)]
    assert {(f.kind, f.fails) for f in classify_matches(subject, many)} == {("common", False)}
    few = many[:COMMON_FILES]
    assert {(f.kind, f.fails) for f in classify_matches(subject, few)} == {("copy", True)}


def test_gold_output_parsed():
    subject = task_subject()
    findings, note = parse_gold(subject, f"/var/notes.txt:{LINE}\ndone\n")
    assert [(f.kind, f.path) for f in findings] == [("copy", "/var/notes.txt")] and "1 lines" in note
    assert parse_gold(subject, "done\n")[0] == []
    with pytest.raises(ProbeOutputError):
        parse_gold(subject, f"/var/notes.txt:{LINE}\n")
    many = "".join(f"/srv/x{i}:{LINE}\n" for i in range(5001)) + "done\n"
    assert "cut at 5000" in parse_gold(subject, many)[1]


# -- caches ----------------------------------------------------------------------------------------


def test_caches_rendered_and_parsed():
    argv = CACHES.render(task_subject())
    assert json.loads(argv[-1]) == {"root": "/", "repo": "/testbed", "names": ["ledger"]}
    output = json.dumps({"findings": [
        {"kind": "project-archive", "path": "/root/.cache/pip/ledger-0.1.0.whl", "detail": "d", "fails": True},
        {"kind": "cache", "path": "/root/.cache/pip", "detail": "/root/.cache/pip: 1.0 KB in 1 file", "fails": False},
    ], "names": ["ledger"], "more": 0})
    findings, note = parse_caches(task_subject(), output)
    assert [f.kind for f in findings] == ["project-archive", "cache"] and note == "project names: ledger"
    with pytest.raises(ProbeOutputError):
        parse_caches(task_subject(), "")


def test_probe_names_are_stable():
    assert PROBE_NAMES == ("git", "pre-bug-source", "gold-lines", "caches")
    assert isinstance(SOURCE.result([]), ProbeResult)


# -- the scripts themselves, on a planted folder of this machine ----------------------------------------


def run_here(argv: list[str]) -> tuple[int, str, str]:
    if argv[0] == "python3":
        argv = [sys.executable, *argv[1:]]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    return subprocess.run(["git", *identity, "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def planted(tmp_path) -> tuple[Path, AuditSubject]:
    """A folder standing for a container's filesystem: its repository in the start state of a mutate-fix task."""
    repo = tmp_path / "testbed"
    (repo / "src" / "ledger").mkdir(parents=True)
    (repo / "src" / "ledger" / "money.py").write_text(BUGGY)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    git(repo, "reflog", "expire", "--expire=now", "--all")  # as the sandbox's preparation leaves it
    subject = make_subject(str(repo), root=str(tmp_path), tracked=["src/ledger/money.py"],
                           texts={"src/ledger/money.py": BUGGY}, gold_patch=GOLD_PATCH, bug_patch=BUG,
                           kind="mutate-fix", subject="t", project_names=["ledger"])
    return tmp_path, subject


def run_probe(probe, subject):
    return apply_outcome(probe, subject, *run_here(probe.render(subject)))


def test_the_scripts_find_nothing_in_a_clean_start(planted):
    _root, subject = planted
    for probe in (GIT, SOURCE, GOLD, CACHES):
        result = run_probe(probe, subject)
        assert result.verdict == Verdict.clean, (probe.name, result)


def test_the_git_script_finds_what_lies_beyond_the_start(planted):
    root, subject = planted
    repo = root / "testbed"
    future = git(repo, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "future").strip()
    git(repo, "tag", "future", future)
    (root / "orig.py").write_text(ORIGINAL)
    git(repo, "hash-object", "-w", str(root / "orig.py"))
    git(repo, "remote", "add", "origin", "https://user:secret@example.com/ledger.git")
    subprocess.run(["git", "clone", "-q", str(repo), str(root / "home" / "clone")], check=True, capture_output=True)
    result = run_probe(GIT, subject)
    kinds = {f.kind for f in result.findings}
    assert result.verdict == Verdict.failed and {"tag", "unreachable", "remote", "other-repo"} <= kinds, result
    assert "remote origin (https://***@example.com/ledger.git)" in {f.detail for f in result.findings}


def test_the_source_script_finds_copies_and_bytecode_of_the_pre_bug_source(planted):
    root, subject = planted
    (root / "tmp").mkdir()
    (root / "tmp" / "money.py.orig").write_text(ORIGINAL)
    site = root / "usr" / "lib" / "python3" / "site-packages" / "ledger"
    site.mkdir(parents=True)
    (site / "money.py").write_text(ORIGINAL + "# built\n")
    (root / "orig.py").write_text(ORIGINAL)
    pyc = root / "testbed" / "src" / "ledger" / "__pycache__" / "money.cpython-311.pyc"
    py_compile.compile(str(root / "orig.py"), cfile=str(pyc), doraise=True)
    (root / "orig.py").unlink()
    result = run_probe(SOURCE, subject)
    found = {(f.kind, f.path) for f in result.findings}
    assert found == {("copy", str(root / "tmp" / "money.py.orig")), ("install-copy", str(site / "money.py")),
                     ("stale-pyc", str(pyc))}, result
    details = {f.kind: f.detail for f in result.findings}
    assert result.verdict == Verdict.failed
    assert details["copy"].endswith("identical to src/ledger/money.py (the pre-bug source)")
    assert details["stale-pyc"].endswith("bytecode compiled from src/ledger/money.py (the pre-bug source)")
    # bytecode of the start state itself, fresh beside it, is no leak
    py_compile.compile(str(root / "testbed" / "src" / "ledger" / "money.py"), cfile=str(pyc), doraise=True)
    assert ("stale-pyc", str(pyc)) not in {(f.kind, f.path) for f in run_probe(SOURCE, subject).findings}


def test_the_gold_and_caches_scripts_find_lines_and_archives(planted):
    root, subject = planted
    (root / "var").mkdir()
    (root / "var" / "notes.txt").write_text(f"x = 1; {LINE}\n")
    vendor = root / "site-packages" / "pip" / "_vendor"
    vendor.mkdir(parents=True)
    (vendor / "planted.py").write_text(f"    {LINE}\n")
    gold = run_probe(GOLD, subject)
    assert {(f.kind, f.fails, f.path) for f in gold.findings} == {
        ("copy", True, str(root / "var" / "notes.txt")), ("vendored", False, str(vendor / "planted.py"))}
    wheels = root / "root" / ".cache" / "pip" / "wheels"
    wheels.mkdir(parents=True)
    (wheels / "Ledger-0.1.0-py3-none-any.whl").write_bytes(b"PK")
    (wheels / "other_project-1.0-py3-none-any.whl").write_bytes(b"PK")
    (wheels / "ledger-0.1.0-0.editable-py3-none-any.whl").write_bytes(b"PK")  # points at the repository
    caches = run_probe(CACHES, subject)
    assert [(f.kind, f.fails) for f in caches.findings] == [("project-archive", True), ("cache", False)], caches
    assert caches.findings[1].detail.endswith("in 3 files")


def test_an_image_is_not_failed_for_bytecode_any_empty_module_compiles_to(tmp_path):
    """An empty tests/__init__.py compiles to the same bytecode as pip's vendored certifi/tests/__init__.py: no copy
    (seen on markupsafe); bytecode of a real source under the same install tail still is one."""
    repo = tmp_path / "testbed"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "__init__.py").write_text("")
    (repo / "src" / "ledger").mkdir(parents=True)
    (repo / "src" / "ledger" / "money.py").write_text(ORIGINAL + "# " + "x" * 300 + "\n")  # past MIN_COPY_BYTES
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "start")
    vendored = tmp_path / "opt" / "site-packages" / "pip" / "_vendor" / "certifi" / "tests" / "__pycache__"
    vendored.mkdir(parents=True)
    (tmp_path / "empty.py").write_text("")
    py_compile.compile(str(tmp_path / "empty.py"), cfile=str(vendored / "__init__.cpython-311.pyc"), doraise=True)
    subject = make_subject(str(repo), root=str(tmp_path), tracked=["tests/__init__.py", "src/ledger/money.py"],
                           texts={})
    assert run_probe(SOURCE, subject).verdict == Verdict.clean
    installed = tmp_path / "opt" / "site-packages" / "ledger" / "__pycache__"
    installed.mkdir(parents=True)
    py_compile.compile(str(repo / "src" / "ledger" / "money.py"), cfile=str(installed / "money.cpython-311.pyc"),
                       doraise=True)
    result = run_probe(SOURCE, subject)
    assert result.verdict == Verdict.failed and {f.kind for f in result.findings} == {"compiled-copy"}, result
