"""Dependency entries in Poetry and Pipfile syntax, rewritten as PEP 508 strings."""

from __future__ import annotations

from typing import Any

from .constraints import poetry_dependency_specifier
from .pep508 import clean_requirement

# Entries pointing at sources the shared dependency layer cannot reach (or that need the checkout).
_NON_INDEX_KEYS = ("git", "path", "url", "file", "editable", "develop")


def _entry_parts(spec: Any) -> tuple[str, list[str]] | None:
    """(version text, extras) of a dependency entry; None for non-index sources."""
    if isinstance(spec, str):
        return spec, []
    if isinstance(spec, dict) and not any(key in spec for key in _NON_INDEX_KEYS):
        extras = spec.get("extras", [])
        return str(spec.get("version", "*")), [str(e) for e in extras] if isinstance(extras, list) else []
    if isinstance(spec, list):  # per-Python alternatives: keep the name, drop the versions
        return "*", []
    return None


def _with_extras(name: str, extras: list[str]) -> str:
    return f"{name}[{','.join(extras)}]" if extras else name


def poetry_requirement(name: str, spec: Any) -> str | None:
    """Caret and tilde versions are translated; an untranslatable version is dropped, keeping the name."""
    if name.lower() == "python" or (parts := _entry_parts(spec)) is None:
        return None
    version, extras = parts
    specifier = poetry_dependency_specifier(version) or ""
    return clean_requirement(_with_extras(name, extras) + specifier)


def pipfile_requirement(name: str, spec: Any) -> str | None:
    """Pipfile versions are PEP 440 already, except "*" (any) and bare versions (exact)."""
    if (parts := _entry_parts(spec)) is None:
        return None
    version, extras = parts
    version = version.strip()
    if version in ("*", ""):
        version = ""
    elif version[0].isdigit():
        version = f"=={version}"
    return clean_requirement(_with_extras(name, extras) + version) or clean_requirement(_with_extras(name, extras))
