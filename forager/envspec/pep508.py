"""PEP 508 requirement strings: cleaning, naming and de-duplication."""

from __future__ import annotations

import re

from collections.abc import Iterable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name


def parse_requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def clean_requirement(text: str) -> str | None:
    """A normalised requirement string fit for the shared dependency layer, or None.

    Options (-e, -r, --hash...) and local paths are dropped: that layer is built
    before the repository's source is copied in, so nothing local exists yet.
    """
    text = text.split(" #", 1)[0].strip()
    if not text or text.startswith(("#", "-", ".", "/")):
        return None
    req = parse_requirement(text)
    if req is None or (req.url is not None and req.url.startswith("file:")):
        return None
    return str(req)


def canonical_name(requirement: str) -> str:
    req = parse_requirement(requirement)
    return canonicalize_name(req.name if req else requirement)


def requirement_names(requirements: Iterable[str]) -> set[str]:
    return {canonical_name(r) for r in requirements}


_URL_LINE = re.compile(r"^(?:-e\s+|--editable\s+)?(?:git|hg|svn|bzr)\+|^(?:-e\s+)?https?://|\s@\s*(?:git\+|https?://)")


def unfetchable(line: str) -> bool:
    """A requirement (or requirements-file line) that names a VCS repository or an archive URL: sandboxes and
    offline builders cannot fetch it, while a release on the index serves the same need."""
    text = line.split(" #", 1)[0].strip()
    if _URL_LINE.search(text):
        return True
    req = parse_requirement(text) if text and not text.startswith(("#", "-")) else None
    return req is not None and req.url is not None and not req.url.startswith("file:")


def requirements_in_file(text: str) -> list[str]:
    """The plain requirements a requirements.txt names (options and includes are skipped)."""
    found = (clean_requirement(line) for line in text.splitlines())
    return [r for r in found if r]


def _is_bare(requirement: str) -> bool:
    req = parse_requirement(requirement)
    return req is not None and not (req.specifier or req.extras or req.url or req.marker)


def merge_requirements(*groups: Iterable[str]) -> list[str]:
    """Concatenate in order without duplicates; a bare name is dropped when a pinned form of it is present."""
    ordered = list(dict.fromkeys(r for group in groups for r in group))
    pinned = {canonical_name(r) for r in ordered if not _is_bare(r)}
    return [r for r in ordered if not (_is_bare(r) and canonical_name(r) in pinned)]
