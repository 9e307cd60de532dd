"""Statements rewritten by a served model: the prompt, the reply's cleaning, the checks, what the task keeps."""

from __future__ import annotations

from forager.store.tables import Repo, Task
from forager.tasks.catalog import to_record
from forager.tasks.restate import (
    Restatement,
    apply_restatement,
    clean_reply,
    is_mined,
    rejection,
    report_of,
    restate_messages,
)
from forager.tasks.statement import named_in

FILES = ["src/tenacity/_asyncio.py", "src/tenacity/wait.py"]
FUNCTIONS = ["wrapped_f", "wraps"]
REPORT = "Some tests fail and they should pass.\n\n- tests/test_retry.py::test_defaults\n  AssertionError: (1,) != None"
GOLD = "--- a/src/tenacity/wait.py\n+++ b/src/tenacity/wait.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
ISSUE = ("Retrying a decorated function loses its default arguments\n\nAfter decorating a function with retry, "
         "calling it without the optional argument fails: AssertionError: (1,) != None.")


def test_the_model_sees_the_report_only():
    system, user = restate_messages(REPORT)
    assert system["role"] == "system" and "Do not suggest a fix" in system["content"]
    assert user == {"role": "user", "content": "Test failure report:\n\n" + REPORT}
    assert len(restate_messages("x" * 20_000)[1]["content"]) < 6100


def test_replies_lose_reasoning_and_one_enclosing_fence():
    assert clean_reply("<think>the fix is in wait.py</think>\n" + ISSUE) == ISSUE
    assert clean_reply("```markdown\n" + ISSUE + "\n```") == ISSUE
    assert clean_reply("  " + ISSUE + "\n\n") == ISSUE
    assert clean_reply("<think>never closed, all reasoning") == ""
    inner = "Run this:\n```\npython -c 'import x'\n```\nand it fails."
    assert clean_reply(inner) == inner  # a fence inside the issue is the user's, kept


def test_a_rewrite_naming_the_fix_is_rejected_with_the_names():
    assert rejection(ISSUE, FILES, FUNCTIONS) is None
    assert rejection(ISSUE + " The bug is in wrapped_f.", FILES, FUNCTIONS) == (
        "the rewrite names what the fix changes: wrapped_f")
    assert "_asyncio.py" in rejection(ISSUE + " See _asyncio.py line 3.", FILES, FUNCTIONS)
    assert "tenacity.wait" in rejection(ISSUE + " tenacity.wait is wrong", FILES, FUNCTIONS)
    assert rejection("Broken.", FILES, FUNCTIONS) == "the rewrite is 7 characters, fewer than 40"
    # a name inside a longer word is not the name
    assert rejection(ISSUE + " It unwraps twice.", FILES, FUNCTIONS) is None


def test_named_in_lists_each_name_once_as_written():
    text = "wraps and wraps again in src/tenacity/wait.py and tenacity.wait.wait_fixed"
    assert named_in(text, FILES, FUNCTIONS) == ["wraps", "src/tenacity/wait.py", "tenacity.wait"]
    assert named_in("nothing here", FILES, FUNCTIONS) == []


def _mined_task(**fields) -> Task:
    fields = {"source": "mine 310058274ed2", **fields}
    return Task(instance_id="tenacity__310058274ed2", kind="issue-fix", repo_id=1, base_commit="a" * 40,
                problem_statement=REPORT, gold_patch=GOLD, valid=True, validation={"runs_per_state": 2}, **fields)


def test_an_accepted_rewrite_is_the_statement_and_the_report_is_kept():
    task = _mined_task()
    before = task.validation
    apply_restatement(task, Restatement(model="m1", text=ISSUE), report_of(task))
    assert task.problem_statement == ISSUE
    assert task.validation == {"runs_per_state": 2, "statement": {"by": "llm", "model": "m1", "report": REPORT}}
    assert task.validation is not before  # a new dict, so the JSON column is written
    assert to_record(task, Repo(id=1, url="/r", name="tenacity")).statement_by == "llm:m1"
    # rewriting again (another model) starts from the report, not from the first rewrite
    assert report_of(task) == REPORT
    apply_restatement(task, Restatement(model="m2", rejected="the rewrite names what the fix changes: wraps"),
                      report_of(task))
    assert task.problem_statement == REPORT
    assert task.validation["statement"] == {"by": "tests", "model": "m2",
                                            "rejected": "the rewrite names what the fix changes: wraps"}
    assert to_record(task, Repo(id=1, url="/r", name="tenacity")).statement_by is None


def test_only_mined_issue_fix_tasks_are_restated():
    assert is_mined(_mined_task())
    assert not is_mined(_mined_task(source="import tasks/swe.jsonl"))
    mutate = _mined_task()
    mutate.kind = "mutate-fix"
    assert not is_mined(mutate)
