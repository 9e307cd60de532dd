"""Trace export rows and near-duplicate detection (pure parts of forager/export/traces.py)."""

from __future__ import annotations

import json

from forager.export.dedup import NearDuplicates
from forager.export.traces import DEDUP_THRESHOLD, event_row, frame_shingles
from forager.traces import cwm
from forager.traces.models import FunctionTrace, TraceEvent


def trace(values: list[int], context: str = "def f(x):  # << START_OF_TRACE\n    return x") -> str:
    events = [TraceEvent(kind="call", source="def f(x):", locals={"x": "0"})]
    for value in values:
        events.append(TraceEvent(kind="line", source="y = g(x)", locals={"x": "..", "y": str(value)}))
    events.append(TraceEvent(kind="return", source="return y", value=str(values[-1])))
    return cwm.serialise(FunctionTrace(test_id="t", path="m.py", qualname="f", ordinal=0, depth=1, context=context,
                                       events=events))


def test_near_identical_traces_are_duplicates_and_different_ones_are_not():
    seen = NearDuplicates(threshold=DEDUP_THRESHOLD)
    base = list(range(200))
    assert not seen.seen_shingles("repo", "1", frame_shingles(trace(base)))
    assert seen.seen_shingles("repo", "2", frame_shingles(trace([*base[:-1], 999])))  # one value of 200 differs
    assert not seen.seen_shingles("repo", "3", frame_shingles(trace(list(range(1000, 1200)))))
    assert not seen.seen_shingles("other repo", "4", frame_shingles(trace(base)))  # per repository


def test_the_shared_context_does_not_make_traces_duplicates():
    context = "\n".join(f"    line_{i} = {i}" for i in range(500))  # a long function: its source dominates the text
    first, second = trace([1, 2], context), trace([7, 8], context)
    assert frame_shingles(first) & frame_shingles(second) != frame_shingles(first)
    assert not any(b"line_1" in shingle for shingle in frame_shingles(first))


def test_event_rows_keep_locals_as_one_json_text():
    row = event_row({"kind": "line", "source": "y = 1", "locals": {"x": "..", "é": "'é'"}, "line": 3})
    assert json.loads(row["locals"]) == {"x": "..", "é": "'é'"} and row["value"] is None and row["depth"] == 0
    assert event_row({"kind": "return", "source": "return y", "value": "1"})["locals"] is None
