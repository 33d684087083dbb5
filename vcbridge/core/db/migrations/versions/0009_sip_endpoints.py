"""SIP room systems in the roster: an endpoint's SIP URI, transport, SRTP and proxy

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("sip_uri", 300), ("sip_transport", 8), ("sip_srtp", 16), ("sip_proxy", 300))


def upgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        for name, length in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=False,
                                          server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
