"""Repair what an earlier forager graded wrongly, instead of throwing the data away.

Before start states held the install's changes to tracked files, every diff an episode submitted on
such an image carried the install's change, which no longer applied in the grading container: the
episode was graded "patch does not apply" (reward -1), and tasks whose patches touched such a file were
stored invalid for the same reason. Grading now applies those patches (a 3-way merge of the identical
change), so they can simply be graded again.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from forager.agent.loop import ExitReason
from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder
from forager.collect import episode_reward, graded_exit
from forager.config import Settings
from forager.store import Episode, Store
from forager.tasks.evaluate import APPLY_FAILED, evaluate_in_image
from forager.tasks.issues import TaskValidator
from forager.tasks.records import TaskKind
from forager.tasks.synthesize import MutateFixSynthesizer

REGRADED = "regraded"


class Repaired(BaseModel):
    """One episode or task looked at again (one table row, one JSON object)."""

    kind: str  # episode | task
    id: str
    before: str
    after: str
    fixed: bool = Field(description="an episode now graded on its change; a task now valid")


class RepairReport(BaseModel):
    episodes: int = 0
    episodes_resolved: int = 0
    episodes_env_error: int = 0
    tasks: int = 0
    tasks_valid: int = 0
    items: list[Repaired] = Field(default_factory=list)


def stale_tasks(store: Store) -> list:
    """Invalid tasks whose reason is a patch that did not apply."""
    return [(task, repo) for task, repo in store.tasks(valid=False) if "does not apply" in (task.invalid_reason or "")]


def submitted_from_file(store: Store, episode: Episode) -> bool:
    """The agent handed its patch over as a file (submit with a path), rather than forager diffing the repository."""
    steps = store.steps(episode.id)
    last = steps[-1] if steps else None
    return bool(last and last.tool == "submit" and str((last.arguments or {}).get("path") or "").strip())


def repair(
    settings: Settings, store: Store, engine: Engine, *, run_id: int | None = None, dry_run: bool = False,
    on_item: Callable[[Repaired], None] = lambda _r: None,
) -> RepairReport:
    """Regrade episodes graded "patch does not apply" and revalidate tasks invalid for it (all, or one run's
    episodes). With `dry_run`, only list them."""
    report = RepairReport()
    fail_rewards = {run.id: float(run.config.get("fail_reward", -1.0)) for run in store.runs()}
    for episode in store.finished_episodes_with_error(APPLY_FAILED, run_id):
        report.episodes += 1
        item = Repaired(kind="episode", id=str(episode.id), before=episode.grade.get("error", ""), after="", fixed=False)
        if not dry_run:
            item = _regrade(settings, store, engine, episode, fail_rewards.get(episode.run_id, -1.0), item)
            report.episodes_resolved += item.after.startswith("resolved")
            report.episodes_env_error += item.after.startswith(ExitReason.env_error.value)
        report.items.append(item)
        on_item(item)
    if run_id is None:
        builder = ImageBuilder(settings, store, engine)
        synthesizer = MutateFixSynthesizer(settings, store, engine, builder)
        validator = TaskValidator(settings, store, engine, builder)
        for task, repo in stale_tasks(store):
            report.tasks += 1
            item = Repaired(kind="task", id=task.instance_id, before=task.invalid_reason or "", after="", fixed=False)
            if not dry_run:
                if task.kind == TaskKind.mutate_fix.value:
                    task = synthesizer.revalidate(task)
                else:
                    validator.revalidate(task, repo.url)
                    task = store.task(task.instance_id)
                item.fixed, item.after = task.valid, "valid" if task.valid else f"invalid: {task.invalid_reason}"
                report.tasks_valid += task.valid
            report.items.append(item)
            on_item(item)
    return report


def _regrade(settings: Settings, store: Store, engine: Engine, episode: Episode, fail_reward: float,
             item: Repaired) -> Repaired:
    task = store.task_by_id(episode.task_id)
    image = store.image(task.image_id) if task and task.image_id else None
    if image is None or not engine.image_exists(image.tag):
        item.after = "not regraded: the task's image is gone (rebuild it with `forager build-images`)"
        return item
    grade = evaluate_in_image(engine, settings, image, task, episode.patch)
    exit_reason, error = graded_exit(grade, submitted_from_file(store, episode))
    reward = episode_reward(exit_reason, grade.resolved, fail_reward)
    store.regrade_episode(
        episode.id, last_step_reward=reward, grade=grade.model_dump(mode="json"), resolved=grade.resolved,
        reward=reward, exit_reason=exit_reason.value, error=error, flags=[*grade.flags(), REGRADED],
    )
    item.fixed = grade.applied
    item.after = (f"{exit_reason.value}: {grade.error}" if exit_reason == ExitReason.env_error
                  else f"{'resolved' if grade.resolved else 'not resolved'} (reward {reward:g})")
    return item
