import json
import os
import stat

import pytest
from pydantic import ValidationError

from forager.tasks.records import (
    MutationInfo,
    RecordRead,
    TaskKind,
    TaskRecord,
    looks_like_diff,
    read_records,
    write_records,
)

GOLD = "diff --git a/src/money.py b/src/money.py\n--- a/src/money.py\n+++ b/src/money.py\n@@ -1 +1 @@\n-a - b\n+a + b\n"
BUG = "diff --git a/src/money.py b/src/money.py\n--- a/src/money.py\n+++ b/src/money.py\n@@ -1 +1 @@\n-a + b\n+a - b\n"
TESTS = "--- a/tests/test_money.py\n+++ b/tests/test_money.py\n@@ -1 +1,2 @@\n x\n+y\n"
SHA = "0123456789abcdef0123456789abcdef01234567"

# As the public SWE-bench datasets store an instance: test lists as JSON-encoded strings, a
# numeric version, and columns forager does not know.
SWE_BENCH_INSTANCE = {
    "repo": "astropy/astropy",
    "instance_id": "astropy__astropy-12907",
    "base_commit": "D16BFE05A744909DE4B27F5875FE0D4ED41CE607",
    "patch": GOLD,
    "test_patch": TESTS,
    "problem_statement": "Modeling's `separability_matrix` does not compute separability correctly",
    "hints_text": "",
    "created_at": "2022-03-03T15:14:54Z",
    "version": 3.0,
    "FAIL_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"]',
    "PASS_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_coord_matrix", "astropy/modeling/tests/test_separable.py::test_cdot"]',
    "environment_setup_commit": "298ccb478e6bf092953bca67a3d29dc6c35f6752",
    "difficulty": "15 min - 1 hour",
    "image_name": "sweb.eval.x86_64.astropy__astropy-12907",
}


def record(**changes) -> TaskRecord:
    fields = {"instance_id": "money-1", "repo": "acme/money", "base_commit": SHA, "patch": GOLD}
    return TaskRecord(**(fields | changes))


def mutate_record(**changes) -> TaskRecord:
    mutation = MutationInfo(family="operators", path="src/money.py", symbol="add", line=1, description="+ -> -")
    fields = {"kind": TaskKind.mutate_fix, "bug_patch": BUG, "mutation": mutation, "FAIL_TO_PASS": ["tests/test_money.py::test_add"]}
    return record(**(fields | changes))


def write_lines(path, *lines: str) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def errors_of(reads: list[RecordRead]) -> dict[str, str]:
    return {read.where: read.error for read in reads if read.error is not None}


# --- the model ---------------------------------------------------------------------------


def test_swe_bench_instance_with_extra_columns_and_numeric_version_parses():
    task = TaskRecord.model_validate(SWE_BENCH_INSTANCE)
    assert task.version == "3.0"
    assert task.base_commit == "d16bfe05a744909de4b27f5875fe0d4ed41ce607"
    assert task.FAIL_TO_PASS == ["astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"]
    assert len(task.PASS_TO_PASS) == 2
    assert task.kind is TaskKind.issue_fix
    assert "difficulty" not in task.model_dump()


def test_version_string_stays_as_written():
    assert record(version="0.12").version == "0.12"
    assert record(version=2).version == "2"


def test_test_lists_accept_lists_and_json_strings():
    ids = ["tests/test_a.py::test_x", "tests/test_a.py::TestY::test_z[1-2]"]
    assert record(FAIL_TO_PASS=ids).FAIL_TO_PASS == ids
    assert record(FAIL_TO_PASS=json.dumps(ids)).FAIL_TO_PASS == ids
    assert record(PASS_TO_PASS="[]").PASS_TO_PASS == []


@pytest.mark.parametrize("value", ["tests/test_a.py::test_x", '{"a": 1}', "[1, 2]", '["ok", ""]', '["two\\nlines"]'])
def test_test_lists_reject_strings_that_are_not_json_lists_of_ids(value):
    with pytest.raises(ValidationError, match="FAIL_TO_PASS"):
        record(FAIL_TO_PASS=value)


@pytest.mark.parametrize("sha", ["xyz1234", "123456", "0" * 41, "", "0123456 "])
def test_base_commit_must_be_a_sha(sha):
    if sha == "0123456 ":
        assert record(base_commit=sha).base_commit == "0123456"
        return
    with pytest.raises(ValidationError, match="base_commit"):
        record(base_commit=sha)


@pytest.mark.parametrize("instance_id", ["", "   ", "a\nb", "x" * 201])
def test_instance_id_must_be_one_short_line(instance_id):
    with pytest.raises(ValidationError, match="instance_id"):
        record(instance_id=instance_id)


def test_patch_must_look_like_a_diff():
    with pytest.raises(ValidationError, match="patch is not a unified diff"):
        record(patch="fix the bug")
    with pytest.raises(ValidationError, match="test_patch is not a unified diff"):
        record(test_patch="add a test")
    assert record(patch=TESTS).patch == TESTS  # plain ---/+++ without a git header is a diff too


def test_looks_like_diff():
    assert looks_like_diff(GOLD)
    assert looks_like_diff("diff --git a/x b/x\nnew file mode 100644\n")
    assert not looks_like_diff("--- only the old side\n")
    assert not looks_like_diff("")


def test_mutate_fix_needs_a_bug_patch_and_issue_fix_must_not_have_one():
    assert mutate_record().bug_patch == BUG
    with pytest.raises(ValidationError, match="mutate-fix task needs bug_patch"):
        mutate_record(bug_patch="")
    with pytest.raises(ValidationError, match="bug_patch is only for mutate-fix"):
        record(bug_patch=BUG)


def test_kind_reads_its_json_name():
    task = TaskRecord.model_validate(mutate_record().model_dump(mode="json"))
    assert task.kind is TaskKind.mutate_fix
    assert mutate_record().model_dump(mode="json")["kind"] == "mutate-fix"


def test_mutation_info_ignores_the_whole_file_texts_of_a_mutation():
    info = MutationInfo.model_validate(
        {"family": "operators", "path": "a.py", "symbol": "f", "line": 3, "description": "d", "original": "x", "mutated": "y"}
    )
    assert info.line == 3
    with pytest.raises(ValidationError, match="line"):
        MutationInfo(family="operators", path="a.py", symbol="f", line=0, description="d")


@pytest.mark.parametrize(
    ("changes", "url"),
    [
        ({}, "https://github.com/acme/money"),
        ({"repo_url": "/srv/mirrors/money"}, "/srv/mirrors/money"),
        ({"repo": "https://gitlab.com/acme/money.git"}, "https://gitlab.com/acme/money.git"),
        ({"repo": "git@github.com:acme/money.git"}, "git@github.com:acme/money.git"),
        ({"repo": "file:///srv/money"}, "file:///srv/money"),
        ({"repo": "/srv/money"}, "/srv/money"),
        ({"repo": "./money"}, "./money"),
        ({"repo": "../money"}, "../money"),
        ({"repo": "~/src/money"}, "~/src/money"),
        ({"repo": "money", "repo_url": "https://example.org/money.git"}, "https://example.org/money.git"),
        ({"repo": "."}, "."),
    ],
)
def test_clone_url(changes, url):
    assert record(**changes).clone_url() == url


# --- reading ----------------------------------------------------------------------------


def test_round_trip_write_then_read_is_equal(tmp_path):
    tasks = [
        record(problem_statement="héllo “quotes” \u2028 and a line separator"),
        mutate_record(instance_id="money-2", valid=False, invalid_reason="gold patch does not apply"),
        TaskRecord.model_validate(SWE_BENCH_INSTANCE),
    ]
    path = tmp_path / "out" / "deeper" / "tasks.jsonl"
    assert write_records(path, tasks) == 3
    reads = read_records(path)
    assert [read.error for read in reads] == [None, None, None]
    assert [read.record for read in reads] == tasks
    assert [read.where for read in reads] == ["tasks.jsonl:1", "tasks.jsonl:2", "tasks.jsonl:3"]


def test_written_lines_are_utf8_json_in_field_order(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_records(path, [record(problem_statement="héllo")])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert "héllo" in lines[0]
    assert list(json.loads(lines[0])) == list(TaskRecord.model_fields)


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_records(path, [record()])
    os.chmod(path, 0o640)
    write_records(path, [record(instance_id="a"), record(instance_id="b")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.jsonl"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [read.record.instance_id for read in read_records(path)] == ["a", "b"]


def test_a_failing_write_keeps_the_old_file_and_cleans_up(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_records(path, [record(instance_id="old")])
    before = path.read_bytes()

    def broken():
        yield record(instance_id="new")
        raise RuntimeError("generator died")

    with pytest.raises(RuntimeError):
        write_records(path, broken())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks.jsonl"]


def test_writing_duplicate_ids_is_refused(tmp_path):
    path = tmp_path / "tasks.jsonl"
    with pytest.raises(ValueError, match="duplicate instance_id money-1"):
        write_records(path, [record(), record()])
    assert list(tmp_path.iterdir()) == []


def test_new_file_is_readable_by_others(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_records(path, [])
    assert path.read_text() == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_bad_lines_give_one_error_each_and_the_rest_still_load(tmp_path):
    good = record().model_dump(mode="json")
    missing = {k: v for k, v in SWE_BENCH_INSTANCE.items() if k != "base_commit"}
    bad_sha = good | {"instance_id": "money-bad-sha", "base_commit": "not-a-sha"}
    path = tmp_path / "tasks.jsonl"
    write_lines(
        path,
        json.dumps(good),  # 1
        "",  # 2: blank lines are skipped
        json.dumps(missing),  # 3
        "   ",  # 4
        '{"instance_id": "x" "repo": 1}',  # 5
        json.dumps(bad_sha),  # 6
        json.dumps(good | {"problem_statement": "again"}),  # 7
        json.dumps(good | {"instance_id": "money-2"}),  # 8
        "[1, 2]",  # 9
    )
    reads = read_records(path)
    assert [read.where for read in reads] == [f"tasks.jsonl:{n}" for n in (1, 3, 5, 6, 7, 8, 9)]
    assert [read.record.instance_id for read in reads if read.record] == ["money-1", "money-2"]
    errors = errors_of(reads)
    assert errors["tasks.jsonl:3"] == (
        "tasks.jsonl:3 (astropy__astropy-12907): missing field base_commit; "
        "every instance needs instance_id, repo, base_commit and patch"
    )
    assert errors["tasks.jsonl:5"] == "tasks.jsonl:5: not valid JSON (Expecting ',' delimiter at column 21)"
    assert errors["tasks.jsonl:6"].startswith("tasks.jsonl:6 (money-bad-sha): base_commit 'not-a-sha' is not a commit sha")
    assert errors["tasks.jsonl:7"].startswith("tasks.jsonl:7 (money-1): duplicate instance_id money-1 (first at tasks.jsonl:1)")
    assert errors["tasks.jsonl:9"].startswith("tasks.jsonl:9: expected a JSON object")
    assert all("\n" not in error for error in errors.values())


def test_several_problems_in_one_record_stay_on_one_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_lines(path, json.dumps({"repo": "acme/money", "FAIL_TO_PASS": "nope", "kind": "refactor"}))
    (read,) = read_records(path)
    assert read.record is None
    assert read.error.startswith("tasks.jsonl:1: missing fields instance_id, base_commit, patch; ")
    assert "FAIL_TO_PASS is a string but not a JSON list" in read.error
    assert "kind: Input should be 'mutate-fix' or 'issue-fix'" in read.error
    assert read.error.endswith("every instance needs instance_id, repo, base_commit and patch")
    assert "\n" not in read.error


def test_list_item_errors_name_the_item(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_lines(path, json.dumps(record().model_dump(mode="json") | {"PASS_TO_PASS": ["ok", 3]}))
    (read,) = read_records(path)
    assert read.error == "tasks.jsonl:1 (money-1): PASS_TO_PASS[1]: Input should be a valid string"


def test_mutate_fix_without_bug_patch_is_an_error_entry(tmp_path):
    path = tmp_path / "tasks.jsonl"
    data = mutate_record().model_dump(mode="json") | {"bug_patch": ""}
    write_lines(path, json.dumps(data))
    (read,) = read_records(path)
    assert read.error == "tasks.jsonl:1 (money-1): a mutate-fix task needs bug_patch, the unified diff that injects the bug"


def test_json_list_file_reports_items_by_index(tmp_path):
    good = record().model_dump(mode="json")
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([good, {"instance_id": "broken"}, good | {"instance_id": "money-3"}], indent=2))
    reads = read_records(path)
    assert [read.where for read in reads] == ["tasks.json[0]", "tasks.json[1]", "tasks.json[2]"]
    assert reads[1].error.startswith("tasks.json[1] (broken): missing fields repo, base_commit, patch")
    assert reads[2].record.instance_id == "money-3"


def test_broken_json_list_is_one_error_entry(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text('[\n  {"instance_id": "a"},\n  oops\n]\n')
    (read,) = read_records(path)
    assert read.where == "tasks.json"
    assert read.error.startswith("tasks.json: not valid JSON (Expecting value at line 3 column 3)")


def test_single_pretty_printed_object_is_one_record(tmp_path):
    path = tmp_path / "task.json"
    path.write_text("\n\n" + json.dumps(SWE_BENCH_INSTANCE, indent=2) + "\n")
    (read,) = read_records(path)
    assert read.where == "task.json:3"
    assert read.record.instance_id == "astropy__astropy-12907"


def test_byte_order_mark_and_crlf_are_tolerated(tmp_path):
    path = tmp_path / "tasks.jsonl"
    lines = [json.dumps(record(instance_id=name).model_dump(mode="json")) for name in ("a", "b")]
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    assert [read.record.instance_id for read in read_records(path)] == ["a", "b"]


def test_missing_file_raises_one_line_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"task file .*nope\.jsonl does not exist") as caught:
        read_records(tmp_path / "nope.jsonl")
    assert "\n" not in str(caught.value)


def test_non_utf8_file_raises_value_error(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_bytes(b'{"instance_id": "caf\xe9"}\n')
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        read_records(path)


def test_empty_file_has_no_records(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n \n")
    assert read_records(path) == []


# --- the world a task was validated in (as_of, python) -------------------------------------


def test_as_of_and_python_round_trip_and_default_to_none(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_records(path, [record(as_of="2023-10-01", python="3.11"), record(instance_id="money-2")])
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert (lines[0]["as_of"], lines[0]["python"]) == ("2023-10-01", "3.11")
    assert (lines[1]["as_of"], lines[1]["python"]) == (None, None)
    assert [(r.record.as_of, r.record.python) for r in read_records(path)] == [("2023-10-01", "3.11"), (None, None)]


def test_files_written_before_as_of_and_python_still_load(tmp_path):
    old = record().model_dump(mode="json")
    del old["as_of"], old["python"]
    path = tmp_path / "old.jsonl"
    write_lines(path, json.dumps(old), json.dumps(SWE_BENCH_INSTANCE))
    reads = read_records(path)
    assert [read.error for read in reads] == [None, None]
    assert all(read.record.as_of is None and read.record.python is None for read in reads)
