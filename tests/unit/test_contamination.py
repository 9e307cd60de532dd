import hashlib
import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from forager.integrity.benchmarks import REFERENCE, SWE_BENCH_REPOS, SWE_GYM_REPOS, reference_repos
from forager.integrity.contamination import (
    KEY,
    REFERENCE_LIST,
    Benchmark,
    BenchmarkInstance,
    SimilarityIndex,
    TaskSample,
    assess,
    changed_lines,
    is_contaminated,
    match_repo,
    normalise_repo,
    parse_date,
    patch_shingles,
    read_benchmark,
    reference_benchmark,
    summarise,
    task_repo,
    task_sample,
    text_shingles,
    time_relation,
)

SEPARABLE = """diff --git a/astropy/modeling/separable.py b/astropy/modeling/separable.py
--- a/astropy/modeling/separable.py
+++ b/astropy/modeling/separable.py
@@ -242,7 +242,7 @@ def _cstack(left, right):
         cright = _coord_matrix(right, 'right', noutp)
     else:
         cright = np.zeros((noutp, right.shape[1]))
-        cright[-right.shape[0]:, -right.shape[1]:] = 1
+        cright[-right.shape[0]:, -right.shape[1]:] = right
 
     return np.hstack([cleft, cright])
"""
# the same fix with one more changed line and other context: near-identical
SEPARABLE_NEAR = SEPARABLE.replace(
    "+        cright[-right.shape[0]:, -right.shape[1]:] = right\n",
    "+        cright[-right.shape[0]:, -right.shape[1]:] = right\n+        cright = cright.astype(bool)\n",
)
UNRELATED = """diff --git a/src/flask/app.py b/src/flask/app.py
--- a/src/flask/app.py
+++ b/src/flask/app.py
@@ -10,3 +10,3 @@ class Flask:
-    def url_for(self, endpoint, **values):
-        return self.url_map.bind("").build(endpoint, values)
+    def url_for(self, endpoint, *, _external=False, **values):
+        return self.url_map.bind(self.server_name).build(endpoint, values, force_external=_external)
"""
STATEMENT = ("Modeling's `separability_matrix` does not compute separability correctly for nested CompoundModels. "
             "Consider the following model: cm = m.Linear1D(10) & m.Linear1D(5); the matrix is diagonal as expected, "
             "but when the compound model is nested the inputs and outputs are no longer separable.")


def instance(instance_id="astropy__astropy-12907", repo="astropy/astropy", created_at="2022-03-03T15:14:54Z",
             patch=SEPARABLE, problem_statement=STATEMENT, **extra):
    return {"instance_id": instance_id, "repo": repo, "created_at": created_at, "patch": patch,
            "problem_statement": problem_statement, "base_commit": "d16bfe05a744909de4b27f5875fe0d4ed41ce607", **extra}


def sample(instance_id="t1", repo="astropy/astropy", date=None, patch="", statement="", source="instance created_at"):
    return TaskSample(instance_id=instance_id, repo=repo, date=date, date_source=source if date else None, patch=patch,
                      problem_statement=statement)


def test_normalise_repo_drops_case_scheme_host_and_dot_git():
    for text in ("astropy/astropy", "Astropy/Astropy", "https://github.com/astropy/astropy",
                 "https://github.com/astropy/astropy.git", "http://GitHub.com/astropy/astropy/",
                 "git@github.com:astropy/astropy.git", "github.com/astropy/astropy", " astropy/astropy.git "):
        assert normalise_repo(text) == "astropy/astropy", text
    assert normalise_repo("https://gitlab.example.org/group/sub/tool.git") == "sub/tool"  # last two path parts
    # a local path's parent folder is not an owner: the bare name
    assert normalise_repo("/tmp/pytest-7/ledger") == "ledger"
    assert normalise_repo("./Ledger/") == "ledger"
    assert normalise_repo("file:///srv/mirrors/flask.git") == "flask"
    assert normalise_repo("ledger") == "ledger"


def test_task_repo_prefers_owner_and_name():
    assert task_repo("astropy/astropy", "/srv/mirrors/astropy") == "astropy/astropy"  # an import names it
    assert task_repo("flask", "https://github.com/pallets/flask.git") == "pallets/flask"  # forager's short name
    assert task_repo("ledger", "/tmp/x/ledger") == "ledger"  # a local repository: its name
    assert task_repo("", "https://github.com/psf/requests") == "psf/requests"


def test_match_repo_in_full_or_by_name_when_one_side_has_no_owner():
    repos = ["pallets/flask", "psf/requests", "ledger"]
    assert match_repo("pallets/flask", repos) == ("pallets/flask", "owner/name")
    assert match_repo("flask", repos) == ("pallets/flask", "name")  # a local clone named flask
    assert match_repo("someone/ledger", repos) == ("ledger", "name")
    assert match_repo("someone/flask", repos) == (None, None)  # both have owners: a fork is another repository
    assert match_repo("django", repos) == (None, None)


def test_reference_list_lookup():
    repos = reference_repos()
    assert len(SWE_BENCH_REPOS) == 12 and len(SWE_GYM_REPOS) == 11
    assert repos["astropy/astropy"] == ["SWE-bench (test, Lite, Verified)"]
    assert repos["project-monai/monai"] == ["SWE-Gym"]  # keys are lower-case
    assert all(b.source for b in REFERENCE)
    benchmark = reference_benchmark()
    assert benchmark.against == REFERENCE_LIST and benchmark.instances == [] and benchmark.sha256 is None
    assert match_repo(normalise_repo("https://github.com/Project-MONAI/MONAI.git"), benchmark.repos)[0] == \
        "project-monai/monai"
    assert match_repo(task_repo("ledger", "/tmp/ledger"), benchmark.repos) == (None, None)


def test_reference_list_marks_a_benchmark_repository_with_unknown_date():
    results = assess([sample("a", "django/django"), sample("b", "ledger")], reference_benchmark())
    django, ledger = results["a"], results["b"]
    assert django.benchmark_repo == "django/django" and django.benchmarks == ["SWE-bench (test, Lite, Verified)"]
    assert django.time.relation == "unknown" and django.time.first_instance_date is None
    assert django.contaminated and django.reasons == ["repository"]
    assert django.against == "reference list" and django.benchmark_instances == 0
    assert not ledger.contaminated and ledger.benchmark_repo is None and ledger.time is None


def test_parse_date():
    assert parse_date("2022-03-03T15:14:54Z") == datetime(2022, 3, 3, 15, 14, 54, tzinfo=UTC)
    assert parse_date("2022-03-03") == datetime(2022, 3, 3, tzinfo=UTC)  # no zone: UTC
    assert parse_date("2022-03-03T17:14:54+02:00") == datetime(2022, 3, 3, 15, 14, 54, tzinfo=UTC)
    assert parse_date(1646320494000) == datetime(2022, 3, 3, 15, 14, 54, tzinfo=UTC)  # pandas: milliseconds
    assert parse_date(1646320494) == datetime(2022, 3, 3, 15, 14, 54, tzinfo=UTC)
    for value in (None, "", "soon", True, []):
        assert parse_date(value) is None


def test_time_relation_is_on_or_after_before_or_unknown():
    first = BenchmarkInstance(instance_id="x__x-1", repo="x/x", created_at=parse_date("2022-03-03T15:14:54Z"))
    same = time_relation(parse_date("2022-03-03T15:14:54Z"), "instance created_at", first)
    assert same.relation == "on_or_after"  # on the day and second counts
    assert same.first_instance_id == "x__x-1" and same.first_instance_date == "2022-03-03T15:14:54+00:00"
    assert same.task_date == "2022-03-03T15:14:54+00:00" and same.task_date_source == "instance created_at"
    assert time_relation(parse_date("2022-03-03T15:14:53Z"), "base commit date", first).relation == "before"
    assert time_relation(parse_date("2024-01-01"), "base commit date", first).relation == "on_or_after"
    unknown = time_relation(None, None, first)
    assert unknown.relation == "unknown" and unknown.task_date is None and unknown.first_instance_id == "x__x-1"
    no_dates = time_relation(parse_date("2024-01-01"), "x", BenchmarkInstance(instance_id="y", repo="x/x"))
    assert no_dates.relation == "unknown" and no_dates.first_instance_id is None


def test_time_uses_the_repositorys_earliest_instance():
    repos = {"x/x": ["b.jsonl"], "y/y": ["b.jsonl"]}
    benchmark = Benchmark(against="b.jsonl", sha256="0" * 64, repos=repos, instances=[
        BenchmarkInstance(instance_id="x-2", repo="x/x", created_at=parse_date("2023-06-01")),
        BenchmarkInstance(instance_id="x-1", repo="x/x", created_at=parse_date("2021-01-01")),
        BenchmarkInstance(instance_id="x-0", repo="x/x"),  # no date: not the first
        BenchmarkInstance(instance_id="y-1", repo="y/y", created_at=parse_date("2010-01-01")),
    ])
    results = assess([sample("old", "x/x", parse_date("2020-12-31")), sample("mid", "x/x", parse_date("2022-01-01")),
                      sample("undated", "x/x")], benchmark)
    assert results["old"].time.relation == "before" and results["old"].time.first_instance_id == "x-1"
    assert not results["old"].contaminated  # its code predates every instance of its repository
    assert results["mid"].time.relation == "on_or_after" and results["mid"].reasons == ["repository"]
    assert results["undated"].time.relation == "unknown" and results["undated"].contaminated


def test_changed_lines_without_headers_and_signs():
    assert changed_lines(SEPARABLE) == ["        cright[-right.shape[0]:, -right.shape[1]:] = 1",
                                        "        cright[-right.shape[0]:, -right.shape[1]:] = right"]
    reversed_patch = (SEPARABLE.replace("-        cright", "<old>").replace("+        cright", "-        cright")
                      .replace("<old>", "+        cright"))
    assert reversed_patch != SEPARABLE
    assert patch_shingles(reversed_patch) == patch_shingles(SEPARABLE)  # a mutate-fix gold patch undoes a bug
    assert text_shingles("") == set() and patch_shingles("diff --git a/x b/x\n") == set()


def test_minhash_matches_a_near_identical_patch_not_an_unrelated_one():
    index = SimilarityIndex(0.5)
    index.add("near", patch_shingles(SEPARABLE_NEAR))
    index.add("unrelated", patch_shingles(UNRELATED))
    index.add("empty", patch_shingles(""))
    found = index.matches(patch_shingles(SEPARABLE))
    assert [m.instance_id for m in found] == ["near"]
    assert 0.5 <= found[0].similarity < 1.0
    assert index.matches(set()) == []  # an empty text matches nothing, not even another empty one
    assert [m.instance_id for m in SimilarityIndex(1.0).matches(patch_shingles(SEPARABLE))] == []


def test_assess_matches_patches_and_statements_across_repositories():
    benchmark = Benchmark(against="b.jsonl", sha256="f" * 64, repos={"astropy/astropy": ["b.jsonl"]}, instances=[
        BenchmarkInstance(instance_id="astropy__astropy-12907", repo="astropy/astropy", patch=SEPARABLE,
                          problem_statement=STATEMENT, created_at=parse_date("2022-03-03")),
        BenchmarkInstance(instance_id="pallets__flask-1", repo="pallets/flask", patch=UNRELATED,
                          problem_statement="url_for ignores SERVER_NAME when building external URLs"),
    ])
    copied = sample("copy", "someone/separability", patch=SEPARABLE_NEAR, statement=STATEMENT + " Thanks!")
    other = sample("other", "ledger", patch=UNRELATED.replace("flask", "ledger").replace("url_for", "format_amount")
                   .replace("endpoint", "amount").replace("url_map", "formatter").replace("build", "render")
                   .replace("server_name", "currency").replace("_external", "_sign").replace("values", "options"),
                   statement="format_amount(-5) gives '-1.95' instead of '-0.05'")
    results = assess([copied, other], benchmark, patch_threshold=0.5, statement_threshold=0.6)
    r = results["copy"]
    assert r.benchmark_repo is None and r.time is None  # another repository: only the text can match
    assert [m.instance_id for m in r.patch_matches] == ["astropy__astropy-12907"] and r.patch_match_count == 1
    assert [m.instance_id for m in r.statement_matches] == ["astropy__astropy-12907"]
    assert r.contaminated and r.reasons == ["patch", "statement"]
    assert r.patch_threshold == 0.5 and r.statement_threshold == 0.6 and r.against_sha256 == "f" * 64
    assert not results["other"].contaminated and results["other"].reasons == []
    summary = {row.repo: row for row in summarise(results.values())}
    assert summary["someone/separability"].patch_matches == 1 and summary["someone/separability"].contaminated == 1
    assert summary["ledger"].contaminated == 0 and summary["ledger"].tasks == 1


def test_is_contaminated_reads_the_record():
    record = assess([sample("a", "django/django")], reference_benchmark())["a"].model_dump(mode="json")
    assert is_contaminated({KEY: record, "determinism": {"verified": True}})
    assert not is_contaminated({KEY: {**record, "contaminated": False}})
    assert not is_contaminated({}) and not is_contaminated(None) and not is_contaminated({KEY: "yes"})


def test_task_sample_dates_from_the_instance_else_the_base_commit():
    repo = SimpleNamespace(url="/tmp/x/ledger", name="ledger")
    task = SimpleNamespace(instance_id="ledger__mutate-1", repo_name="ledger", instance_created_at=None,
                           gold_patch=SEPARABLE, problem_statement="s")
    commit = datetime(2024, 5, 1, tzinfo=UTC)
    s = task_sample(task, repo, commit)
    assert s.repo == "ledger" and s.date == commit and s.date_source == "base commit date"
    assert task_sample(task, repo).date is None and task_sample(task, repo).date_source is None
    task.instance_created_at = "2023-01-02T03:04:05+00:00"
    s = task_sample(task, repo, commit)
    assert s.date == datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC) and s.date_source == "instance created_at"


# -- reading benchmark files ----------------------------------------------------------------------------------
def test_read_json_list(tmp_path):
    path = tmp_path / "verified.json"
    path.write_text(json.dumps([instance(), instance("pallets__flask-4045", "pallets/flask", None, UNRELATED, "x")]))
    benchmark = read_benchmark(path)
    assert benchmark.against == "verified.json"
    assert benchmark.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [i.instance_id for i in benchmark.instances] == ["astropy__astropy-12907", "pallets__flask-4045"]
    assert benchmark.instances[0].created_at == datetime(2022, 3, 3, 15, 14, 54, tzinfo=UTC)
    assert benchmark.instances[1].created_at is None
    assert set(benchmark.repos) == {"astropy/astropy", "pallets/flask"}


def test_read_jsonl_tolerates_missing_fields(tmp_path):
    path = tmp_path / "lite.jsonl"
    minimal = {"instance_id": "psf__requests-1", "repo": "https://github.com/psf/requests.git", "patch": None}
    path.write_text("\ufeff" + json.dumps(instance()) + "\n\n" + json.dumps(minimal) + "\n")
    benchmark = read_benchmark(path)
    second = benchmark.instances[1]
    assert second.repo == "psf/requests" and second.patch == "" and second.problem_statement == ""
    assert second.created_at is None
    one = tmp_path / "one.json"
    one.write_text(json.dumps(instance(), indent=2))
    assert [i.instance_id for i in read_benchmark(one).instances] == ["astropy__astropy-12907"]


@pytest.mark.parametrize(("name", "text", "error"), [
    ("b.jsonl", json.dumps(instance()) + "\n{\"instance_id\": \"x\", \n", "b.jsonl:2: not valid JSON"),
    ("b.jsonl", json.dumps(instance()) + "\n" + json.dumps({"repo": "a/b"}) + "\n",
     "b.jsonl:2: missing instance_id; every benchmark instance needs instance_id and repo"),
    ("b.jsonl", json.dumps(instance()) + "\n\n" + json.dumps({"instance_id": "a", "repo": " "}) + "\n",
     "b.jsonl:3: missing repo"),
    ("b.json", json.dumps([instance(), 3]), "b.json[1]: expected a JSON object (a SWE-bench instance), got int"),
    ("b.json", "[" + json.dumps(instance()) + ",\n", "b.json: not valid JSON"),
    ("b.jsonl", "\n\n", "holds no instances"),
])
def test_a_broken_instance_is_one_clear_error(tmp_path, name, text, error):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        read_benchmark(path)
    message = str(caught.value)
    assert error in message and "\n" not in message


def test_a_missing_or_binary_file_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_benchmark(tmp_path / "absent.jsonl")
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="is not UTF-8"):
        read_benchmark(binary)
