"""Task integrity records (determinism, audit, contamination), the version of a task's test lists, and the
leak audit of an image.

Server defaults make the rows already stored read as an empty record and version 1 (their lists as validated).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("integrity", sa.JSON(), nullable=True, server_default="{}"))
    op.add_column("tasks", sa.Column("tests_version", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("images", sa.Column("audit", sa.JSON(), nullable=True, server_default="{}"))
