"""Tasks in the store <-> task records: to_record and task_fields round-trip (no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from forager.store import Image, Repo, Task
from forager.tasks.catalog import image_world, task_fields, to_record
from forager.tasks.records import (
    MutationInfo,
    TaskKind,
    TaskRecord,
    read_records,
    write_records,
)


def task_from_record(record, **where):
    """A task row as `tasks import` makes one from a record."""
    return Task(**task_fields(record, **where))

BASE = "3f786850e387550fdab836ed7e6dc881de23001b"
SETUP = "89e6c98d92887913cadf06b2adb97f26cde4849b"

BUG = """\
diff --git a/src/ledger/accounts.py b/src/ledger/accounts.py
index 1111111..2222222 100644
--- a/src/ledger/accounts.py
+++ b/src/ledger/accounts.py
@@ -10,7 +10,7 @@ class Account:
     def deposit(self, amount):
         if amount <= 0:
             raise ValueError("amount must be positive")
-        self.balance += amount
+        self.balance -= amount
         return self.balance
 
 
"""

GOLD_MUTATE = """\
diff --git a/src/ledger/accounts.py b/src/ledger/accounts.py
index 2222222..1111111 100644
--- a/src/ledger/accounts.py
+++ b/src/ledger/accounts.py
@@ -10,7 +10,7 @@ class Account:
     def deposit(self, amount):
         if amount <= 0:
             raise ValueError("amount must be positive")
-        self.balance -= amount
+        self.balance += amount
         return self.balance
 
 
"""

GOLD_ISSUE = """\
diff --git a/pkg/parse.py b/pkg/parse.py
index 3333333..4444444 100644
--- a/pkg/parse.py
+++ b/pkg/parse.py
@@ -1,3 +1,3 @@
 def parse(text):
-    return text.split(",")
+    return [part.strip() for part in text.split(",")]
 
"""

TESTS_ISSUE = """\
diff --git a/tests/test_parse.py b/tests/test_parse.py
new file mode 100644
index 0000000..5555555
--- /dev/null
+++ b/tests/test_parse.py
@@ -0,0 +1,5 @@
+from pkg.parse import parse
+
+
+def test_strips_spaces():
+    assert parse("a, b") == ["a", "b"]
"""


@pytest.fixture
def repo() -> Repo:
    return Repo(id=7, url="https://github.com/example/ledger.git", name="ledger", mirror_path="/mirrors/ledger")


def mutate_task() -> Task:
    return Task(
        id=11,
        instance_id="ledger__mutate-fix-0001",
        kind=TaskKind.mutate_fix.value,
        repo_id=7,
        image_id=3,
        base_commit=BASE,
        problem_statement="Depositing money lowers the balance.",
        bug_patch=BUG,
        gold_patch=GOLD_MUTATE,
        test_patch="",
        fail_to_pass=["tests/test_accounts.py::test_deposit", "tests/test_accounts.py::TestX::test_y[a-b]"],
        pass_to_pass=["tests/test_accounts.py::test_open"],
        family="operators",
        path="src/ledger/accounts.py",
        symbol="Account.deposit",
        line=13,
        description="swap += for -=",
        source="synthesize seed=0",
        repo_name="ledger",
        version="1.2",
        valid=True,
        invalid_reason=None,
        validation={"before": {}},
        forager_version="0.3.0",
    )


def issue_task() -> Task:
    return Task(
        id=12,
        instance_id="example__parser-42",
        kind=TaskKind.issue_fix.value,
        repo_id=7,
        base_commit=BASE,
        problem_statement="parse() keeps spaces around items.\n\nExpected them stripped.",
        gold_patch=GOLD_ISSUE,
        test_patch=TESTS_ISSUE,
        fail_to_pass=["tests/test_parse.py::test_strips_spaces"],
        pass_to_pass=["tests/test_parse.py::test_empty", "tests/test_other.py::test_keep"],
        source="import tasks/x.jsonl",
        repo_name="example/parser",
        version="0.12",
        environment_setup_commit=SETUP,
        instance_created_at="2023-05-01T12:00:00Z",
        hints_text="see the tokenizer",
        valid=False,
        invalid_reason="FAIL_TO_PASS tests pass without the fix: tests/test_parse.py::test_strips_spaces",
    )


SHARED = (
    "instance_id", "kind", "base_commit", "problem_statement", "bug_patch", "gold_patch", "test_patch",
    "fail_to_pass", "pass_to_pass", "family", "path", "symbol", "line", "description", "repo_name", "version",
    "environment_setup_commit", "instance_created_at", "hints_text",
)


def test_mutate_fix_to_record(repo: Repo):
    record = to_record(mutate_task(), repo, image_tag="forager/ledger:abc")
    assert record.kind is TaskKind.mutate_fix
    assert record.instance_id == "ledger__mutate-fix-0001"
    assert record.repo == "ledger"
    assert record.repo_url == "https://github.com/example/ledger.git"
    assert record.base_commit == BASE
    assert record.patch == GOLD_MUTATE
    assert record.bug_patch == BUG
    assert record.test_patch == ""
    assert record.FAIL_TO_PASS == ["tests/test_accounts.py::test_deposit", "tests/test_accounts.py::TestX::test_y[a-b]"]
    assert record.PASS_TO_PASS == ["tests/test_accounts.py::test_open"]
    assert record.mutation == MutationInfo(
        family="operators", path="src/ledger/accounts.py", symbol="Account.deposit", line=13, description="swap += for -="
    )
    assert record.valid is True
    assert record.invalid_reason is None
    assert record.image_tag == "forager/ledger:abc"
    assert record.forager_version == "0.3.0"
    assert record.version == "1.2"


def test_issue_fix_to_record(repo: Repo):
    record = to_record(issue_task(), repo)
    assert record.kind is TaskKind.issue_fix
    assert record.repo == "example/parser"  # the instance's own name wins over the repo's short name
    assert record.repo_url == repo.url
    assert record.patch == GOLD_ISSUE
    assert record.test_patch == TESTS_ISSUE
    assert record.bug_patch == ""
    assert record.mutation is None
    assert record.environment_setup_commit == SETUP
    assert record.created_at == "2023-05-01T12:00:00Z"
    assert record.hints_text == "see the tokenizer"
    assert record.valid is False
    assert record.invalid_reason.startswith("FAIL_TO_PASS tests pass without the fix")
    assert record.image_tag is None


def test_to_record_falls_back_to_repo_name_and_zero_commit(repo: Repo):
    task = issue_task()
    task.repo_name = ""
    task.base_commit = None
    record = to_record(task, repo)
    assert record.repo == "ledger"
    assert record.base_commit == "0" * 40


@pytest.mark.parametrize("make", [mutate_task, issue_task], ids=["mutate-fix", "issue-fix"])
def test_round_trip_keeps_fields(repo: Repo, make):
    task = make()
    back = task_from_record(to_record(task, repo), repo_id=99, source="import tasks/back.jsonl")
    for name in SHARED:
        assert getattr(back, name) == getattr(task, name), name
    assert back.repo_id == 99
    assert back.source == "import tasks/back.jsonl"
    assert back.id is None


@pytest.mark.parametrize("make", [mutate_task, issue_task], ids=["mutate-fix", "issue-fix"])
def test_round_trip_through_jsonl(repo: Repo, make, tmp_path: Path):
    task = make()
    path = tmp_path / "tasks.jsonl"
    assert write_records(path, [to_record(task, repo)]) == 1
    reads = read_records(path)
    assert len(reads) == 1 and reads[0].error is None
    back = task_from_record(reads[0].record, repo_id=7, source="import")
    for name in SHARED:
        assert getattr(back, name) == getattr(task, name), name


def test_round_trip_lists_are_copies(repo: Repo):
    record = to_record(mutate_task(), repo)
    back = task_from_record(record, repo_id=7, source="s")
    back.fail_to_pass.append("tests/x.py::test_z")
    assert "tests/x.py::test_z" not in record.FAIL_TO_PASS


def test_task_from_record_never_copies_verdict():
    record = TaskRecord(
        instance_id="example__parser-42",
        repo="example/parser",
        base_commit=BASE,
        patch=GOLD_ISSUE,
        test_patch=TESTS_ISSUE,
        FAIL_TO_PASS=["tests/test_parse.py::test_strips_spaces"],
        valid=True,
        invalid_reason="something stale",
        image_tag="forager/parser:1",
        repo_url="https://example.org/parser.git",
    )
    task = task_from_record(record, repo_id=1, source="import")
    assert task.valid is False
    assert task.invalid_reason is None
    assert task.validation == {}
    assert task.validate_seconds is None
    assert task.image_id is None


def test_task_from_record_mutation_none_for_issue_fix():
    record = TaskRecord(instance_id="a__b-1", repo="a/b", base_commit=BASE, patch=GOLD_ISSUE)
    task = task_from_record(record, repo_id=1, source="import")
    assert task.kind == "issue-fix"
    assert (task.family, task.path, task.symbol, task.line, task.description) == (None, None, None, None, None)
    assert task.bug_patch == ""


def test_task_from_record_mutate_fix_provenance():
    record = TaskRecord(
        instance_id="ledger__m-2",
        repo="ledger",
        base_commit=BASE,
        patch=GOLD_MUTATE,
        bug_patch=BUG,
        kind=TaskKind.mutate_fix,
        mutation={"family": "statements", "path": "src/a.py", "symbol": "f", "line": 4, "description": "drop return"},
    )
    task = task_from_record(record, repo_id=2, source="import")
    assert task.kind == "mutate-fix"
    assert task.bug_patch == BUG
    assert task.gold_patch == GOLD_MUTATE
    assert (task.family, task.path, task.symbol, task.line, task.description) == (
        "statements", "src/a.py", "f", 4, "drop return",
    )


def test_records_reject_patches_that_are_not_diffs(repo: Repo):
    task = issue_task()
    task.gold_patch = "just some text"
    with pytest.raises(ValueError, match="patch is not a unified diff"):
        to_record(task, repo)


def test_mutate_fix_without_bug_patch_is_rejected(repo: Repo):
    task = mutate_task()
    task.bug_patch = ""
    with pytest.raises(ValueError, match="bug_patch"):
        to_record(task, repo)


def test_the_image_gives_a_record_its_cut_off_and_python(repo: Repo):
    image = Image(id=3, repo_id=7, spec={"as_of": "2023-10-01", "resolver": "uv"}, python_version="3.9")
    world = image_world(image)
    assert world == {"as_of": "2023-10-01", "python": "3.9"}
    record = to_record(issue_task(), repo, "forager/ledger:abc", **world)
    assert (record.as_of, record.python, record.image_tag) == ("2023-10-01", "3.9", "forager/ledger:abc")
    # an image of today's releases has no cut-off; a task without an image has neither
    assert image_world(Image(repo_id=7, spec={"resolver": "uv"}, python_version="3.11")) == {"as_of": None, "python": "3.11"}
    assert image_world(None) == {"as_of": None, "python": None}
    assert (to_record(issue_task(), repo).as_of, to_record(issue_task(), repo).python) == (None, None)


def test_a_record_of_a_mined_task_keeps_the_commit_message_as_hints(repo: Repo):
    task = issue_task()
    task.hints_text = "Preserve defaults through the decorator (#406)\n\nCo-authored-by: someone"
    back = task_from_record(to_record(task, repo, as_of="2023-10-01", python="3.11"), repo_id=7, source="import x")
    assert back.hints_text == task.hints_text


def test_task_counts_group_by_repository_kind_family_and_validity():
    from forager.tasks.catalog import task_counts

    calc, ledger = Repo(id=1, url="/calc", name="calc"), Repo(id=2, url="/ledger", name="ledger")
    rows = [
        (Task(instance_id=f"m{i}", kind="mutate-fix", repo_id=1, family="operators", valid=i != 2), calc)
        for i in range(3)
    ] + [(Task(instance_id="i1", kind="issue-fix", repo_id=2, valid=True), ledger)]
    assert task_counts(rows) == [
        {"repo": "calc", "kind": "mutate-fix", "family": "operators", "valid": True, "tasks": 2},
        {"repo": "calc", "kind": "mutate-fix", "family": "operators", "valid": False, "tasks": 1},
        {"repo": "ledger", "kind": "issue-fix", "family": "", "valid": True, "tasks": 1},
    ]
