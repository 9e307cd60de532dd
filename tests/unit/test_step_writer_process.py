"""The writer process's pieces that need no database: its frames, its rows, what a death reads like."""

from __future__ import annotations

import pickle
from datetime import datetime, timezone

from sqlalchemy.dialects import postgresql, sqlite

from forager.store import JSON_CODEC, Step
from forager.store.writer import _InsertPlan, step_values
from forager.store.writer_process import _HEADER, _died, _error, _frames, _refusal, StepWriteError
from forager.store.episodes import LeaseLost


def _frame(message) -> bytes:
    data = pickle.dumps(message)
    return _HEADER.pack(len(data)) + data


def test_frames_are_read_whole_and_a_cut_one_waits_for_the_rest():
    stream = _frame(("a", 1)) + _frame(None) + _frame(("b", "x" * 5000))
    buffer = bytearray(stream[:-10])  # the last frame not all there yet
    frames, used = _frames(buffer)
    assert frames == [("a", 1), None] and used == len(_frame(("a", 1))) + len(_frame(None))
    del buffer[:used]
    buffer += stream[-10:]
    frames, used = _frames(buffer)
    assert frames == [("b", "x" * 5000)] and used == len(buffer)
    assert _frames(bytearray(b"\x05\x00"))[0] == []  # not even a header


def _sample() -> Step:
    return Step(episode_id=3, index=7, model_text="<tool: bash>\nls\n</tool>", tool="bash", arguments={"command": "ls"},
                prompt_delta_ids=[1, 2, 3], completion_token_ids=[4, 5], logprobs=[-0.5, -0.25], observation="é ok",
                timings={"model": 0.1}, prefix_ok=None, created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc))


def test_plain_rows_are_the_driver_rows_on_sqlite_and_json_text_on_postgresql():
    values = step_values(_sample())
    dialect = sqlite.dialect()
    dialect._json_serializer = JSON_CODEC["json_serializer"]
    assert _InsertPlan(dialect, plain=True).row(values) == _InsertPlan(dialect).row(values)

    pg = postgresql.psycopg.dialect(json_serializer=JSON_CODEC["json_serializer"])
    wrapped, plain = _InsertPlan(pg).row(values), _InsertPlan(pg, plain=True).row(values)
    assert len(wrapped) == len(plain)
    names = [name for name, _convert in _InsertPlan(pg, plain=True).columns]
    row = dict(zip(names, plain, strict=True))
    assert row["prompt_delta_ids"] == "[1,2,3]" and row["arguments"] == '{"command":"ls"}'
    assert row["timings"] == '{"model":0.1}' and row["observation"] == "é ok" and row["index"] == 7
    pickle.loads(pickle.dumps(plain))  # what goes down the pipe
    for name, value in row.items():  # nothing but what pickles plainly: no driver wrapper left
        assert value is None or isinstance(value, (str, int, float, bool, datetime)), (name, value)


def test_a_dead_writer_reads_as_one_line_naming_the_process_and_how_it_ended():
    killed = _died(123, -9, None, 4)
    assert "step writer process 123 was killed by SIGKILL" in killed and "4 steps unacknowledged" in killed
    failed = _died(124, 1, "cannot open the store: OperationalError: no such\nfile", 1)
    assert "exited with status 1 (cannot open the store: OperationalError: no such file)" in failed
    assert "\n" not in failed and "stopped answering" in _died(125, None, None, 0)


def test_refusals_come_back_as_raised_or_as_their_text():
    lost = _error(("lost", None, "episode 5 is no longer held by a:1"), LeaseLost)
    assert isinstance(lost, LeaseLost) and "no longer held" in str(lost)
    same = _error(_refusal(ValueError("bad row")), LeaseLost)
    assert isinstance(same, ValueError) and str(same) == "bad row"

    class Unpicklable(Exception):
        def __reduce__(self):
            raise TypeError("no")

    text = _error(_refusal(Unpicklable("odd")), LeaseLost)
    assert isinstance(text, StepWriteError) and str(text) == "Unpicklable: odd"
