"""meeting documents: metadata, content in chunks, full-text search

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 09:00:00.000000

The search index is each engine's own full-text search, so it is created here
with the engine's own statements: an FTS5 virtual table on SQLite (rowid = the
document's id), a table of tsvectors with a GIN index on PostgreSQL. Both hold
the folded text (no diacritics, "đ" as "d", lower case: documents/folding.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conference_id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["conference_id"], ["conferences.id"]),
        sa.ForeignKeyConstraint(["series_id"], ["conference_series.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_documents_conference_id"), ["conference_id"])
        batch_op.create_index(batch_op.f("ix_documents_series_id"), ["series_id"])
        batch_op.create_index(batch_op.f("ix_documents_sha256"), ["sha256"])
    op.create_table(
        "document_chunks",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id", "seq"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TABLE document_search ("
            " document_id integer PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,"
            " vector tsvector NOT NULL)"
        )
        op.execute("CREATE INDEX ix_document_search_vector ON document_search USING gin (vector)")
    else:
        # Prefix indexes of 2 and 3 letters: a word being typed ("th", "gia") is a prefix
        # shared by many words, and every query word is searched as a prefix.
        op.execute(
            "CREATE VIRTUAL TABLE document_search USING fts5("
            "title, body, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')"
        )


def downgrade() -> None:
    op.execute("DROP TABLE document_search")
    op.drop_table("document_chunks")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_sha256"))
        batch_op.drop_index(batch_op.f("ix_documents_series_id"))
        batch_op.drop_index(batch_op.f("ix_documents_conference_id"))
    op.drop_table("documents")
