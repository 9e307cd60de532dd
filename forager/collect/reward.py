"""How a submitted episode ends once graded, and what an episode earns: functions of their arguments alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from forager.agent.loop import ExitReason

if TYPE_CHECKING:
    from forager.tasks.evaluate import Grade


def graded_exit(grade: Grade, patch_from_file: bool, error: str | None = None) -> tuple[ExitReason, str | None]:
    """How a submitted episode ends once graded (pure): a diff forager computed itself that does not apply is
    forager's failure (env_error), not the agent's; a patch the agent handed over as a file stays the agent's."""
    if not grade.applied and not patch_from_file:
        return ExitReason.env_error, f"grading: forager's diff of the repository does not apply ({grade.error})"
    return ExitReason.submitted, error


def episode_reward(exit_reason: ExitReason, resolved: bool, fail_reward: float) -> float | None:
    """+1 resolved, else `fail_reward`; no reward at all when the environment failed (pure)."""
    if exit_reason == ExitReason.env_error:
        return None  # why: a broken sandbox or grader says nothing about the agent; exports exclude it
    return 1.0 if resolved else fail_reward
