from pathlib import Path

import pytest

from forager.config import Settings


def test_env_prefix_and_json_lists(monkeypatch):
    monkeypatch.setenv("FORAGER_DB", "sqlite:////tmp/elsewhere.db")
    monkeypatch.setenv("FORAGER_PYTHON_VERSIONS", '["3.12", "3.11"]')
    monkeypatch.setenv("FORAGER_BASE_IMAGE", "registry.local/py:{python}")
    settings = Settings()
    assert settings.db == "sqlite:////tmp/elsewhere.db"
    assert settings.python_versions == ["3.12", "3.11"]
    assert settings.base_image_for("3.12") == "registry.local/py:3.12"


def test_forager_toml_is_read_and_env_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "forager.toml").write_text('jobs = 7\ntest_timeout = 42\n')
    monkeypatch.setenv("FORAGER_JOBS", "3")
    settings = Settings()
    assert settings.test_timeout == 42
    assert settings.jobs == 3


def test_ca_bundle_from_environment_or_explicit(tmp_path, monkeypatch):
    for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("forager.config.SYSTEM_CA_BUNDLES", (str(tmp_path / "none.crt"),))
    assert Settings(ca_bundle=None).resolved_ca_bundle() is None
    system = tmp_path / "system.crt"
    system.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr("forager.config.SYSTEM_CA_BUNDLES", (str(tmp_path / "none.crt"), str(system)))
    assert Settings().resolved_ca_bundle() == system
    bundle = tmp_path / "corp.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert Settings().resolved_ca_bundle() == bundle
    with pytest.raises(ValueError, match="--ca-bundle"):
        Settings(ca_bundle=Path(tmp_path / "missing.pem")).resolved_ca_bundle()


def test_the_step_writer_setting_reaches_the_store_and_a_bad_one_is_one_line(tmp_path, monkeypatch, capsys):
    import typer

    from forager.cli.common import settings_for, store_for
    from forager.store.writer import StepWriter

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORAGER_STEP_WRITER", raising=False)
    assert Settings().step_writer == "process"
    (tmp_path / "forager.toml").write_text('step_writer = "thread"\n')
    store = store_for(settings_for(db=f"sqlite:///{tmp_path}/store.db"))
    assert store.step_writer_kind == "thread" and isinstance(store.step_writer, StepWriter)
    monkeypatch.setenv("FORAGER_STEP_WRITER", "threads")
    with pytest.raises(typer.Exit):
        settings_for()
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert "step_writer" in error and "'process' or 'thread'" in error and "FORAGER_STEP_WRITER" in error, error
