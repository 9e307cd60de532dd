"""One export: the store's stream of finished episodes -> a format's rows -> dedup -> a JSONL or Parquet file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

import pyarrow as pa
from pydantic import BaseModel, Field

from forager.export import cwm, dedup, preds, rl, sft, steps
from forager.export.common import context_tokens
from forager.export.cwm import CwmOptions
from forager.export.sft import SftOptions
from forager.export.writer import open_writer
from forager.store.stream import EpisodeBundle, EpisodeFilters, filter_drops, stream_bundles

FormatName = Literal["sft", "rl", "cwm", "steps", "swebench-preds"]


class ExportRequest(BaseModel):
    format: FormatName
    out: Path
    filters: EpisodeFilters = Field(default_factory=EpisodeFilters)
    dedup: bool = False
    limit: int | None = Field(default=None, ge=1, description="at most this many episodes")
    sft_options: SftOptions = Field(default_factory=SftOptions)
    cwm_options: CwmOptions = Field(default_factory=CwmOptions)
    batch_rows: int = Field(default=512, ge=1, description="rows per write (a Parquet row group)")


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


def _token_ids(*fields: str) -> Callable[[EpisodeBundle, list[dict]], int]:
    return lambda _bundle, rows: sum(len(row[field]) for row in rows for field in fields)


def _one(row: dict | None) -> list[dict]:
    return [] if row is None else [row]


FORMATS: dict[str, Format] = {
    "sft": Format(sft.STEP_COLUMNS, sft.SCHEMA, lambda b, r: [sft.sft_row(b, r.sft_options)], lambda b, _rows: context_tokens(b)),
    "cwm": Format(cwm.STEP_COLUMNS, cwm.SCHEMA, lambda b, r: [cwm.cwm_row(b, r.cwm_options)], lambda b, _rows: context_tokens(b)),
    "rl": Format(rl.STEP_COLUMNS, rl.SCHEMA, lambda b, _r: _one(rl.rl_row(b)), _token_ids("prompt_ids", "response_ids")),
    "steps": Format(steps.STEP_COLUMNS, steps.SCHEMA, lambda b, _r: steps.step_rows(b),
                    _token_ids("prompt_ids", "completion_ids")),
    "swebench-preds": Format(preds.STEP_COLUMNS, preds.SCHEMA, lambda b, _r: [preds.prediction_row(b)], lambda b, _rows: 0),
}


def export(store, request: ExportRequest) -> ExportStats:
    """Write the file (atomically) and say what went in and what was dropped, and why."""
    started = time.perf_counter()
    chosen = FORMATS[request.format]
    stats = ExportStats(format=request.format, out=str(request.out))
    stats.finished, drops = filter_drops(store, request.filters)
    stats.dropped = {**drops, "no_tokens": 0, "dedup": 0}
    duplicates = dedup.NearDuplicates() if request.dedup else None
    columns = chosen.step_columns + (dedup.STEP_COLUMNS if duplicates else ())
    writer = open_writer(request.out, chosen.schema)
    try:
        batch: list[dict] = []
        for bundle in stream_bundles(store, request.filters, columns):
            rows = chosen.rows(bundle, request)
            if not rows:
                stats.dropped["no_tokens"] += 1
                continue
            if duplicates is not None and duplicates.seen(bundle):
                stats.dropped["dedup"] += 1
                continue
            batch += rows
            stats.rows += len(rows)
            stats.episodes += 1
            stats.steps += len(bundle.steps)
            stats.tokens += chosen.tokens(bundle, rows)
            stats.resolved += bool(bundle.episode.resolved)
            if len(batch) >= request.batch_rows:
                writer.write(batch)
                batch = []
            if request.limit is not None and stats.episodes >= request.limit:
                break
        writer.write(batch)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    stats.bytes = request.out.stat().st_size
    stats.seconds = round(time.perf_counter() - started, 3)
    stats.resolved_share = round(stats.resolved / stats.episodes, 4) if stats.episodes else 0.0
    stats.steps_per_second = round(stats.steps / stats.seconds) if stats.seconds else 0.0
    return stats
