"""build-images on a tiny fixture repository: ready, baseline, flaky marking, sanitised history, cache hit."""

from __future__ import annotations

from forager.models import RepoRef
from tests.conftest import git, minimal_pyproject

PYPROJECT = minimal_pyproject("tinycalc")

TINY_V1 = {
    "pyproject.toml": PYPROJECT,
    "tinycalc/__init__.py": "def add(a, b):\n    return a + b\n\n\ndef div(a, b):\n    return a / b\n",
    "tests/test_calc.py": (
        "import os\nimport pytest\nfrom tinycalc import add, div\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n\n"
        "@pytest.mark.parametrize('a, b, want', [(1, 1, 2), (2, -2, 0), (0.5, 0.25, 0.75)])\n"
        "def test_add_many(a, b, want):\n    assert add(a, b) == want\n\n\n"
        "def test_div_by_zero():\n    with pytest.raises(ZeroDivisionError):\n        div(1, 0)\n\n\n"
        "def test_known_bug():\n    assert div(1, 3) == 0.3333\n\n\n"
        "@pytest.mark.skip(reason='not written yet')\ndef test_later():\n    pass\n\n\n"
        "def test_flaky():\n    # fails only in the second validation run: a stand-in for a real flaky test\n"
        "    assert os.environ.get('FORAGER_RUN_INDEX') != '2'\n"
    ),
}
# A later commit on the same branch: the image of the first commit must not contain it.
TINY_V2 = {"tinycalc/__init__.py": TINY_V1["tinycalc/__init__.py"] + "\n\ndef FUTURE_FIX():\n    pass\n"}


def test_fixture_repo_is_ready_with_baseline_flaky_and_clean_history(repo_factory, builder, store, engine):
    root, (first, second) = repo_factory("tinycalc", TINY_V1, TINY_V2)
    git(root, "tag", "v0.1", first)
    git(root, "tag", "-a", "v0.2", "-m", "the release with the fix", second)
    result = builder.build(RepoRef(url=str(root), ref=first))

    assert result.status == "ready", result.message
    assert result.commit == first
    assert (result.passed, result.failed, result.skipped, result.flaky) == (6, 1, 1, 1)
    baseline = {b.test_id: b for b in store.baseline(result.image_id)}
    assert baseline["tests/test_calc.py::test_add_many[0.5-0.25-0.75]"].status == "passed"
    assert baseline["tests/test_calc.py::test_known_bug"].status == "failed"
    assert baseline["tests/test_calc.py::test_later"].status == "skipped"
    flaky = baseline["tests/test_calc.py::test_flaky"]
    assert flaky.flaky and flaky.statuses == ["passed", "failed"]
    assert sum(b.flaky for b in baseline.values()) == 1

    # history: only the checked-out commit, no remote, the later commit unreachable and absent
    probe = engine.run(
        result.tag,
        ["sh", "-c", f"cd /testbed && git rev-list --all | wc -l && git remote | wc -l && "
                     f"(git cat-file -e {second} 2>/dev/null && echo LEAK || echo absent) && "
                     "grep -c FUTURE_FIX tinycalc/__init__.py; git status --porcelain | wc -l; git tag"],
        timeout=60,
    )
    # one commit, no remote, the later commit absent, clean tree, and only the tag of the past (v0.1)
    assert probe.output.split() == ["1", "0", "absent", "0", "0", "v0.1"], probe.output

    # the CA bundle the build trusted is recorded, and not left in the image's environment
    labels = engine.image_attrs(result.tag)["Config"]["Labels"]
    assert labels["forager.commit"] == first
    assert labels["forager.ca-bundle-sha256"] == (builder.ca_sha if builder.ca_bundle else "none")
    env = engine.image_attrs(result.tag)["Config"]["Env"]
    assert not any(e.startswith(("PIP_CERT=", "SSL_CERT_FILE=")) for e in env)

    # the same commit again: a cache hit, no build, same row
    again = builder.build(RepoRef(url=str(root), ref=first))
    assert again.cached and again.status == "ready"
    assert again.image_id == result.image_id and again.tag == result.tag

    # the branch head is another commit, hence another image
    head = builder.build(RepoRef(url=str(root)))
    assert head.commit == second and not head.cached and head.tag != result.tag


def test_suite_broken_by_newest_pytest_falls_back_to_an_older_major(repo_factory, builder, store):
    # pytest 9 removed the py.path `path` argument of collection hooks; suites written before still use it
    old_style = {
        "pyproject.toml": PYPROJECT,
        "tinycalc/__init__.py": TINY_V1["tinycalc/__init__.py"],
        "tests/conftest.py": "def pytest_collect_file(file_path, path, parent):\n    return None\n",
        "tests/test_calc.py": "from tinycalc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    }
    root, _ = repo_factory("oldsuite", old_style)
    result = builder.build(RepoRef(url=str(root)))
    assert result.status == "ready", result.message
    assert result.passed == 1
    image, _repo = next((i, r) for i, r in store.images() if i.id == result.image_id)
    assert any(note.startswith("fallback: pytest<9") for note in image.spec["notes"])
    again = builder.build(RepoRef(url=str(root)))
    assert again.cached and again.image_id == result.image_id
