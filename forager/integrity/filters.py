"""Which tasks an export or a task file keeps by what forager measured of them: verified, not contaminated, a
pass rate in a range. The records are read from the tasks (and pass rates from the episodes), so the filters
work the same on SQLite and PostgreSQL."""

from __future__ import annotations

from pydantic import BaseModel

from forager.integrity.contamination import is_contaminated
from forager.integrity.stats import pass_rates
from forager.integrity.verify import is_verified
from forager.store import Store, Task


class TaskFilters(BaseModel):
    verified_only: bool = False
    exclude_contaminated: bool = False
    pass_rate: tuple[float, float] | None = None  # inclusive bounds on pass@1 over finished episodes
    pass_rate_run: str | None = None  # the run the pass rates come from (None: every run but oracle runs)

    @property
    def active(self) -> bool:
        return self.verified_only or self.exclude_contaminated or self.pass_rate is not None


def keeps(task: Task, filters: TaskFilters, rates: dict[int, float]) -> bool:
    """Whether `task` passes the filters, `rates` holding the pass rates (pure)."""
    if filters.verified_only and not is_verified(task.integrity):
        return False
    if filters.exclude_contaminated and is_contaminated(task.integrity):
        return False
    if filters.pass_rate is not None:
        rate = rates.get(task.id)
        low, high = filters.pass_rate
        if rate is None or not low <= rate <= high:
            return False
    return True


def kept_task_ids(store: Store, filters: TaskFilters) -> list[int] | None:
    """The ids of the tasks the filters keep; None when no filter is set (every task)."""
    if not filters.active:
        return None
    rates = pass_rates(store, run=filters.pass_rate_run) if filters.pass_rate is not None else {}
    return [task.id for task, _repo in store.tasks() if keeps(task, filters, rates)]
