"""call quality from both ends: the bridge's view of each endpoint's media, shared by
every process, and its per-minute figures in health_samples

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The bridge's per-minute figures in health_samples: a sum and a count each.
BRIDGE_FIGURES = ("bridge_rtt", "bridge_jitter", "bridge_loss", "bridge_fps",
                  "bridge_bitrate_in", "bridge_bitrate_out")


def upgrade() -> None:
    op.create_table(
        "bridge_media",
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("rtt_ms", sa.Float(), nullable=True),
        sa.Column("jitter_ms", sa.Float(), nullable=True),
        sa.Column("packet_loss_ratio", sa.Float(), nullable=True),
        sa.Column("bitrate_in_bps", sa.Float(), nullable=True),
        sa.Column("bitrate_out_bps", sa.Float(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.id"]),
        sa.PrimaryKeyConstraint("endpoint_id"),
    )
    with op.batch_alter_table("bridge_media", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bridge_media_measured_at"), ["measured_at"],
                              unique=False)
    with op.batch_alter_table("health_samples", schema=None) as batch_op:
        for name in BRIDGE_FIGURES:
            batch_op.add_column(sa.Column(f"{name}_sum", sa.Float(), nullable=False,
                                          server_default="0"))
            batch_op.add_column(sa.Column(f"{name}_n", sa.Integer(), nullable=False,
                                          server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("health_samples", schema=None) as batch_op:
        for name in reversed(BRIDGE_FIGURES):
            batch_op.drop_column(f"{name}_n")
            batch_op.drop_column(f"{name}_sum")
    with op.batch_alter_table("bridge_media", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bridge_media_measured_at"))
    op.drop_table("bridge_media")
