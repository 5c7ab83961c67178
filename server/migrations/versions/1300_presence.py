"""presence: when the broker last reported a device gone (its will, sent on a lost connection)

Revision ID: 1300_presence
Revises: 0600_device_channel
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "1300_presence"
# Off the migration that creates `device_identities`, the table this adds a column to.
down_revision = "0600_device_channel"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("device_identities") as batch:
        batch.add_column(sa.Column("offline_since", WHEN, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("device_identities") as batch:
        batch.drop_column("offline_since")
