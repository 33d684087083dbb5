"""room state: a room's floor, mutes, lock and recording, saved as they change and
restored when the room opens again (issue 15)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "room_states",
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=120), nullable=False, server_default=""),
        sa.Column("floor_holder", sa.String(length=64), nullable=True),
        sa.Column("floor_queue", sa.JSON(), nullable=False),
        sa.Column("muted", sa.JSON(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("recording", sa.Boolean(), nullable=False),
        sa.Column("recording_files", sa.JSON(), nullable=False),
        sa.Column("recording_finished", sa.Boolean(), nullable=False),
        sa.Column("sites", sa.JSON(), nullable=False),
        sa.Column("seated", sa.JSON(), nullable=False),
        sa.Column("removed", sa.JSON(), nullable=False),
        sa.Column("refused", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conference_id"], ["conferences.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conference_id"),
    )
    with op.batch_alter_table("room_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_room_states_node"), ["node"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("room_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_room_states_node"))
    op.drop_table("room_states")
