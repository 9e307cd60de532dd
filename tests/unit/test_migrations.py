"""The store upgrades itself (Alembic): new stores, stores at HEAD, older and newer revisions (SQLite)."""

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from forager.store import Store, migrations
from forager.store import _engine_for as engine_for


def _revisions(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def _at(path: Path, revision: str) -> None:
    """A store brought by the migrations to `revision` only, as a forager of that revision left it."""
    with migrations._schema_lock(engine_for(f"sqlite:///{path}")) as conn:
        command.upgrade(migrations._config(conn), revision)


def test_head_is_the_newest_revision():
    script = ScriptDirectory(str(Path(migrations.__file__).parent))
    assert script.get_current_head() == migrations.HEAD


def test_a_new_store_is_made_by_the_migrations_and_equals_the_models(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'new.db'}")
    found = inspect(store.engine)
    for table in SQLModel.metadata.sorted_tables:
        assert {c.name for c in table.columns} <= {c["name"] for c in found.get_columns(table.name)}, table.name
    with store.engine.connect() as conn:  # types, nullability, indexes and constraints too
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    assert _revisions(tmp_path / "new.db") == [migrations.HEAD]
    with sqlite3.connect(tmp_path / "new.db") as conn:  # the engine's pragmas still apply to a new file
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 16384


def test_a_store_at_head_opens_without_alembic(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url)

    def not_again(_conn):
        raise AssertionError("Alembic ran on a store at HEAD")

    monkeypatch.setattr(migrations, "_upgrade_locked", not_again)
    Store(url)
    assert _revisions(tmp_path / "s.db") == [migrations.HEAD]


def test_an_older_revision_is_upgraded_and_its_rows_read_the_new_columns_as_empty(tmp_path):
    path = tmp_path / "old.db"
    _at(path, migrations.BASELINE)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO repos (url, name, mirror_path, created_at) VALUES ('/src/r', 'r', '', '2025-01-01')")
        conn.execute("INSERT INTO images (repo_id, status, tests_passed, tests_failed, tests_error, tests_skipped, "
                     "tests_flaky, created_at, updated_at) "
                     "VALUES (1, 'ready', 1, 0, 0, 0, 0, '2025-01-01', '2025-01-01')")
    store = Store(f"sqlite:///{path}")
    [(image, repo)] = store.images()
    assert repo.url == "/src/r" and image.changed_tracked == {} and image.plugin_files == []
    assert _revisions(path) == [migrations.HEAD]


def test_a_store_with_every_column_but_no_version_is_stamped_at_head(tmp_path):
    path = tmp_path / "unversioned.db"  # as the commit before migrations left it: create_all of today's models
    SQLModel.metadata.create_all(engine_for(f"sqlite:///{path}"))
    Store(f"sqlite:///{path}")
    assert _revisions(path) == [migrations.HEAD]


def test_a_store_from_a_newer_forager_is_refused_in_one_line(tmp_path):
    path = tmp_path / "future.db"
    Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(ValueError) as refused:
        Store(f"sqlite:///{path}")
    assert str(refused.value) == (f"store 'sqlite:///{path}' was made by a newer forager (schema 0099, this one "
                                  f"knows up to {migrations.HEAD}); upgrade forager")
    assert _revisions(path) == ["0099"]


def test_a_store_older_than_migrations_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "ancient.db"
    _at(path, migrations.BASELINE)
    with sqlite3.connect(path) as conn:  # what a forager before the baseline left: no versions, a column short
        conn.execute("DROP TABLE alembic_version")
        conn.execute("ALTER TABLE steps DROP COLUMN prompt_offset")
    with pytest.raises(ValueError, match=r"^store '.*' predates migrations and is too old to upgrade "
                                         r"\(steps.prompt_offset missing\); move it aside or point at a new store$"):
        Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # the upgrade was rolled back: no version stamped, no column added
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        images = {row[1] for row in conn.execute("PRAGMA table_info(images)")}
    assert "alembic_version" not in tables and "changed_tracked" not in images


def test_a_bad_url_is_one_line():
    with pytest.raises(ValueError, match=r"^cannot open store 'nosuchdb://x': [^\n]*$"):
        Store("nosuchdb://x")
