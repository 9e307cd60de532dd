"""One export: the store's stream of finished episodes -> a format's rows -> dedup -> a JSONL or Parquet file."""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, NamedTuple

import pyarrow as pa
from pydantic import BaseModel, Field

from forager.export import cwm, dedup, preds, rl, sft, steps
from forager.export.common import context_tokens
from forager.export.cwm import CwmOptions
from forager.export.sft import SftOptions
from forager.export.writer import JsonlWriter, open_writer
from forager.store.stream import (
    EpisodeBundle,
    EpisodeFilters,
    filter_drops,
    split_ids,
    stream_bundles,
)

FormatName = Literal["sft", "rl", "cwm", "steps", "swebench-preds"]


class ExportRequest(BaseModel):
    format: FormatName
    out: Path
    filters: EpisodeFilters = Field(default_factory=EpisodeFilters)
    dedup: bool = False
    limit: int | None = Field(default=None, ge=1, description="at most this many episodes")
    sft_options: SftOptions = Field(default_factory=SftOptions)
    cwm_options: CwmOptions = Field(default_factory=CwmOptions)
    batch_rows: int = Field(default=512, ge=1, description="rows per write (a Parquet row group) at the most")
    # why a token bound too: an rl row of a long episode holds its every token four times, and 512 of
    # them held as Python lists for one Parquet row group took 2 GB on the benchmark's 50-turn episodes
    batch_tokens: int = Field(default=1_000_000, ge=1, description="a write as soon as its rows hold this many tokens")
    workers: int | None = Field(default=None, ge=1, description="processes for a JSONL export (None: one per core, up to MAX_WORKERS)")
    splice_json: bool = Field(default=True, description="JSONL: copy stored JSON text into the rows where that gives the "
                              "same values (export.splice); False decodes and encodes every value (slower, same rows)")

    @property
    def jsonl(self) -> bool:
        return self.out.suffix == ".jsonl"


class ExportStats(BaseModel):
    format: str
    out: str
    rows: int = 0
    episodes: int = 0
    steps: int = 0
    tokens: int = 0
    resolved: int = 0
    resolved_share: float = 0.0
    finished: int = Field(default=0, description="finished episodes in the store before any filter")
    dropped: dict[str, int] = Field(default_factory=dict, description="episodes each filter, 'no_tokens' and 'dedup' dropped")
    bytes: int = 0
    seconds: float = 0.0
    steps_per_second: float = 0.0


class Format(NamedTuple):
    step_columns: tuple[str, ...]
    schema: pa.Schema
    rows: Callable[[EpisodeBundle, ExportRequest], list[dict]]
    tokens: Callable[[EpisodeBundle, list[dict]], int]
    raw_columns: tuple[str, ...] = ()  # JSON step columns its rows take as stored text (JSONL only)


def _counted(*fields: str) -> Callable[[EpisodeBundle, list[dict]], int]:
    """Tokens of rows that count their own (their id lists may be JSON text, not lists)."""
    return lambda _bundle, rows: sum(row[field] for row in rows for field in fields)


def _one(row: dict | None) -> list[dict]:
    return [] if row is None else [row]


FORMATS: dict[str, Format] = {
    "sft": Format(sft.STEP_COLUMNS, sft.SCHEMA, lambda b, r: [sft.sft_row(b, r.sft_options)], lambda b, _rows: context_tokens(b)),
    "cwm": Format(cwm.STEP_COLUMNS, cwm.SCHEMA, lambda b, r: [cwm.cwm_row(b, r.cwm_options)], lambda b, _rows: context_tokens(b)),
    "rl": Format(rl.STEP_COLUMNS, rl.SCHEMA, lambda b, _r: _one(rl.rl_row(b)), _counted("n_prompt_tokens", "n_response_tokens"),
                 rl.RAW_COLUMNS),
    "steps": Format(steps.STEP_COLUMNS, steps.SCHEMA, lambda b, _r: steps.step_rows(b),
                    _counted("n_prompt_tokens", "n_completion_tokens"), steps.RAW_COLUMNS),
    "swebench-preds": Format(preds.STEP_COLUMNS, preds.SCHEMA, lambda b, _r: [preds.prediction_row(b)], lambda b, _rows: 0),
}


# why: below this many matching episodes per worker, starting a process costs more than it saves
PARALLEL_MIN_EPISODES = 128
# why a cap: the parent appends every later part to the file, and the disk is the limit well before 8
MAX_WORKERS = 8


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the block, as it was after it.

    why: an export allocates millions of small dicts, lists and strings, and each few hundred
    allocations start a collection that walks the young ones (and now and then every live object):
    measured, one process exporting sft went from 42k to 54k steps/s without it. The rows hold no
    reference cycles, so reference counting frees them all as it goes; nothing accumulates while the
    collector rests (a collection after sft, cwm and rl exports found no garbage).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write_range(store, request: ExportRequest, writer, stats: ExportStats, first_id: int = 0,
                 last_id: int | None = None) -> None:
    """Rows of the matching episodes with first_id < id <= last_id, written in id order; counts go to `stats`."""
    chosen = FORMATS[request.format]
    duplicates = dedup.NearDuplicates() if request.dedup else None
    extra = dedup.STEP_COLUMNS if duplicates else ()
    columns = chosen.step_columns + extra
    # dedup reads its columns decoded; Parquet and splice_json=False read every column decoded
    raw = set(chosen.raw_columns) - set(extra) if request.jsonl and request.splice_json else set()
    batch: list[dict] = []
    batch_tokens = 0
    with _cycle_collector_paused():
        for bundle in stream_bundles(store, request.filters, columns, first_id=first_id, last_id=last_id, raw_columns=raw):
            rows = chosen.rows(bundle, request)
            if not rows:
                stats.dropped["no_tokens"] += 1
                continue
            if duplicates is not None and duplicates.seen(bundle):
                stats.dropped["dedup"] += 1
                continue
            batch += rows
            tokens = chosen.tokens(bundle, rows)
            stats.rows += len(rows)
            stats.episodes += 1
            stats.steps += len(bundle.steps)
            stats.tokens += tokens
            stats.resolved += bool(bundle.episode.resolved)
            batch_tokens += tokens
            if len(batch) >= request.batch_rows or batch_tokens >= request.batch_tokens:
                writer.write(batch)
                batch, batch_tokens = [], 0
            if request.limit is not None and stats.episodes >= request.limit:
                break
        writer.write(batch)


def _parallel_ranges(store, request: ExportRequest, matching: int) -> list[tuple[int, int | None]]:
    """Episode-id ranges to export side by side, or one range when it would not pay or not be the same file.

    Only JSONL: its parts concatenate into exactly the sequential file. Not with dedup or a limit:
    both depend on every earlier episode. `matching`: how many episodes the filters let through.
    """
    workers = request.workers if request.workers is not None else min(MAX_WORKERS, os.cpu_count() or 1)
    if (workers < 2 or not request.jsonl or request.dedup or request.limit is not None
            or "fork" not in multiprocessing.get_all_start_methods()):
        return [(0, None)]
    return split_ids(store, request.filters, matching, workers, min_per_part=PARALLEL_MIN_EPISODES)


def _export_part(store, request: ExportRequest, first_id: int, last_id: int | None, path: Path, results) -> None:
    """In a forked process: one range to its own JSONL part file; its stats (or its error) go back on `results`."""
    try:
        store.engine.dispose(close=False)  # why: the parent's pooled connections must not be shared
        stats = ExportStats(format=request.format, out=str(path), dropped={"no_tokens": 0, "dedup": 0})
        writer = JsonlWriter(path)
        try:
            _write_range(store, request, writer, stats, first_id, last_id)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        results.send(("ok", stats.model_dump()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        results.send(("error", f"{exc.__class__.__name__}: {exc}"))
    finally:
        results.close()


def _merge(into: ExportStats, part: dict) -> None:
    for name in ("rows", "episodes", "steps", "tokens", "resolved"):
        setattr(into, name, getattr(into, name) + part[name])
    for name, count in part["dropped"].items():
        into.dropped[name] += count


def _write_parallel(store, request: ExportRequest, writer: JsonlWriter, stats: ExportStats,
                    ranges: list[tuple[int, int | None]]) -> None:
    """The first range here, each later one in a forked process to a part file; parts appended in order,
    so the file is byte for byte the sequential one."""
    context = multiprocessing.get_context("fork")
    parts = []
    try:
        for index, (first_id, last_id) in enumerate(ranges[1:], start=1):
            path = writer.temporary.with_name(f"{writer.temporary.name}.part{index}")
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_export_part, args=(store, request, first_id, last_id, path, send), daemon=True)
            process.start()
            send.close()
            parts.append((process, receive, path))
        _write_range(store, request, writer, stats, *ranges[0])
        for process, receive, path in parts:
            try:
                status, value = receive.recv()
            except EOFError:  # it died before it could say why
                process.join()
                status, value = "error", f"exit code {process.exitcode}"
            process.join()
            if status != "ok":
                raise RuntimeError(f"export worker failed: {value}")
            writer.append(path)
            _merge(stats, value)
    finally:
        for process, receive, path in parts:
            if process.is_alive():
                process.terminate()
            process.join()
            receive.close()
            path.unlink(missing_ok=True)


def export(store, request: ExportRequest) -> ExportStats:
    """Write the file (atomically) and say what went in and what was dropped, and why."""
    started = time.perf_counter()
    stats = ExportStats(format=request.format, out=str(request.out))
    stats.finished, drops = filter_drops(store, request.filters)
    stats.dropped = {**drops, "no_tokens": 0, "dedup": 0}
    ranges = _parallel_ranges(store, request, matching=stats.finished - sum(drops.values()))
    writer = open_writer(request.out, FORMATS[request.format].schema)
    try:
        if len(ranges) > 1:
            _write_parallel(store, request, writer, stats, ranges)
        else:
            _write_range(store, request, writer, stats)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    stats.bytes = request.out.stat().st_size
    stats.seconds = round(time.perf_counter() - started, 3)
    stats.resolved_share = round(stats.resolved / stats.episodes, 4) if stats.episodes else 0.0
    stats.steps_per_second = round(stats.steps / stats.seconds) if stats.seconds else 0.0
    return stats
