"""Version-constraint dialects found in the wild, translated to PEP 440 specifier sets.

Poetry writes ^1.2 and ~1.2 and joins alternatives with ||; hand-written
requires-python values are sometimes a bare "3.7" or an invalid ">=3.6.*".
"""

from __future__ import annotations

import re

from packaging.specifiers import InvalidSpecifier, SpecifierSet

_RELEASE = re.compile(r"^\d+(?:\.\d+)*")
# Clauses are separated by commas, or by whitespace before the next operator (">=3.8 <4").
_CLAUSE_SPLIT = re.compile(r",|\s+(?=[<>=!~^])")


def _release(version: str) -> list[int]:
    match = _RELEASE.match(version)
    if not match:
        raise ValueError(version)
    return [int(part) for part in match.group().split(".")]


def _caret(version: str) -> str:
    """^X.Y.Z allows changes that keep the left-most non-zero component."""
    nums = _release(version)
    bump = next((i for i, n in enumerate(nums) if n), len(nums) - 1)
    upper = [*nums[:bump], nums[bump] + 1]
    return f">={version},<{'.'.join(map(str, upper))}"


def _tilde(version: str) -> str:
    """~X.Y.Z allows patch changes; ~X allows minor ones."""
    nums = _release(version)
    upper = [nums[0], nums[1] + 1] if len(nums) >= 2 else [nums[0] + 1]
    return f">={version},<{'.'.join(map(str, upper))}"


def _poetry_clause(clause: str) -> str:
    clause = clause.replace(" ", "")
    if clause in ("", "*"):
        return ""
    if clause.startswith("^"):
        return _caret(clause[1:])
    if clause.startswith("~") and not clause.startswith("~="):
        return _tilde(clause[1:])
    if clause[0].isdigit():
        # Poetry reads a bare version as exact; X.Y means any X.Y.* release.
        return f"=={clause}.*" if clause.count(".") == 1 else f"=={clause}"
    return clause


def poetry_to_pep440(text: str) -> list[SpecifierSet] | None:
    """One SpecifierSet per ||-alternative, or None when the text cannot be translated."""
    alternatives = []
    for alternative in text.split("||"):
        try:
            clauses = [_poetry_clause(c) for c in _CLAUSE_SPLIT.split(alternative.strip())]
            alternatives.append(SpecifierSet(",".join(c for c in clauses if c)))
        except (ValueError, InvalidSpecifier):
            return None
    return alternatives


def loose_pep440(text: str) -> list[SpecifierSet] | None:
    """Parse a requires-python value, repairing common mistakes; None when hopeless."""
    text = text.strip().strip(",")
    try:
        return [SpecifierSet(text)]
    except InvalidSpecifier:
        pass
    if _RELEASE.fullmatch(text):
        # A bare "3.7" is meant as a minimum, not an exact pin.
        return loose_pep440(f">={text}")
    repaired = re.sub(r"(?<=[<>]=)(\d+(?:\.\d+)*)\.\*", r"\1", text)  # ">=3.6.*" is invalid PEP 440
    repaired = re.sub(r"(?<=[<>])(\d+(?:\.\d+)*)\.\*", r"\1", repaired)
    if repaired != text:
        return loose_pep440(repaired)
    return poetry_to_pep440(text)


def poetry_dependency_specifier(text: str) -> str | None:
    """A Poetry dependency version as one PEP 440 specifier ("" for any); None if not expressible."""
    alternatives = poetry_to_pep440(text)
    if alternatives is None or len(alternatives) != 1:
        return None
    return str(alternatives[0])
