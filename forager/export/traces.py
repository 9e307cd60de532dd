"""`forager export --format trace`: function-level execution traces as JSONL or Parquet rows.

Each row holds the CWM text (context, then frames) and the same trace as structured events side by side,
with where it came from (repository, commit, image, Python, tracer version, seed, test, function) and, for a
task's traces, the id of its counterpart in the other state (the same test and activation with the bug and
with the fix). By default a trace that differed between two runs of its test, or whose return value is not
the one its test observed, is left out; `dedup` drops near-identical traces per repository (MinHash).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, Field

from forager.export.dedup import NearDuplicates, word_shingles
from forager.export.writer import open_writer
from forager.store import Store
from forager.traces import cwm

DEDUP_THRESHOLD = 0.9  # near-identical: most traces of one function share their context and many frames
SHINGLE_WORDS = 5
BATCH_ROWS = 256
_WORD = re.compile(r"\S+")

EVENT = pa.struct([
    ("kind", pa.string()), ("source", pa.string()), ("locals", pa.string()), ("value", pa.string()),
    ("path", pa.string()), ("line", pa.int64()), ("depth", pa.int64()),
])
SCHEMA = pa.schema([
    ("id", pa.int64()), ("repo", pa.string()), ("commit", pa.string()), ("image_id", pa.int64()),
    ("python_version", pa.string()), ("tracer_version", pa.string()), ("seed", pa.int64()),
    ("task", pa.string()), ("variant", pa.string()), ("pair_id", pa.int64()), ("test_id", pa.string()),
    ("path", pa.string()), ("qualname", pa.string()), ("ordinal", pa.int64()), ("depth", pa.int64()),
    ("line_events", pa.int64()), ("deterministic", pa.bool_()), ("return_value", pa.string()),
    ("raised", pa.string()), ("text", pa.string()), ("context", pa.string()), ("events", pa.list_(EVENT)),
])


class TraceExportRequest(BaseModel):
    out: Path
    repo: str | None = None
    image_id: int | None = None
    task: str | None = Field(default=None, description="a task's instance id: its bug/fix traces only")
    min_events: int | None = Field(default=None, ge=0, description="at least this many line events")
    max_events: int | None = Field(default=None, ge=0, description="at most this many line events")
    dedup: bool = False
    include_nondeterministic: bool = False
    limit: int | None = Field(default=None, ge=1)


class TraceExportStats(BaseModel):
    format: str = "trace"
    out: str
    rows: int = 0
    pairs: int = Field(default=0, description="rows whose counterpart (bug/fix) is in the store")
    line_events: int = 0
    events: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)
    bytes: int = 0
    bytes_per_event: float = 0.0
    seconds: float = 0.0


def frame_shingles(text: str) -> set[bytes]:
    """The trace's frames (the context is shared by every trace of a function) as word shingles (pure)."""
    frames = text.split(cwm.FRAME_SEP, 1)[1] if cwm.FRAME_SEP in text else text
    return word_shingles(_WORD.findall(frames.replace("<|", " <|").replace("|>", "|> ")), SHINGLE_WORDS)


def event_row(event: dict) -> dict:
    """A stored event as a Parquet/JSONL struct: locals as one JSON object text (their names vary per frame)."""
    return {"kind": event["kind"], "source": event.get("source", ""),
            "locals": json.dumps(event["locals"], ensure_ascii=False) if event.get("locals") else None,
            "value": event.get("value"), "path": event.get("path", ""), "line": event.get("line", 0),
            "depth": event.get("depth", 0)}


def export_traces(store: Store, request: TraceExportRequest) -> TraceExportStats:
    started = time.monotonic()
    stats = TraceExportStats(out=str(request.out))
    dropped: Counter[str] = Counter()
    pairs = store.trace_pairs()
    duplicates = NearDuplicates(threshold=DEDUP_THRESHOLD) if request.dedup else None
    writer = open_writer(request.out, SCHEMA)
    batch: list[dict] = []
    try:
        for trace, traced, image, repo, task in store.iter_traces(
                repo=request.repo, image_id=request.image_id, task=request.task, min_events=request.min_events,
                max_events=request.max_events):
            if request.limit is not None and stats.rows >= request.limit:
                break
            if trace.deterministic is False and not request.include_nondeterministic:
                dropped["nondeterministic"] += 1
                continue
            if trace.return_checked is False:
                dropped["return mismatch"] += 1
                continue
            if duplicates is not None and duplicates.seen_shingles(repo.name, str(trace.id), frame_shingles(trace.text)):
                dropped["dedup"] += 1
                continue
            batch.append({
                "id": trace.id, "repo": repo.name, "commit": image.commit, "image_id": image.id,
                "python_version": traced.python_version, "tracer_version": traced.tracer_version, "seed": traced.seed,
                "task": task.instance_id if task else None, "variant": trace.variant, "pair_id": pairs.get(trace.id),
                "test_id": trace.test_id, "path": trace.path, "qualname": trace.qualname, "ordinal": trace.ordinal,
                "depth": trace.depth, "line_events": trace.line_events, "deterministic": trace.deterministic,
                "return_value": trace.return_value, "raised": trace.raised, "text": trace.text,
                "context": trace.context, "events": [event_row(e) for e in trace.events],
            })
            stats.rows += 1
            stats.pairs += trace.id in pairs
            stats.line_events += trace.line_events
            stats.events += trace.events_count
            if len(batch) >= BATCH_ROWS:
                writer.write(batch)
                batch = []
        writer.write(batch)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    stats.dropped = dict(dropped)
    stats.bytes = request.out.stat().st_size
    stats.bytes_per_event = round(stats.bytes / stats.events, 1) if stats.events else 0.0
    stats.seconds = round(time.monotonic() - started, 3)
    return stats
