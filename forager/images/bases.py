"""Which base image each Python version builds on (pure: presence in, choice out).

The configured base (FORAGER_BASE_IMAGE, default the official `python:X.Y-slim`) when this host has it or
could pull it; else the one `forager bootstrap-base` made from Debian's packages, so a host with no
registry builds out of the box. The choice is made before rendering: the base's name is part of the
Dockerfile, so of the spec hash, and an image built on a stand-in keys the same as one configured to use
that base directly (make's and the bare CLI's caches are one).
"""

from __future__ import annotations

from collections.abc import Collection

BOOTSTRAP_TEMPLATE = "forager/bootstrap-python:{python}"
# The Debian suite whose python3 is each version (what `forager bootstrap-base` can make).
SUITE_FOR_PYTHON = {"3.9": "bullseye", "3.11": "bookworm", "3.13": "trixie"}


def fill(template: str, python: str) -> str:
    return template.replace("{python}", python)


def bootstrap_tag(python: str) -> str:
    """The tag `forager bootstrap-base --python X.Y` makes by default."""
    return fill(BOOTSTRAP_TEMPLATE, python)


def worth_pulling(versions: list[str], template: str, present: Collection[str]) -> list[str]:
    """Configured bases to pull before a bootstrapped one stands in for them: missing here while the stand-in
    is here. Not a version with neither: when detection chooses it, its build pulls the base (as a registry
    user's first build does), and pulling every configured version up front would fetch bases never used."""
    wanted = []
    for version in versions:
        configured = fill(template, version)
        if configured not in present and bootstrap_tag(version) in present and configured not in wanted:
            wanted.append(configured)
    return wanted


def choose_bases(versions: list[str], template: str, present: Collection[str]) -> dict[str, str]:
    """Python version -> base image, for the versions with a base here (configured first, else bootstrapped),
    in the configured order. When no version has one, every version on its configured base: a registry may
    have it, and a build that cannot get it says which command makes one."""
    chosen = {}
    for version in versions:
        for tag in (fill(template, version), bootstrap_tag(version)):
            if tag in present:
                chosen[version] = tag
                break
    return chosen or {version: fill(template, version) for version in versions}


def stand_in_note(python: str, template: str, base: str) -> str | None:
    """The note a build on a stand-in base carries (None when it uses the configured one)."""
    configured = fill(template, python)
    if base == configured:
        return None
    return (f"base {base}: stands in for {configured}, which is not on this host and could not be pulled "
            "(set FORAGER_BASE_IMAGE to choose the base)")


def missing_base_message(python: str, base: str, cause: str) -> str:
    """One line for a base image a build could not get, naming the command that makes one."""
    if python in SUITE_FOR_PYTHON:
        fix = f"make one with `forager bootstrap-base --python {python}`"
    else:
        fix = (f"pull it where a registry answers, or set FORAGER_PYTHON_VERSIONS to versions "
               f"`forager bootstrap-base` makes ({', '.join(SUITE_FOR_PYTHON)})")
    return f"base image {base} for Python {python} is not available ({cause}); {fix}"
