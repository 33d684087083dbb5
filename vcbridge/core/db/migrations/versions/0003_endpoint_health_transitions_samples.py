"""endpoint health, transitions, samples

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 11:52:28.553807
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The per-minute figures of health_samples: a sum and a count each.
SAMPLE_FIGURES = ("cpu", "net_rtt", "rtt", "jitter", "loss", "fps", "bitrate_in", "bitrate_out")


def upgrade() -> None:
    op.create_table(
        "endpoint_health",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("test_call", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
        ),
        sa.PrimaryKeyConstraint("endpoint_id"),
    )
    figures: list[sa.schema.SchemaItem] = []
    for name in SAMPLE_FIGURES:
        figures += [
            sa.Column(f"{name}_sum", sa.Float(), nullable=False),
            sa.Column(f"{name}_n", sa.Integer(), nullable=False),
        ]
    op.create_table(
        "health_samples",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeats", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.Integer(), nullable=False),
        sa.Column("in_call", sa.Integer(), nullable=False),
        *figures,
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
        ),
        sa.PrimaryKeyConstraint("endpoint_id", "minute"),
    )
    with op.batch_alter_table("health_samples", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_health_samples_minute"), ["minute"], unique=False)

    op.create_table(
        "health_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("previous", sa.String(length=20), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("health_transitions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_health_transitions_at"), ["at"], unique=False)
        batch_op.create_index(
            "ix_health_transitions_endpoint_at", ["endpoint_id", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("health_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_health_transitions_endpoint_at")
        batch_op.drop_index(batch_op.f("ix_health_transitions_at"))

    op.drop_table("health_transitions")
    with op.batch_alter_table("health_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_health_samples_minute"))

    op.drop_table("health_samples")
    op.drop_table("endpoint_health")
