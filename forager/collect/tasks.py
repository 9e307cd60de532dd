"""The tasks a collect job runs on: each repository's image built or found, and its first valid tasks, with
mutate-fix tasks synthesized when there are too few."""

from __future__ import annotations

from forager.config import Settings
from forager.engine.docker_engine import Engine
from forager.images.pipeline import ImageBuilder, StageCallback
from forager.models import FailureCategory, ForagerError, RepoRef
from forager.store import Store, Task


def tasks_for(
    ref: RepoRef, count: int, kind: str | None, settings: Settings, store: Store, engine: Engine,
    builder: ImageBuilder, on_stage: StageCallback = lambda _s: None, *, verified_only: bool = False,
) -> list[Task]:
    """The first `count` valid tasks of a repository (of `kind` when given; verified by `tasks verify` when asked);
    a ForagerError says why there are none."""
    from forager.integrity.verify import is_verified
    from forager.tasks.synthesize import MutateFixSynthesizer

    built = builder.build(ref, on_stage)
    if built.status != "ready":
        raise ForagerError(FailureCategory(built.category or "build"), f"{ref}: no ready image: {built.message}")
    repo_id = store.image(built.image_id).repo_id

    def valid_tasks() -> list[Task]:
        return [task for task, repo in store.tasks(kind=kind, valid=True)
                if repo.id == repo_id and (not verified_only or is_verified(task.integrity))]

    rows = valid_tasks()
    if len(rows) < count and kind in (None, "mutate-fix") and not verified_only:
        on_stage("synthesize tasks")
        MutateFixSynthesizer(settings, store, engine, builder).synthesize(ref, count=count, seed=0, on_stage=on_stage)
        rows = valid_tasks()
    if not rows:
        raise ForagerError(FailureCategory.no_tests, f"{ref}: no valid tasks{f' of kind {kind}' if kind else ''}"
                           + (" verified (run `forager tasks verify --repo ...` first)" if verified_only else ""))
    return rows[:count]


def run_job_values(store: Store, name: str) -> dict | None:
    """What a stored run was: the job values (as a job file holds them) that resume it, or None when there is
    no such run. Its repositories are those of its tasks, at the commits its tasks' images were built from."""
    run = store.run_by_name(name)
    if run is None:
        return None
    instance_ids = list((run.config or {}).get("tasks") or [])
    rows = store.tasks(instance_ids=instance_ids) if instance_ids else []
    # one look-up per image, not per task: a run's tasks mostly share a few images
    images = {image_id: store.image(image_id) for image_id in {task.image_id for task, _repo in rows} - {None}}
    per_repo: dict[str, int] = {}
    for task, repo in rows:
        image = images.get(task.image_id)
        key = f"{repo.url}@{image.commit}" if image is not None and image.commit else repo.url
        per_repo[key] = per_repo.get(key, 0) + 1
    kinds = {task.kind for task, _repo in rows}
    return {"repos": list(per_repo), "tasks": max(per_repo.values(), default=1),
            "kind": kinds.pop() if len(kinds) == 1 else None, "run": name, "collect": dict(run.config or {})}
