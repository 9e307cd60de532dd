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
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git", None),
        ("ssh://git@github.com/o/r.git@v1", "ssh://git@github.com/o/r.git", "v1"),
        ("https://oauth2:tok@gitlab.com/g/p.git", "https://oauth2:tok@gitlab.com/g/p.git", None),
        ("../corpus/flask.bundle@main~3", "../corpus/flask.bundle", "main~3"),
        ("/srv/repo@v1.0^", "/srv/repo", "v1.0^"),
    ],
)
def test_repo_ref_parse(text, url, ref):
    parsed = RepoRef.parse(text)
    assert (parsed.url, parsed.ref) == (url, ref)
    assert str(parsed) == text.replace(":tok@", "***@")


def test_credentials_never_shown():
    ref = RepoRef.parse("https://user:s3cret@host.example/g/p.git@abc")
    assert "s3cret" not in str(ref) and "s3cret" not in ref.safe_url and ref.url.count("s3cret") == 1


def test_repo_ref_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        RepoRef.parse("  ")


@pytest.mark.parametrize(
    "url, name",
    [("https://x.org/Org/My_Repo.git", "my_repo"), ("/tmp/a/b/", "b"), ("git@h:o/r.git", "r"), ("/", "repo"),
     ("/x/my..repo", "my-repo"), ("/x/a_-b", "a-b"), ("/x/Hello World!", "hello-world"), ("/x/__init__", "init")],
)
def test_repo_name(url, name):
    assert RepoRef(url=url).name == name


def test_spec_hash_ignores_notes_but_not_fields():
    a = EnvSpec(python="3.11", notes=["x"])
    assert a.content_hash("c1") == EnvSpec(python="3.11", notes=["y"]).content_hash("c1")
    assert a.content_hash("c1") != a.content_hash("c2")
    assert a.content_hash("c1") != EnvSpec(python="3.12").content_hash("c1")
