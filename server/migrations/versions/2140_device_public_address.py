"""device public address: its own fact with its own time, apart from the Wi-Fi any report names

Revision ID: 2140_device_public_address
Revises: 2100_whereabouts
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2140_device_public_address"
# Off the latest migration of `device_networks`, the table this adds columns to.
down_revision = "2100_whereabouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_networks") as batch:
        batch.add_column(
            sa.Column("public_address_at", server.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("network_since", server.db.UTCDateTime(timezone=True), nullable=True)
        )
    # What is known of the rows so far: both facts were last written by the latest report.
    op.execute(
        "UPDATE device_networks SET network_since = reported_at, public_address_at = "
        "CASE WHEN public_address IS NULL THEN NULL ELSE reported_at END"
    )
    with op.batch_alter_table("device_networks") as batch:
        batch.alter_column(
            "network_since", existing_type=server.db.UTCDateTime(timezone=True), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("device_networks") as batch:
        batch.drop_column("network_since")
        batch.drop_column("public_address_at")
