"""Python execution traces: the tests traced (what a rerun skips) and their function-level traces."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "traced_tests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("test_id", sa.Text(), nullable=False),
        sa.Column("tracer_version", sa.String(), nullable=False),
        sa.Column("python_version", sa.String(), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("test_status", sa.String(), nullable=True),
        sa.Column("raw_events", sa.Integer(), nullable=False),
        sa.Column("line_events", sa.Integer(), nullable=False),
        sa.Column("traces", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.JSON(), nullable=True),
        sa.Column("deterministic", sa.Boolean(), nullable=True),
        sa.Column("bug_line_seen", sa.Boolean(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("image_id", "subject", "test_id", "tracer_version", name="uq_traced_test"),
    )
    op.create_index("ix_traced_tests_image_id", "traced_tests", ["image_id"])
    op.create_index("ix_traced_tests_task_id", "traced_tests", ["task_id"])
    op.create_index("ix_traced_tests_status", "traced_tests", ["status"])
    op.create_table(
        "traces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("traced_test_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("variant", sa.String(), nullable=False),
        sa.Column("test_id", sa.Text(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("qualname", sa.String(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("line_events", sa.Integer(), nullable=False),
        sa.Column("events_count", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("events", sa.JSON(), nullable=True),
        sa.Column("return_value", sa.Text(), nullable=True),
        sa.Column("raised", sa.Text(), nullable=True),
        sa.Column("return_checked", sa.Boolean(), nullable=True),
        sa.Column("deterministic", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["traced_test_id"], ["traced_tests.id"]),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"]),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_traces_traced_test_id", "traces", ["traced_test_id"])
    op.create_index("ix_traces_image_id", "traces", ["image_id"])
    op.create_index("ix_traces_task_id", "traces", ["task_id"])
    op.create_index("ix_traces_sha256", "traces", ["sha256"])
