"""Which named dependency groups or extras hold what the test suite needs."""

from __future__ import annotations

from collections.abc import Iterable

from packaging.utils import canonicalize_name

TEST_GROUPS = ("test", "tests", "testing")
DEV_GROUPS = ("dev", "develop", "development")


def pick_groups(names: Iterable[str]) -> list[str]:
    """Test groups when any exist, else dev ones (spelled as declared).

    Dev groups are the fallback only: they tend to carry linters, docs and
    release tools whose failure to install would sink the whole image.
    """
    by_canonical: dict[str, str] = {}
    for name in names:
        by_canonical.setdefault(canonicalize_name(name), name)
    test = [by_canonical[g] for g in TEST_GROUPS if g in by_canonical]
    return test or [by_canonical[g] for g in DEV_GROUPS if g in by_canonical]
