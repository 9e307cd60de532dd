"""Render Dockerfiles from the templates in forager/images/templates/ (pure: data in, text out)."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from string import Template

from pydantic import BaseModel

from forager import __version__
from forager.envspec.as_of import EXEMPT
from forager.models import EnvSpec

# package data (pyproject.toml), so an installed wheel renders the same Dockerfiles as a checkout
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
NO_CA_BUNDLE = "none"
FAR_FUTURE = "2999-12-31"  # an exempt package's own cut-off: none in effect


def dockerfile_string(value: str) -> str:
    """A double-quoted Dockerfile string that means exactly `value` (no $ expansion, quotes kept)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return '"' + " ".join(escaped.splitlines()) + '"'


def _template(name: str, templates_dir: Path | None) -> Template:
    return Template((templates_dir or TEMPLATES_DIR).joinpath(name).read_text())


class BuildPlan(BaseModel):
    """Everything needed to build one env image: the two Dockerfiles, their tags and the context files."""

    base_image: str  # what the base layer starts FROM (the configured base or its bootstrapped stand-in)
    base_dockerfile: str
    base_tag: str
    env_dockerfile: str
    env_tag: str
    spec_hash: str
    requirements_txt: str
    install_commands: list[str]


CA_PATH = "/usr/local/share/forager/ca.crt"


def _ca_lines(has_bundle: bool) -> str:
    if not has_bundle:
        return "# No CA bundle given: the build trusts the base image's certificates."
    # why ARG, not ENV: the bundle is trusted during the build only; a pushed image keeps its own trust store.
    return "\n".join(
        [
            "# A CA bundle for TLS-intercepting proxies: pip, requests and openssl read it during the build.",
            f"COPY forager-ca.crt {CA_PATH}",
            *(f"ARG {var}={CA_PATH}" for var in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")),
        ]
    )


# requirements that name the repository itself for the project's own distributions (EnvSpec.unconstrained)
OVERRIDES_PATH = "/usr/local/share/forager/overrides.txt"


def installer(spec: EnvSpec) -> str:
    """The install command for the spec's resolution: pip (today's releases), or uv with its cut-off day."""
    if spec.resolver != "uv" or not spec.as_of:
        return "pip install"
    exempt = " ".join(f"--exclude-newer-package {name}={FAR_FUTURE}" for name in EXEMPT)
    # --compile-bytecode: as pip does; else modules compile at import, under the suite's warning filters
    # (flask 2.0.2's `filterwarnings = error` turned blinker 1.4's invalid escape into a SyntaxError)
    return f"uv pip install --no-cache --compile-bytecode --exclude-newer {spec.as_of} {exempt}"


def install_commands(spec: EnvSpec, install_timeout: int, repo_path: str = "/testbed") -> list[str]:
    """The shell commands of the project layer, in order; each becomes one RUN (one cache layer)."""
    limit = f"timeout {install_timeout}"
    pip = installer(spec)
    commands = []
    if spec.system_packages:
        names = " ".join(spec.system_packages)  # validated Debian names: nothing to quote
        commands.append(
            f"{limit} sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends {names}' "
            "&& rm -rf /var/lib/apt/lists/*"
        )
    commands.extend(spec.pre_install)
    for path in spec.requirement_files:
        commands.append(f"{limit} {pip} -r {shlex.quote(path)}")
    if spec.project_install:
        editable = "-e " if spec.editable else ""
        target = f"{editable}{shlex.quote(spec.project_install)}"
        if spec.unconstrained and spec.resolver == "uv" and spec.as_of:
            # every requirement on the project (pytest's on pluggy) becomes the repository itself, so no range
            # excludes its development version; that install is not editable, so the project is then installed
            # editable over it, with no dependencies (nothing else moves)
            pins = " ".join(shlex.quote(f"{name} @ file://{repo_path}") for name in spec.unconstrained)
            commands.append(f"printf '%s\\n' {pins} > {OVERRIDES_PATH} && {limit} {pip} --overrides {OVERRIDES_PATH} "
                            f"{target} && {limit} {pip} --no-deps {target}")
        else:
            commands.append(f"{limit} {pip} {target}")
    if spec.optional_packages:
        # why: names guessed from test imports may not exist on the index; one bad guess must not fail the build.
        names = " ".join(shlex.quote(p) for p in spec.optional_packages)
        commands.append(
            f'for p in {names}; do {limit} {pip} "$p" >/dev/null 2>&1 '
            '&& echo "forager: installed optional $p" || echo "forager: skipped optional $p"; done'
        )
    commands.extend(spec.post_install)
    return commands


def render(
    spec: EnvSpec,
    *,
    repo_url: str,
    repo_name: str,
    commit: str,
    base_image: str,
    image_prefix: str,
    repo_path: str = "/testbed",
    install_timeout: int = 1200,
    ca_bundle_sha256: str = NO_CA_BUNDLE,
    templates_dir: Path | None = None,
) -> BuildPlan:
    base_dockerfile = _template("base.Dockerfile", templates_dir).substitute(python=spec.python, base_image=base_image)
    base_hash = hashlib.sha256(base_dockerfile.encode()).hexdigest()
    base_tag = f"forager-base:py{spec.python}-{base_hash[:12]}"

    env_template = _template("env.Dockerfile", templates_dir)
    # What makes the image: spec, source, base and the env template itself (a template fix must rebuild).
    # Not the CA bundle: it is trusted during the build only, and a refreshed host trust store must
    # not invalidate every image.
    spec_hash = spec.content_hash(repo_url, commit, base_dockerfile, repo_path, str(install_timeout),
                                  env_template.template)
    requirements_txt = "".join(f"{req}\n" for req in spec.requirements)
    commands = install_commands(spec, install_timeout, repo_path)
    install_lines = "\n".join(f"RUN : forager-install && {cmd}" for cmd in commands)
    env_lines = "\n".join(f"ENV {key}={dockerfile_string(value)}" for key, value in sorted(spec.env.items()))
    env_dockerfile = env_template.substitute(
        repo_name=repo_name,
        repo_url=dockerfile_string(repo_url),
        commit=commit,
        base_tag=base_tag,
        spec_hash=spec_hash,
        ca_bundle_sha256=ca_bundle_sha256,
        forager_version=__version__,
        ca_lines=_ca_lines(ca_bundle_sha256 != NO_CA_BUNDLE),
        env_lines=env_lines,
        install_timeout=install_timeout,
        repo_path=repo_path,
        install_lines=install_lines,
        installer=installer(spec),
        installers="pip uv" if spec.resolver == "uv" else "pip",
    )
    return BuildPlan(
        base_image=base_image,
        base_dockerfile=base_dockerfile,
        base_tag=base_tag,
        env_dockerfile=env_dockerfile,
        env_tag=f"{image_prefix}/{repo_name}:{spec_hash[:16]}",
        spec_hash=spec_hash,
        requirements_txt=requirements_txt,
        install_commands=commands,
    )
