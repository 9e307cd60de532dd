import pytest

from forager.images.render import NO_CA_BUNDLE, install_commands, render
from forager.models import EnvSpec


def plan_for(spec, **kw):
    args = dict(repo_url="/src/ledger", repo_name="ledger", commit="a" * 40, base_image="python:3.11-slim",
                image_prefix="forager-env")
    args.update(kw)
    return render(spec, **args)


def test_layers_and_tags():
    spec = EnvSpec(python="3.11", requirements=["pytest", "attrs>=22"], project_install=".[test]")
    plan = plan_for(spec)
    assert plan.base_dockerfile.splitlines()[2] == "FROM python:3.11-slim"
    assert f"FROM {plan.base_tag}" in plan.env_dockerfile
    assert plan.env_tag == f"forager-env/ledger:{plan.spec_hash[:16]}"
    assert plan.requirements_txt == "pytest\nattrs>=22\n"
    # dependencies are installed before the source is copied: that layer is shared across commits
    deps = plan.env_dockerfile.index("pip install -r /usr/local/share/forager/requirements.txt")
    source = plan.env_dockerfile.index("COPY repo/ /testbed/")
    project = plan.env_dockerfile.index("pip install -e '.[test]'")
    assert deps < source < project
    assert 'forager.commit="' + "a" * 40 in plan.env_dockerfile


def test_hash_changes_with_commit_spec_and_base_but_not_notes():
    spec = EnvSpec(python="3.11")
    base = plan_for(spec).spec_hash
    assert plan_for(spec, commit="b" * 40).spec_hash != base
    assert plan_for(spec, base_image="forager/bootstrap:3.11").spec_hash != base
    assert plan_for(EnvSpec(python="3.11", requirements=["x"])).spec_hash != base
    assert plan_for(EnvSpec(python="3.11", notes=["why"])).spec_hash == base


def test_ca_bundle_only_during_build():
    spec = EnvSpec(python="3.11")
    without = plan_for(spec).env_dockerfile
    assert "forager-ca.crt" not in without and "ARG PIP_CERT" not in without
    with_ca = plan_for(spec, ca_bundle_sha256="f" * 64)
    assert "COPY forager-ca.crt /usr/local/share/forager/ca.crt" in with_ca.env_dockerfile
    assert "ARG PIP_CERT=/usr/local/share/forager/ca.crt" in with_ca.env_dockerfile
    assert "ENV PIP_CERT" not in with_ca.env_dockerfile
    assert 'forager.ca-bundle-sha256="' + "f" * 64 in with_ca.env_dockerfile
    assert with_ca.spec_hash == plan_for(spec).spec_hash  # build-time trust does not change the image's key
    assert NO_CA_BUNDLE in without


def test_install_commands_order_and_optional_packages_are_best_effort():
    spec = EnvSpec(
        python="3.11", pre_install=["echo pre"], requirement_files=["requirements-test.txt"],
        project_install=".", editable=False, optional_packages=["PyYAML", "toml"], post_install=["echo post"],
    )
    commands = install_commands(spec, 60)
    assert commands[0] == "echo pre"
    assert commands[1] == "timeout 60 pip install -r requirements-test.txt"
    assert commands[2] == "timeout 60 pip install ."
    assert "for p in PyYAML toml" in commands[3] and "skipped optional" in commands[3]
    assert commands[-1] == "echo post"


def test_no_project_install_and_env():
    spec = EnvSpec(python="3.12", project_install=None, env={"A": "1 2"})
    plan = plan_for(spec, base_image="python:3.12-slim")
    assert "pip install -e" not in plan.env_dockerfile
    assert 'ENV A="1 2"' in plan.env_dockerfile
    assert plan.base_tag.startswith("forager-base:py3.12-")


def test_system_packages_come_first():
    spec = EnvSpec(python="3.11", system_packages=["libxml2-dev", "pkg-config"], pre_install=["echo pre"])
    commands = install_commands(spec, 60)
    assert "apt-get install -y -qq --no-install-recommends libxml2-dev pkg-config" in commands[0]
    assert commands[1] == "echo pre"


def test_hash_follows_the_env_template(tmp_path):
    import shutil

    from forager.images.render import TEMPLATES_DIR

    for name in ("base.Dockerfile", "env.Dockerfile"):
        shutil.copy(TEMPLATES_DIR / name, tmp_path / name)
    spec = EnvSpec(python="3.11")
    same = plan_for(spec, templates_dir=tmp_path)
    assert same.spec_hash == plan_for(spec).spec_hash
    (tmp_path / "env.Dockerfile").write_text((tmp_path / "env.Dockerfile").read_text() + "RUN true\n")
    assert plan_for(spec, templates_dir=tmp_path).spec_hash != same.spec_hash


def test_env_and_labels_are_escaped_for_dockerfile_syntax():
    spec = EnvSpec(python="3.11", env={"D": '$HOME/x "q" back\\slash'})
    plan = plan_for(spec, repo_url='/src/we$ird "path"\\')
    assert 'ENV D="\\$HOME/x \\"q\\" back\\\\slash"' in plan.env_dockerfile
    assert 'LABEL forager.repo="/src/we\\$ird \\"path\\"\\\\"' in plan.env_dockerfile


@pytest.mark.parametrize(
    "field, value",
    [("pre_install", ["echo a \\"]), ("post_install", ["echo a\nRUN evil"]), ("system_packages", ["libx; rm -rf /"]),
     ("env", {"BAD NAME": "x"}), ("requirements", ["six\n--index-url http://evil"])],
)
def test_spec_rejects_values_that_would_break_the_dockerfile(field, value):
    with pytest.raises(ValueError):
        EnvSpec(python="3.11", **{field: value})


def test_the_project_pytest_depends_on_is_installed_over_other_ranges_then_editable():
    import hashlib
    import json

    from forager.images.render import OVERRIDES_PATH, install_commands

    spec = EnvSpec(python="3.9", project_install=".[testing]", as_of="2020-07-01", resolver="uv",
                   unconstrained=["pluggy"])
    *_, project = install_commands(spec, 600, "/work/repo")
    write, resolve, editable = project.split(" && ")
    assert write == f"printf '%s\\n' 'pluggy @ file:///work/repo' > {OVERRIDES_PATH}"
    assert f"--overrides {OVERRIDES_PATH} -e '.[testing]'" in resolve and "--exclude-newer 2020-07-01" in resolve
    assert editable.endswith("--no-deps -e '.[testing]'") and "--overrides" not in editable
    # the field is part of the image only when set: every other spec hashes as before it existed
    plain = EnvSpec(python="3.9", project_install=".[testing]", as_of="2020-07-01", resolver="uv")
    assert plain.content_hash() != spec.content_hash()
    payload = plain.model_dump(mode="json", exclude={"notes", "unconstrained"})
    before = hashlib.sha256(json.dumps([payload], sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert plain.content_hash() == before
