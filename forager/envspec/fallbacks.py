"""Specs to try when a suite errors under the newest test runner (pure)."""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from forager.models import EnvSpec

# Older suites break on newer pytest majors (hook arguments removed in 9, yield tests and nose
# support removed in 8, ...). Tried in order, only for a pytest the repository left uncapped.
PYTEST_CAPS = ("<9", "<8", "<7")


def _capped(requirement: str, cap: str) -> str | None:
    """`requirement` with `cap` added when it names pytest with no upper bound; else None."""
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        return None
    if canonicalize_name(parsed.name) != "pytest":
        return None
    if any(spec.operator in ("<", "<=", "==", "===", "~=") for spec in parsed.specifier):
        return None  # the repository chose its pytest: respect it
    newest_allowed = f"{int(cap.lstrip('<')) - 1}.999"
    if not parsed.specifier.contains(newest_allowed, prereleases=True):
        return None  # e.g. pytest>=8.2 capped at <8 admits nothing
    parsed.specifier &= cap
    return str(parsed)


def runner_fallbacks(spec: EnvSpec) -> list[EnvSpec]:
    """Specs with pytest capped at each older major, in order; [] when pytest is pinned by the repo."""
    index = next((i for i, req in enumerate(spec.requirements) if _capped(req, "<9")), None)
    if index is None:
        return []
    specs = []
    for cap in PYTEST_CAPS:
        requirements = list(spec.requirements)
        capped = _capped(requirements[index], cap)
        if capped is None:
            break
        requirements[index] = capped
        note = f"fallback: {requirements[index]} (the suite errored with a newer pytest)"
        specs.append(spec.model_copy(update={"requirements": requirements, "notes": [*spec.notes, note]}))
    return specs
