"""build-images on real third-party repositories (PyPI source distributions made into git repos)."""

from __future__ import annotations

from pathlib import Path

import pytest

from forager.models import RepoRef
from forager.sdist_repos import git_commit_all, repo_from_sdist

SDIST_CACHE = Path.home() / ".cache" / "forager-tests" / "sdists"

# (requirement, fewest passing tests we expect): small pure-Python projects whose sdists ship their suites
REAL_REPOS = [("iniconfig==2.3.1", 40), ("six==1.17.0", 150), ("cachetools==8.0.2", 400)]


@pytest.mark.parametrize("requirement, min_passed", REAL_REPOS, ids=[r for r, _ in REAL_REPOS])
def test_real_repository_is_ready(requirement, min_passed, builder, store, tmp_path):
    repo = repo_from_sdist(requirement, tmp_path / requirement.split("==")[0], SDIST_CACHE)
    result = builder.build(RepoRef(url=str(repo)))
    assert result.status == "ready", f"{result.category}: {result.message}"
    assert result.passed >= min_passed
    baseline = store.baseline(result.image_id)
    assert len(baseline) == result.passed + result.failed + result.errors + result.skipped
    assert all("::" in b.test_id for b in baseline if b.status == "passed")


def test_second_commit_reuses_the_dependency_layer(builder, engine, tmp_path):
    repo = repo_from_sdist("six==1.17.0", tmp_path / "six", SDIST_CACHE)
    first = builder.build(RepoRef(url=str(repo)))
    (repo / "CHANGES").write_text((repo / "CHANGES").read_text() + "\nA later change.\n")
    git_commit_all(repo, "a second commit")
    second = builder.build(RepoRef(url=str(repo)))
    assert first.status == second.status == "ready"
    assert first.tag != second.tag and not second.cached
    # the layer that installs the statically known requirements is the very same image layer
    def requirements_layer(tag):
        history = engine.client.api.history(tag)
        return next(h["Id"] for h in history if "pip install -r /usr/local/share/forager/requirements.txt" in h["CreatedBy"])

    assert requirements_layer(first.tag) == requirements_layer(second.tag)
    assert engine.added_bytes(second.tag, first.tag) < 5_000_000  # the source and its editable install only
