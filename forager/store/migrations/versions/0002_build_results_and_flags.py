"""Images keep the tracked files their install or baseline run changed and the repository's pytest plugin
files; episodes keep what grading noticed (flags).

Server defaults make the rows already stored read as an empty dict / list, and keep an older forager's
inserts (which don't name these columns) from leaving NULLs behind.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # plain ADD COLUMN: SQLite and PostgreSQL both do it in place, without copying the table
    op.add_column("images", sa.Column("changed_tracked", sa.JSON(), nullable=True, server_default="{}"))
    op.add_column("images", sa.Column("plugin_files", sa.JSON(), nullable=True, server_default="[]"))
    op.add_column("episodes", sa.Column("flags", sa.JSON(), nullable=True, server_default="[]"))
