"""Traced tests and their function-level traces: saved one test at a time, found again so a rerun skips them,
read back in id order for an export."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Integer, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from forager.store.tables import Image, Repo, Task, Trace, TracedTest

EXPORT_BATCH = 500


class TraceStore:
    """The trace half of the store (mixed into `Store`, which provides `session`)."""

    def traced(self, image_id: int, subject: str, tracer_version: str) -> set[str]:
        """The tests of `subject` already traced in the image by this tracer version."""
        with self.session() as s:
            return set(s.exec(select(TracedTest.test_id).where(
                TracedTest.image_id == image_id, TracedTest.subject == subject,
                TracedTest.tracer_version == tracer_version)))

    def save_traced(self, tests: Sequence[tuple[TracedTest, list[Trace]]]) -> int:
        """Each traced test with its traces, in one transaction; a test another worker stored meanwhile is left
        as it is. Returns the tests saved."""
        saved = 0
        with self.session() as s:
            for row, traces in tests:
                try:
                    with s.begin_nested():
                        s.add(row)
                        s.flush()
                        for trace in traces:
                            trace.traced_test_id = row.id
                            s.add(trace)
                        s.flush()
                    saved += 1
                except IntegrityError:
                    continue
            s.commit()
        return saved

    def traced_tests(self, image_id: int | None = None, task_id: int | None = None) -> list[TracedTest]:
        query = select(TracedTest)
        if image_id is not None:
            query = query.where(TracedTest.image_id == image_id)
        if task_id is not None:
            query = query.where(TracedTest.task_id == task_id)
        with self.session() as s:
            return list(s.exec(query.order_by(TracedTest.id)))

    def iter_traces(
        self, *, repo: str | None = None, image_id: int | None = None, task: str | None = None,
        min_events: int | None = None, max_events: int | None = None,
    ) -> Iterator[tuple[Trace, TracedTest, Image, Repo, Task | None]]:
        """Traces that match, in id order, read in batches (an export never holds a store in memory)."""
        last = 0
        while True:
            query = (select(Trace, TracedTest, Image, Repo).where(
                Trace.traced_test_id == TracedTest.id, Trace.image_id == Image.id, Image.repo_id == Repo.id,
                Trace.id > last))
            if repo is not None:
                query = query.where((Repo.name == repo) | (Repo.url == repo))
            if image_id is not None:
                query = query.where(Trace.image_id == image_id)
            if task is not None:
                query = query.where(Trace.task_id == Task.id, Task.instance_id == task)
            if min_events is not None:
                query = query.where(Trace.line_events >= min_events)
            if max_events is not None:
                query = query.where(Trace.line_events <= max_events)
            with self.session() as s:
                rows = list(s.exec(query.order_by(Trace.id).limit(EXPORT_BATCH)))
                task_ids = {trace.task_id for trace, *_ in rows if trace.task_id is not None}
                tasks = {t.id: t for t in s.exec(select(Task).where(Task.id.in_(task_ids)))} if task_ids else {}
            if not rows:
                return
            for trace, traced, image, repo_row in rows:
                yield trace, traced, image, repo_row, tasks.get(trace.task_id)
            last = rows[-1][0].id

    def trace_counts(self) -> list[dict]:
        """Per image: tests traced, traces kept, traces dropped, non-deterministic traces, task variants traced
        (for `forager status`)."""
        with self.session() as s:
            tested = s.exec(
                select(TracedTest.image_id, Repo.name, func.count(TracedTest.id), func.sum(TracedTest.traces),
                       func.count(func.distinct(TracedTest.task_id)))
                .where(TracedTest.image_id == Image.id, Image.repo_id == Repo.id)
                .group_by(TracedTest.image_id, Repo.name).order_by(TracedTest.image_id)
            ).all()
            unstable = dict(s.exec(
                select(Trace.image_id, func.sum(func.coalesce(Trace.deterministic.is_(False), False).cast(Integer)))
                .group_by(Trace.image_id)
            ).all())
            dropped: dict[int, int] = {}
            for image_id, counts in s.exec(select(TracedTest.image_id, TracedTest.dropped)):
                dropped[image_id] = dropped.get(image_id, 0) + sum((counts or {}).values())
        return [
            {"image_id": image_id, "repo": name, "tests": tests, "traces": int(traces or 0),
             "dropped": dropped.get(image_id, 0), "nondeterministic": int(unstable.get(image_id) or 0),
             "tasks": tasks}
            for image_id, name, tests, traces, tasks in tested
        ]

    def trace_pairs(self) -> dict[int, int]:
        """Trace id -> its counterpart's id: the same task, test and activation in the other state (bug/fix)."""
        with self.session() as s:
            rows = s.exec(select(Trace.id, Trace.task_id, Trace.variant, Trace.test_id, Trace.path, Trace.qualname,
                                 Trace.ordinal).where(Trace.task_id.is_not(None))).all()
        by_key = {(task, variant, test, path, name, ordinal): id_ for id_, task, variant, test, path, name, ordinal
                  in rows}
        other = {"bug": "fix", "fix": "bug"}
        pairs = {}
        for id_, task, variant, test, path, name, ordinal in rows:
            partner = by_key.get((task, other.get(variant), test, path, name, ordinal))
            if partner is not None:
                pairs[id_] = partner
        return pairs
