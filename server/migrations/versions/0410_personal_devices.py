"""personal devices: the register of staff members' own handheld devices (P-REG-6)

Revision ID: 0410_personal_devices
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0410_personal_devices"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "personal_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("owner_name", sa.String(length=120), nullable=True),
        sa.Column("make", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=120), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("noted_on", sa.Date(), nullable=False),
        sa.Column("removed_on", sa.Date(), nullable=True),
        sa.Column("removed_reason", sa.String(length=500), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_personal_devices_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_personal_devices_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_personal_devices_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_devices")),
    )
    with op.batch_alter_table("personal_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_personal_devices_owner_id"), ["owner_id"], unique=False
        )
        batch_op.create_index(
            "ix_personal_devices_school_id_removed_on",
            ["school_id", "removed_on"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("personal_devices", schema=None) as batch_op:
        batch_op.drop_index("ix_personal_devices_school_id_removed_on")
        batch_op.drop_index(batch_op.f("ix_personal_devices_owner_id"))

    op.drop_table("personal_devices")
