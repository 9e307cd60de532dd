"""The store's schema history: Alembic revisions in versions/, forward only (nothing downgrades a store).

Opening a store calls `upgrade`: a new database gets every revision; a store made before migrations
(forager's tables, no alembic_version table) is taken for the baseline, stamped and upgraded; an older
revision is upgraded; a newer one (a later forager's) is refused.

A schema change: change the models in tables.py, add versions/NNNN_what.py with explicit operations
(revision the next number, down_revision the current HEAD) and set HEAD to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

import forager.store.tables  # noqa: F401  (puts the models in SQLModel.metadata)

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0005"  # the newest revision in versions/ (a test checks that they agree)
BASELINE = "0001"  # the schema of the last release before migrations
# one key for every store on a server: upgrades are rare and brief, so sharing it costs nothing
PG_LOCK_KEY = 0x666F72616765  # "forage"


class Refused(ValueError):
    """A store this forager must not use; the message says why and what to do."""


def upgrade(engine: Engine) -> None:
    """Bring the store to HEAD. A store already there (every open but the first after an upgrade) costs one
    query and never loads Alembic."""
    if _stored_revision(engine) == HEAD:
        return
    with _schema_lock(engine) as conn:
        _upgrade_locked(conn)


def _stored_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError:  # no such table: a new database, or a store made before migrations
            return None


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[Connection]:
    """One transaction that no other process's upgrade runs beside: a second opener waits for it, then finds
    the store upgraded. The migrations run inside it, so one that fails leaves the store as it was."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # the write lock now, not at the first write; another opener waits for it (busy_timeout)
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})  # released at commit
        yield conn
        conn.commit()


def _upgrade_locked(conn: Connection) -> None:
    # why Alembic is imported here and below, not at the top: importing it takes ~85 ms, which opening a
    # store at HEAD (every CLI command, every worker) should not pay
    from alembic import command
    from alembic.migration import MigrationContext

    revision = MigrationContext.configure(conn).get_current_revision()  # again: we may have waited for an upgrade
    if revision == HEAD:
        return
    config = _config(conn)
    if revision is None and _has_forager_tables(conn):
        _adopt(config, conn)
    elif revision is not None and revision not in _known_revisions(config):
        raise Refused(f"was made by a newer forager (schema {revision}, this one knows up to {HEAD}); upgrade forager")
    else:
        command.upgrade(config, "head")


def _adopt(config: Config, conn: Connection) -> None:
    """A store made before migrations: its tables are taken for the baseline's, then upgraded and checked."""
    from alembic import command

    # why: the commit just before migrations (e0cca1b) made stores with create_all of these same models
    if not _missing_columns(conn):
        command.stamp(config, "head")
        return
    command.stamp(config, BASELINE)
    command.upgrade(config, "head")
    missing = _missing_columns(conn)
    if missing:  # older than the baseline; raising rolls the upgrade back, leaving the store as it was
        raise Refused(f"predates migrations and is too old to upgrade ({', '.join(missing[:3])} missing); "
                      "move it aside or point at a new store")


def _config(conn: Connection) -> Config:
    """Alembic's configuration, in code: no alembic.ini, since nobody runs `alembic` by hand."""
    from alembic.config import Config

    config = Config()
    # why %%: the option goes through ConfigParser interpolation, where a lone % in a path is an error
    config.set_main_option("script_location", str(Path(__file__).parent).replace("%", "%%"))
    config.attributes["connection"] = conn  # env.py runs the migrations on it
    return config


def _known_revisions(config: Config) -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def _has_forager_tables(conn: Connection) -> bool:
    return bool(set(SQLModel.metadata.tables) & set(inspect(conn).get_table_names()))


def _missing_columns(conn: Connection) -> list[str]:
    """table.column names the models have and the database's tables lack."""
    found = inspect(conn)
    tables = set(found.get_table_names())
    missing = []
    for table in SQLModel.metadata.sorted_tables:
        have = {column["name"] for column in found.get_columns(table.name)} if table.name in tables else set()
        missing += [f"{table.name}.{column.name}" for column in table.columns if column.name not in have]
    return missing
