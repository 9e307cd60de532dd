"""What every export row shares: its ids and provenance (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import pyarrow as pa

if TYPE_CHECKING:  # annotations only: this module loads no database code
    from forager.store.stream import EpisodeBundle

# Exit reasons of episodes cut off by a limit or broken by an error: their final state says nothing
# about the policy's ability to finish, so RL rows mark them excluded ("compact filtering").
EXCLUDED_EXIT_REASONS = frozenset({"max_turns", "context_exceeded", "time_limit", "format_errors", "env_error", "llm_error"})


def trajectory_id(bundle: EpisodeBundle) -> str:
    """Stable across exports and stores: run name, task, attempt."""
    return f"{bundle.run.name}/{bundle.task.instance_id}/{bundle.episode.attempt}"


def json_text(value) -> str:
    """A JSON string for values whose keys vary row to row (tool arguments, sampling, tool schemas):
    a columnar struct would merge them into one shape with every key of every row."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def ids(bundle: EpisodeBundle) -> dict:
    episode = bundle.episode
    return {
        "trajectory_id": trajectory_id(bundle), "episode_id": episode.id, "instance_id": bundle.task.instance_id,
        "repo": bundle.repo, "attempt": episode.attempt,
    }


def provenance(bundle: EpisodeBundle) -> dict:
    run, task, episode = bundle.run, bundle.task, bundle.episode
    return {
        "run": run.name, "policy": run.policy, "model": run.model, "model_revision": run.model_revision,
        "tool_format": run.tool_format, "sampling": json_text(run.sampling),
        "forager_version": run.versions.get("forager"), "llm_server_version": run.versions.get("llm_server"),
        "chat_template_sha256": run.chat_template_sha256, "task_kind": task.kind, "task_family": task.family,
        "image": bundle.image_tag, "finished_at": episode.finished_at.isoformat() if episode.finished_at else None,
        "flags": json_text(list(episode.flags or [])), "task_integrity": json_text(integrity_summary(task)),
    }


def integrity_summary(task) -> dict:
    """What forager measured of a task, in short (None: not measured): so a trainer can filter without the store."""
    record = task.integrity or {}
    determinism, audit, contamination = (record.get(key) or {} for key in ("determinism", "audit", "contamination"))
    return {
        "tests_version": task.tests_version or 1,
        "verified": determinism.get("verified"),
        "order_dependent": len(determinism.get("order_dependent", [])) if determinism else None,
        "audit_passed": audit.get("passed"),
        "contaminated": contamination.get("contaminated"),
    }


def outcome(bundle: EpisodeBundle) -> dict:
    episode = bundle.episode
    return {"reward": episode.reward, "resolved": bool(episode.resolved), "exit_reason": episode.exit_reason,
            "n_turns": episode.turns}


IDS_SCHEMA = [
    pa.field("trajectory_id", pa.string()), pa.field("episode_id", pa.int64()), pa.field("instance_id", pa.string()),
    pa.field("repo", pa.string()), pa.field("attempt", pa.int32()),
]
OUTCOME_SCHEMA = [
    pa.field("reward", pa.float64()), pa.field("resolved", pa.bool_()), pa.field("exit_reason", pa.string()),
    pa.field("n_turns", pa.int32()),
]
PROVENANCE_FIELD = pa.field("provenance", pa.struct([
    (name, pa.string()) for name in (
        "run", "policy", "model", "model_revision", "tool_format", "sampling", "forager_version",
        "llm_server_version", "chat_template_sha256", "task_kind", "task_family", "image", "finished_at", "flags",
        "task_integrity")
]))


def history(bundle: EpisodeBundle) -> list[dict]:
    """Every message of the episode in order: the opening ones, then each turn's reply and observation.

    A step that ended in an environment error has no observation message (nothing went back to the model).
    """
    messages = list(bundle.episode.messages)
    for step in bundle.steps:
        messages.append(step.assistant_message)
        messages.extend(step.observation_messages)
    return messages


def context_tokens(bundle: EpisodeBundle) -> int:
    """Tokens of the trajectory as the model saw it: the last call's prompt plus its reply (0 without a model)."""
    last = bundle.steps[-1].completion_tokens if bundle.steps else 0
    return bundle.episode.prompt_tokens + last if last else 0
