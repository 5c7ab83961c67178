"""device whereabouts: the last HTTPS check-in a device's identity made, so none is replayed

Revision ID: 2130_device_whereabouts
Revises: 1300_presence
"""

import sqlalchemy as sa
from alembic import op

revision = "2130_device_whereabouts"
# Off the latest migration of `device_identities`, the table this adds a column to.
down_revision = "1300_presence"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_identities") as batch:
        batch.add_column(sa.Column("whereabouts_iat", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("device_identities") as batch:
        batch.drop_column("whereabouts_iat")
