import pytest

from forager.models import EnvSpec, RepoRef


@pytest.mark.parametrize(
    "text, url, ref",
    [
        ("https://example.org/a/b.git", "https://example.org/a/b.git", None),
        ("https://example.org/a/b.git@1a2b3c", "https://example.org/a/b.git", "1a2b3c"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git", None),
        ("git@github.com:org/repo.git@v1.2.0", "git@github.com:org/repo.git", "v1.2.0"),
        ("/tmp/some/repo@release/2.x", "/tmp/some/repo", "release/2.x"),
        ("./repo", "./repo", None),
        ("file:///srv/x@deadbeef", "file:///srv/x", "deadbeef"),
    ],
)
def test_repo_ref_parse(text, url, ref):
    parsed = RepoRef.parse(text)
    assert (parsed.url, parsed.ref) == (url, ref)
    assert str(parsed) == text


def test_repo_ref_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        RepoRef.parse("  ")


@pytest.mark.parametrize(
    "url, name",
    [("https://x.org/Org/My_Repo.git", "my_repo"), ("/tmp/a/b/", "b"), ("git@h:o/r.git", "r"), ("/", "repo")],
)
def test_repo_name(url, name):
    assert RepoRef(url=url).name == name


def test_spec_hash_ignores_notes_but_not_fields():
    a = EnvSpec(python="3.11", notes=["x"])
    assert a.content_hash("c1") == EnvSpec(python="3.11", notes=["y"]).content_hash("c1")
    assert a.content_hash("c1") != a.content_hash("c2")
    assert a.content_hash("c1") != EnvSpec(python="3.12").content_hash("c1")
