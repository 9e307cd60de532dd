"""apply_override(): a user's TOML override laid over a detected EnvSpec."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from forager.models import EnvSpec

from .errors import DetectError

APPEND = "append"
# notes are derived (and excluded from the hash), so overriding them would only hide the reasoning.
FIELDS = tuple(name for name in EnvSpec.model_fields if name != "notes")


def _valid_keys() -> str:
    return ", ".join([*FIELDS, APPEND])


def _appended(field: str, current: Any, extra: Any) -> Any:
    if isinstance(current, list):
        return [*current, *(extra if isinstance(extra, list) else [extra])]
    if isinstance(current, dict) and isinstance(extra, dict):
        return {**current, **extra}
    raise DetectError(f"override append.{field}: only list fields (and the env table) can be appended to")


def apply_override(spec: EnvSpec, override: dict[str, Any]) -> EnvSpec:
    """Replace fields with the override's values, then extend those under [append]; returns a new spec."""
    if not override:
        return spec
    unknown = [key for key in override if key not in FIELDS and key != APPEND]
    if unknown:
        raise DetectError(f"unknown override key '{unknown[0]}'; valid keys: {_valid_keys()}")
    appends = override.get(APPEND, {})
    if not isinstance(appends, dict):
        raise DetectError(f"override '{APPEND}' must be a table of field = values; valid fields: {', '.join(FIELDS)}")
    unknown = [key for key in appends if key not in FIELDS]
    if unknown:
        raise DetectError(f"unknown override key '{APPEND}.{unknown[0]}'; valid keys: {', '.join(FIELDS)}")

    data = spec.model_dump()
    data.update({key: value for key, value in override.items() if key != APPEND})
    for field, extra in appends.items():
        data[field] = _appended(field, data[field], extra)
    changed = [key for key in override if key != APPEND] + [f"{APPEND}.{key}" for key in appends]
    data["notes"] = [*spec.notes, f"override: {', '.join(changed)}"]
    try:
        return EnvSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise DetectError(f"override value for {where} is invalid: {error['msg']}") from exc
