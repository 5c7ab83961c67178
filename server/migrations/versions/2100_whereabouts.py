"""whereabouts: the school's networks by site, and the network each device last reported

Revision ID: 2100_whereabouts
Revises: 0500_register
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2100_whereabouts"
down_revision = "0500_register"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "school_networks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("ssid", sa.String(length=32), nullable=True),
        sa.Column("public_range", sa.String(length=49), nullable=True),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["site_id"], ["locations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_school_networks_school_id", "school_networks", ["school_id"])
    op.create_table(
        "device_networks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("ssid", sa.String(length=32), nullable=True),
        sa.Column("gateway", sa.String(length=45), nullable=True),
        sa.Column("public_address", sa.String(length=45), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("off_site", sa.Boolean(), nullable=True),
        sa.Column("off_site_since", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reported_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id"),
    )
    op.create_index("ix_device_networks_school_id", "device_networks", ["school_id"])


def downgrade() -> None:
    op.drop_index("ix_device_networks_school_id", table_name="device_networks")
    op.drop_table("device_networks")
    op.drop_index("ix_school_networks_school_id", table_name="school_networks")
    op.drop_table("school_networks")
