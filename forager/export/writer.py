"""Row writers chosen by the output's suffix: JSONL (.jsonl) or Parquet (.parquet).

Rows arrive in batches and leave at once (a Parquet row group per batch), so memory holds one batch.
Both write a temporary file beside the target and rename it into place when the export finishes:
a reader never sees half a file, and a failed export leaves the previous file as it was.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

SUFFIXES = (".jsonl", ".parquet")


class RowWriter(Protocol):
    def write(self, rows: list[dict]) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


class JsonlWriter:
    def __init__(self, path: Path):
        self.path, self.temporary = path, _temporary(path)
        self.file = open(self.temporary, "wb")  # noqa: SIM115 - closed by commit or abort

    def write(self, rows: list[dict]) -> None:
        # why: orjson encodes several times faster than json and writes non-ASCII text as UTF-8; its
        # newline option and writelines spare two copies of every line
        self.file.writelines([orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows])

    def append(self, part: Path) -> None:
        """Another JSONL file's lines after the ones written so far (a part exported in parallel)."""
        self.file.flush()
        with open(part, "rb") as source:
            shutil.copyfileobj(source, self.file, 1 << 20)

    def commit(self) -> None:
        self.file.close()
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        self.file.close()
        self.temporary.unlink(missing_ok=True)


def string_columns(schema: pa.Schema) -> list[str]:
    """The Parquet column paths of a schema that hold strings (nested ones included)."""
    empty = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), empty)
    layout = pq.read_metadata(pa.BufferReader(empty.getvalue())).schema
    return [layout.column(i).path for i in range(len(layout)) if layout.column(i).physical_type == "BYTE_ARRAY"]


class ParquetWriter:
    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.temporary, self.schema = path, _temporary(path), schema
        # why dictionaries for strings only: on token-id and logprob lists a dictionary rarely pays and
        # building one was most of the write (measured: steps 3x faster and its file 30% smaller
        # without, rl 3.4x faster and 17% larger)
        self.writer = pq.ParquetWriter(self.temporary, schema, compression="zstd", use_dictionary=string_columns(schema))

    def write(self, rows: list[dict]) -> None:
        if rows:
            self.writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def commit(self) -> None:
        self.writer.close()
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        self.writer.close()
        self.temporary.unlink(missing_ok=True)


def open_writer(path: Path, schema: pa.Schema) -> RowWriter:
    """A writer for `path` by its suffix; ValueError for any other suffix."""
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: the output must end in {' or '.join(SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return JsonlWriter(path) if path.suffix == ".jsonl" else ParquetWriter(path, schema)
