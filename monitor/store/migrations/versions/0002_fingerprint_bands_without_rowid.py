"""fingerprint bands without rowid on SQLite

The near-duplicate index is looked up by (band, article id) for every article stored. As a
rowid table SQLite keeps it twice, the rows and an index of that key; WITHOUT ROWID keeps it
once, as the key's b-tree: a smaller file and fewer pages read per lookup. PostgreSQL keeps
its table (a heap and the primary-key index): nothing to do there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=True)


def _rebuild(with_rowid: bool) -> None:
    """fingerprint_bands again, its rows copied in key order, with or without rowid."""
    op.create_table(
        "fingerprint_bands_new",
        sa.Column("band", sa.BigInteger(), nullable=False),
        sa.Column("article_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name="fk_fingerprint_bands_article_id_articles",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("band", "article_id", name="pk_fingerprint_bands"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        "INSERT INTO fingerprint_bands_new (band, article_id) "
        "SELECT band, article_id FROM fingerprint_bands ORDER BY band, article_id"
    )
    op.drop_index("ix_fingerprint_bands_article_id", table_name="fingerprint_bands")
    op.drop_table("fingerprint_bands")
    op.rename_table("fingerprint_bands_new", "fingerprint_bands")
    op.create_index("ix_fingerprint_bands_article_id", "fingerprint_bands", ["article_id"])
