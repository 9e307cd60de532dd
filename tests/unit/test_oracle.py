"""The oracle's result rows (`tasks oracle --json`): the grade's counts beside the task, or why it was not graded."""

from __future__ import annotations

from forager.tasks.evaluate import Grade
from forager.tasks.oracle import IMAGE_GONE, OracleResult


def test_a_graded_gold_patch_row_carries_the_counts_not_the_log():
    grade = Grade(applied=True, resolved=True, fail_to_pass_passed=2, fail_to_pass_total=2, pass_to_pass_passed=5,
                  pass_to_pass_total=5, seconds=3.2, statuses={"t": "passed"}, script="git apply", log_tail="5 passed")
    row = OracleResult(instance_id="calc__1", kind="mutate-fix", resolved=True, grade=grade).row()
    assert row["resolved"] is True and row["error"] is None
    assert (row["fail_to_pass_passed"], row["pass_to_pass_total"], row["seconds"]) == (2, 5, 3.2)
    assert not {"statuses", "script", "log_tail"} & set(row)


def test_a_task_whose_image_is_gone_is_unresolved_with_the_reason():
    row = OracleResult(instance_id="calc__1", kind="issue-fix", error=IMAGE_GONE).row()
    assert row == {"instance_id": "calc__1", "kind": "issue-fix", "resolved": False, "error": IMAGE_GONE}
