"""Settings: one source of truth, from FORAGER_* environment variables and an optional forager.toml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from forager.envspec.as_of import parse_as_of

DEFAULT_DB = "sqlite:///trajectories/forager.db"
# Environment variables that point at a CA bundle, in the order we trust them.
CA_BUNDLE_ENV_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT")
# Then the host's own trust store: what makes pip work on the host should make it work in the build.
SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORAGER_", toml_file="forager.toml", extra="ignore")

    db: str = Field(default=DEFAULT_DB, description="SQLAlchemy URL of the store (SQLite or PostgreSQL)")
    cache_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "forager",
        description="mirror clones and build contexts",
    )
    base_image: str = Field(
        default="python:{python}-slim",
        description="base image per Python version; {python} is replaced by X.Y",
    )
    python_versions: list[str] = Field(
        default_factory=lambda: ["3.11", "3.12", "3.13", "3.10", "3.9"],
        description="Python versions with a base image, in order of preference",
    )
    as_of: str = Field(
        default="commit",
        description="resolve a commit's dependencies (and Python) as of: commit (its date), latest, or a day YYYY-MM-DD",
    )
    ca_bundle: Path | None = Field(default=None, description="CA bundle given to builds (TLS-intercepting proxies)")
    overrides_dir: Path = Field(
        default=Path(__file__).resolve().parent / "images" / "overrides",
        description="per-repo EnvSpec overrides (NAME.toml); the default is the folder shipped in the package",
    )
    repo_path: str = Field(default="/testbed", description="where the repository lives inside images")
    jobs: int = Field(default=2, ge=1, description="parallel builds")
    build_timeout: int = Field(default=1800, description="seconds allowed for one image build")
    install_timeout: int = Field(default=1200, description="seconds allowed for one install step in a build")
    test_timeout: int = Field(default=900, description="seconds allowed for one run of a test suite")
    test_case_timeout: int = Field(
        default=60, ge=0,
        description="seconds allowed for one test in a baseline run (past it the test fails alone); 0: no limit",
    )
    validation_runs: int = Field(default=2, ge=1, description="suite runs per image; differing statuses mark flaky")
    docker_timeout: int = Field(default=120, description="seconds for one Docker API call")
    image_prefix: str = Field(default="forager-env", description="repository part of built image tags")
    registry: str | None = Field(
        default=None, description="HOST:PORT of an image registry: built images are pushed, missing ones pulled"
    )
    step_writer: Literal["process", "thread"] = Field(
        default="process",
        description="where collect's group-commit step writer runs: a process of its own, or a thread of the collector",
    )

    @field_validator("as_of")
    @classmethod
    def _as_of(cls, value: str) -> str:
        return parse_as_of(value)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def base_image_for(self, python: str) -> str:
        return self.base_image.replace("{python}", python)

    def resolved_ca_bundle(self) -> Path | None:
        """The CA bundle to give builds: explicit setting, the usual environment variables, the host's store."""
        if self.ca_bundle:
            if not self.ca_bundle.is_file():
                raise ValueError(f"CA bundle {self.ca_bundle} does not exist; pass an existing file to --ca-bundle")
            return self.ca_bundle
        for var in CA_BUNDLE_ENV_VARS:
            value = os.environ.get(var)
            if value and Path(value).is_file():
                return Path(value)
        return next((Path(p) for p in SYSTEM_CA_BUNDLES if Path(p).is_file()), None)
