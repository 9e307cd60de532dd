"""The oracle: every valid task's gold patch graded in a fresh container, as an agent's patch would be.

A task whose own fix does not resolve it is a broken task (an image that changed, a flaky test, a grading
rule the task breaks); `forager tasks oracle` runs this on a store and fails when any does not resolve.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

from pydantic import BaseModel

from forager.config import Settings
from forager.engine.docker_engine import Engine
from forager.store import Store, Task
from forager.tasks.evaluate import Grade, evaluate_in_image

IMAGE_GONE = "its image is gone; rebuild it"


class OracleResult(BaseModel):
    """One task's gold patch graded: the grade, or why it could not be."""

    instance_id: str
    kind: str
    resolved: bool = False
    error: str | None = None
    grade: Grade | None = None

    def row(self) -> dict:
        """The flat JSON of `tasks oracle --json` (the grade's fields beside the task's, without per-test statuses)."""
        graded = self.grade.model_dump(exclude={"statuses", "script", "log_tail"}) if self.grade else {}
        return {"instance_id": self.instance_id, "kind": self.kind, **graded, "resolved": self.resolved,
                "error": self.error if self.grade is None else graded.get("error")}


def grade_gold(engine: Engine, settings: Settings, store: Store, task: Task) -> OracleResult:
    image = store.image(task.image_id) if task.image_id is not None else None
    if image is None or not engine.image_exists(image.tag):
        return OracleResult(instance_id=task.instance_id, kind=task.kind, error=IMAGE_GONE)
    grade = evaluate_in_image(engine, settings, image, task, task.gold_patch)
    return OracleResult(instance_id=task.instance_id, kind=task.kind, resolved=grade.resolved, error=grade.error,
                        grade=grade)


def run_oracle(
    engine: Engine, settings: Settings, store: Store, tasks: list[Task], *, jobs: int = 1,
    on_done: Callable[[OracleResult], None] = lambda _r: None,
) -> list[OracleResult]:
    """The gold patch of each task graded, `jobs` at once; results in instance order."""
    results: list[OracleResult] = []
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        futures = [pool.submit(grade_gold, engine, settings, store, task) for task in tasks]
        for future in as_completed(futures):
            results.append(future.result())
            on_done(results[-1])
    return sorted(results, key=lambda r: r.instance_id)
