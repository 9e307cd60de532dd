"""A collect job as one typed value: what to run on (repositories, tasks) and how (CollectConfig), from a TOML
file, the command's options, or a stored run (pure: dicts and text in, a validated job or TOML text out).

Defaults and checks live in the models only (CollectConfig, Sampling, EpisodeLimits, SandboxLimits); the command
line names the fields it sets and nothing else, so a file and the options agree by construction. Precedence:
the model's default < the file (`--config run.toml`) < an option given on the command line. A stored run's
configuration written back (`forager collect --write-config`) is such a file, and runs the same job again.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from forager.collect.config import CollectConfig


class CollectJob(BaseModel):
    """Everything `forager collect` does, as one value."""

    model_config = ConfigDict(extra="forbid")

    repos: list[str] = Field(default_factory=list, description="git URL or local path, optionally @commit")
    tasks: int = Field(default=5, ge=1, description="tasks per repository (mutate-fix tasks are made if there are fewer)")
    kind: Literal["mutate-fix", "issue-fix"] | None = Field(default=None, description="only tasks of this kind")
    verified_only: bool = Field(default=False, description="only tasks `forager tasks verify` passed")
    name: str | None = Field(default=None, description="name of a new run (default: derived from its identity)")
    run: str | None = Field(default=None, description="resume this existing run")
    registry: str | None = Field(default=None, description="HOST:PORT of an image registry")
    collect: CollectConfig = Field(default_factory=CollectConfig)


class JobError(ValueError):
    """A job file or option that does not describe a job; the message is one line naming it."""


# Command-line option -> the job field it sets (dotted path); an option left out sets nothing.
OPTION_FIELDS = {
    "repo": "repos", "tasks": "tasks", "kind": "kind", "verified_only": "verified_only", "new_name": "name", "resume": "run", "registry": "registry",
    "episodes_per_task": "collect.episodes_per_task", "concurrency": "collect.concurrency",
    "policy": "collect.policy", "llm": "collect.llm_url", "model": "collect.model", "api_key": "collect.api_key",
    "tool_format": "collect.tool_format", "prompt_mode": "collect.prompt_mode", "reasoning": "collect.reasoning",
    "fail_reward": "collect.fail_reward", "warm": "collect.warm",
    "max_turns": "collect.limits.max_turns", "max_context": "collect.limits.max_context_tokens",
    "time_limit": "collect.limits.time_limit", "max_format_errors": "collect.limits.max_format_errors",
    "max_tokens": "collect.sampling.max_tokens", "temperature": "collect.sampling.temperature",
    "top_p": "collect.sampling.top_p", "seed": "collect.sampling.seed",
    "regex": "collect.sampling.extra_body.structured_outputs.regex",
    "command_timeout": "collect.sandbox.command_timeout", "memory": "collect.sandbox.memory",
    "cpus": "collect.sandbox.cpus", "max_output_chars": "collect.sandbox.shown_chars", "network": "collect.sandbox.network",
}


def default_of(path: str) -> Any:
    """The default of a job field by its dotted path (for help texts: the models own the defaults)."""
    value: Any = CollectJob()
    for key in path.split("."):
        value = getattr(value, key)
    return value


def read_job_file(path: Path) -> dict[str, Any]:
    """The TOML of a job file as a dict; a file that is missing or not TOML is a JobError."""
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise JobError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise JobError(f"--config {path}: not TOML ({exc})") from None


def job_from(file_values: dict[str, Any], options: dict[str, Any]) -> CollectJob:
    """The job a file and the given command-line options describe (options win); None options are not given."""
    values = _deep_copy(file_values)
    for option, value in options.items():
        if value is None or value == [] or option not in OPTION_FIELDS:
            continue
        _set(values, OPTION_FIELDS[option].split("."), value)
    try:
        return CollectJob.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        option = next((f"--{name.replace('_', '-')}" for name, path in OPTION_FIELDS.items() if path == where), where)
        raise JobError(f"{option}: {first['msg']} (got {first.get('input')!r})") from None


def job_toml(job: CollectJob) -> str:
    """The job as a file `--config` reads back; secrets (the API key) are never written."""
    data = job.model_dump(mode="json", exclude_none=True, exclude={"collect": {"api_key"}})
    return tomli_w.dumps(data)


def stored_job(run_config: dict[str, Any], *, repos: list[str], tasks: int, kind: str | None, name: str) -> CollectJob:
    """The job that resumes a stored run: its configuration as recorded (the fields the run keeps beside it, such
    as versions and the prompts' hash, are not options), its repositories and its name."""
    known = set(CollectConfig.model_fields)
    config = CollectConfig.model_validate({key: value for key, value in run_config.items() if key in known})
    return CollectJob(repos=repos, tasks=tasks, kind=kind, run=name, collect=config)


def _set(values: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        values = values.setdefault(key, {})
        if not isinstance(values, dict):
            raise JobError(f"{'.'.join(path)}: the file gives {key} a value, not a table")
    values[path[-1]] = value


def _deep_copy(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _deep_copy(value) if isinstance(value, dict) else value for key, value in values.items()}
