"""Where each step's wall time went (model, tokenize, command, store, other, total): a JSON record per step;
where an episode's prompt token ids came from (`episodes.token_source`).
On PostgreSQL, the steps' large columns are compressed with lz4 where the server has it.

Steps stored before it read as an empty record: their time was not split. Rows already stored keep their
compression (PostgreSQL reads both); new rows are compressed with lz4, which took the group-commit
writer's batches about 1.5x faster than pglz (bench/store.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

LARGE_COLUMNS = ("prompt_delta_ids", "completion_token_ids", "logprobs", "observation_messages", "observation",
                 "raw_output", "model_text", "assistant_message")


def upgrade() -> None:
    op.add_column("steps", sa.Column("timings", sa.JSON(), nullable=True, server_default="{}"))
    op.add_column("episodes", sa.Column("token_source", sa.String(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    methods = bind.execute(sa.text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")).scalar()
    if methods and "lz4" in methods:
        for column in LARGE_COLUMNS:
            op.execute(f"ALTER TABLE steps ALTER COLUMN {column} SET COMPRESSION lz4")
