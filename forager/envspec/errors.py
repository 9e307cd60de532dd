"""The one error detection raises: a one-line cause-and-fix message tagged with a failure category."""

from __future__ import annotations

from forager.models import FailureCategory, ForagerError


class DetectError(ForagerError):
    """Detection cannot produce an EnvSpec; `.message` names the cause and the fix."""

    def __init__(self, message: str, category: FailureCategory = FailureCategory.detect):
        super().__init__(category, message)
