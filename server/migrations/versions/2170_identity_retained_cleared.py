"""identity retained cleared: when a revoked identity's retained messages left the broker

Revision ID: 2170_identity_retained_cleared
Revises: 2130_device_whereabouts
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2170_identity_retained_cleared"
# `device_identities` was last changed by 2130_device_whereabouts.
down_revision = "2130_device_whereabouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty for every identity: those revoked before the upgrade are cleared once after it.
    op.add_column(
        "device_identities",
        sa.Column("retained_cleared_at", server.db.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("device_identities", "retained_cleared_at")
