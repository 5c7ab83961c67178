"""device erased at: when its storage was last erased, so older reports read "not known"

Revision ID: 2160_device_erased_at
Revises: 2110_register_search, 0400_disposals
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2160_device_erased_at"
# `devices` was last changed by 2110_register_search; the erasures it reads come from 0400.
down_revision = ("2110_register_search", "0400_disposals")
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: rebuilding `devices` on SQLite would drop the search triggers.
    op.add_column(
        "devices", sa.Column("erased_at", server.db.UTCDateTime(timezone=True), nullable=True)
    )
    # Every erasure recorded so far, whoever vouched for it.
    op.execute(
        "UPDATE devices SET erased_at = (SELECT max(confirmed_at) FROM device_erasures "
        "WHERE device_erasures.device_id = devices.id)"
    )


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place, keeping the search triggers too.
    op.drop_column("devices", "erased_at")
