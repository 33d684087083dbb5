"""bridge nodes: the registry of the processes that carry media, and where each
conference's room is placed (issue 15)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bridge_nodes",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("advertise_url", sa.String(length=300), nullable=False),
        sa.Column("capacity_ports", sa.Integer(), nullable=False),
        sa.Column("load_ports", sa.Integer(), nullable=False),
        sa.Column("rooms", sa.Integer(), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("incarnation", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bridge_nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bridge_nodes_heartbeat_at"), ["heartbeat_at"],
                              unique=False)
    op.create_table(
        "room_placements",
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=120), nullable=False),
        sa.Column("incarnation", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conference_id"], ["conferences.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conference_id"),
    )
    with op.batch_alter_table("room_placements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_room_placements_node_id"), ["node_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("room_placements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_room_placements_node_id"))
    op.drop_table("room_placements")
    with op.batch_alter_table("bridge_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bridge_nodes_heartbeat_at"))
    op.drop_table("bridge_nodes")
