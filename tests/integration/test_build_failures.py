"""Every failure category: one clear line naming the repo and cause, recorded, and other builds go on."""

from __future__ import annotations

import json

import pytest

from forager.models import RepoRef
from tests.conftest import make_repo
from tests.integration.conftest import run_cli

SETUP_PY_PKG = {
    "setup.py": "from setuptools import setup\nsetup(name='pkg', version='0.1', packages=['pkg'])\n",
    "pkg/__init__.py": "def one():\n    return 1\n",
}
PASSING_TEST = {"tests/test_pkg.py": "from pkg import one\n\ndef test_one():\n    assert one() == 1\n"}


def test_missing_path_is_a_clone_failure(builder, tmp_path, store):
    result = builder.build(RepoRef(url=str(tmp_path / "nope")))
    assert (result.status, result.category) == ("failed", "clone")
    assert str(tmp_path / "nope") in result.message and "no such path" in result.message
    image, _repo = store.images()[-1]
    assert image.failure_category == "clone" and image.status == "failed"
    builder.build(RepoRef(url=str(tmp_path / "nope")))  # a retry updates the same row
    assert len(store.images()) == 1
    make_repo(tmp_path / "nope", {**SETUP_PY_PKG, **PASSING_TEST})  # the repo appears: the failure is history
    assert builder.build(RepoRef(url=str(tmp_path / "nope"))).status == "ready"
    assert [image.status for image, _repo in store.images()] == ["ready"]


def test_unknown_commit_is_a_clone_failure(builder, repo_factory):
    root, _ = repo_factory("pkg", {**SETUP_PY_PKG, **PASSING_TEST})
    result = builder.build(RepoRef(url=str(root), ref="0123456789abcdef0123456789abcdef01234567"))
    assert result.category == "clone" and "not found" in result.message


def test_repo_without_python_is_a_detect_failure(builder, repo_factory):
    root, _ = repo_factory("docs-only", {"README.md": "# just words\n", "Makefile": "all:\n\techo hi\n"})
    result = builder.build(RepoRef(url=str(root)))
    assert result.category == "detect" and "docs-only" in result.message


def test_broken_override_is_a_detect_failure(builder, settings, repo_factory):
    root, _ = repo_factory("pkg", {**SETUP_PY_PKG, **PASSING_TEST})
    settings.overrides_dir.mkdir(parents=True, exist_ok=True)
    (settings.overrides_dir / "pkg.toml").write_text("python = [unclosed\n")
    result = builder.build(RepoRef(url=str(root)))
    assert result.category == "detect" and "pkg.toml is not valid TOML" in result.message


def test_repo_without_tests_is_a_no_tests_failure(builder, repo_factory):
    root, _ = repo_factory("untested", SETUP_PY_PKG)
    result = builder.build(RepoRef(url=str(root)))
    assert result.category == "no-tests", result.message


def test_broken_setup_is_an_install_failure(builder, repo_factory, store):
    broken = {"setup.py": "raise SystemExit('this setup.py is broken on purpose')\n", "pkg/__init__.py": ""}
    root, _ = repo_factory("broken", {**broken, **PASSING_TEST})
    result = builder.build(RepoRef(url=str(root)))
    assert result.category == "install", result.message
    assert "install step failed" in result.message
    image, _repo = next((i, r) for i, r in store.images() if i.id == result.image_id)
    # the failed row keeps what was tried: spec, python and tag, for a user to inspect and override
    assert image.python_version == "3.11" and image.spec_hash and image.tag == result.tag


def test_missing_base_image_is_a_build_failure(settings, store, engine, repo_factory):
    from forager.images.pipeline import ImageBuilder

    root, _ = repo_factory("pkg", {**SETUP_PY_PKG, **PASSING_TEST})
    # 3.10: no bootstrapped base can stand in for it (Debian ships none), so the configured one is tried and missing
    assert not engine.image_exists("forager/bootstrap-python:3.10")
    settings = settings.model_copy(update={"base_image": "forager/no-such-base:{python}", "python_versions": ["3.10"]})
    result = ImageBuilder(settings, store, engine).build(RepoRef(url=str(root)))
    assert result.category == "build" and result.base_image == "forager/no-such-base:3.10"
    assert "forager/no-such-base:3.10" in result.message and "bootstrap-base" in result.message
    assert "\n" not in result.message


def test_a_missing_configured_base_is_stood_in_for_by_the_bootstrapped_one(settings, store, engine, repo_factory):
    from forager.images.pipeline import ImageBuilder

    if not engine.image_exists("forager/bootstrap-python:3.11"):  # `make test` makes it; never skipped
        pytest.fail("base image forager/bootstrap-python:3.11 is missing: `make test` makes it "
                    "(forager bootstrap-base --python 3.11)", pytrace=False)
    root, _ = repo_factory("pkg", {**SETUP_PY_PKG, **PASSING_TEST})
    settings = settings.model_copy(update={"base_image": "forager/no-such-base:{python}", "validation_runs": 1})
    result = ImageBuilder(settings, store, engine).build(RepoRef(url=str(root)))
    assert result.status == "ready" and result.base_image == "forager/bootstrap-python:3.11", result.message
    image, _repo = next((i, r) for i, r in store.images() if i.id == result.image_id)
    assert image.base_image == result.base_image
    assert any(note.startswith("base forager/bootstrap-python:3.11: stands in for forager/no-such-base:3.11")
               for note in image.spec["notes"])


def test_all_tests_failing_is_a_tests_error(builder, repo_factory):
    failing = {"tests/test_pkg.py": "def test_a():\n    assert False\n\ndef test_b():\n    raise RuntimeError\n"}
    root, _ = repo_factory("allfail", {**SETUP_PY_PKG, **failing})
    result = builder.build(RepoRef(url=str(root)))
    assert result.category == "tests-error" and "2 failed" in result.message


def test_slow_suite_is_a_timeout(settings, store, engine, repo_factory):
    from forager.images.pipeline import ImageBuilder

    # slow as a whole, no test slow alone: one test that hangs is one failed test (test_hanging_test.py)
    slow = {"tests/test_slow.py": "import time\n\nimport pytest\n\n\n@pytest.mark.parametrize('n', range(30))\n"
                                  "def test_slow(n):\n    time.sleep(1)\n"}
    root, _ = repo_factory("slow", {**SETUP_PY_PKG, **slow})
    settings = settings.model_copy(update={"test_timeout": 5, "validation_runs": 1})
    result = ImageBuilder(settings, store, engine).build(RepoRef(url=str(root)))
    assert result.category == "timeout", result.message


def test_cli_reports_each_failure_and_keeps_building_the_others(settings, repo_factory, tmp_path):
    good, _ = repo_factory("good", {**SETUP_PY_PKG, **PASSING_TEST})
    bad = tmp_path / "does-not-exist"
    repos_file = tmp_path / "repos.txt"
    repos_file.write_text(f"# a comment\n{bad}\n\n{good}\n")
    proc = run_cli("build-images", "--repos-file", str(repos_file), "--jobs", "2", settings=settings)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot clone {bad}: no such path" in proc.stderr  # one line naming the repo and the cause
    assert "1/2 ready" in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if "does-not-exist" in line)
    assert "clone" in row and "ready" not in row

    as_json = run_cli("status", "--json", settings=settings, check=True)
    images = json.loads(as_json.stdout)["images"]
    assert sorted(i["status"] for i in images) == ["failed", "ready"]
    assert {i["repo_name"] for i in images} == {"good", "does-not-exist"}
    ready = next(i for i in images if i["status"] == "ready")
    baseline = json.loads(run_cli("status", "--image", str(ready["id"]), "--json", settings=settings, check=True).stdout)
    assert [(t["test_id"], t["status"]) for t in baseline] == [("tests/test_pkg.py::test_one", "passed")]
    missing = run_cli("status", "--image", "999", settings=settings)
    assert missing.returncode == 2 and "no such image" in missing.stderr


@pytest.mark.parametrize("args, needle", [(["build-images"], "no repositories given"),
                                          (["build-images", "--repos-file", "/nonexistent"], "--repos-file")])
def test_cli_bad_arguments_get_one_line(settings, args, needle):
    proc = run_cli(*args, settings=settings)
    assert proc.returncode == 2 and needle in proc.stderr
