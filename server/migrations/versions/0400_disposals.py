"""disposals: erasure evidence, disposal batches and their devices (P-DISPOSE-1)

Revision ID: 0400_disposals
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0400_disposals"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "device_erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column(
            "method",
            sa.Enum(
                "factory_reset",
                "destroyed",
                name="erasuremethod",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "source",
            sa.Enum(
                "device_acknowledgement",
                "technician_evidence",
                name="erasuresource",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("confirmed_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("evidence", sa.String(length=500), nullable=True),
        sa.Column("recorded_by_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_erasures_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["users.id"],
            name=op.f("fk_device_erasures_recorded_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_device_erasures_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_erasures")),
    )
    with op.batch_alter_table("device_erasures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_device_erasures_device_id_confirmed_at",
            ["device_id", "confirmed_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_device_erasures_school_id"), ["school_id"], unique=False
        )

    op.create_table(
        "disposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "completed",
                name="disposalstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("collection_date", sa.Date(), nullable=True),
        sa.Column("agency_name", sa.String(length=200), nullable=True),
        sa.Column("waste_transfer_note", sa.String(length=64), nullable=True),
        sa.Column("erasure_certificate", sa.String(length=64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_by_id", sa.Integer(), nullable=True),
        sa.Column("completed_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["completed_by_id"],
            ["users.id"],
            name=op.f("fk_disposals_completed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_disposals_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_disposals_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disposals")),
    )
    with op.batch_alter_table("disposals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_disposals_school_id_status", ["school_id", "status"], unique=False
        )

    op.create_table(
        "disposal_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("disposal_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column(
            "wipe_method",
            sa.Enum(
                "forensic_wipe",
                "physical_destruction",
                name="wipemethod",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("certificate_line", sa.String(length=64), nullable=True),
        sa.Column("erasure_evidence", sa.String(length=500), nullable=False),
        sa.Column("erasure_id", sa.Integer(), nullable=True),
        sa.Column("added_by_id", sa.Integer(), nullable=True),
        sa.Column("added_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["added_by_id"],
            ["users.id"],
            name=op.f("fk_disposal_items_added_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_disposal_items_device_id_devices"),
        ),
        sa.ForeignKeyConstraint(
            ["disposal_id"],
            ["disposals.id"],
            name=op.f("fk_disposal_items_disposal_id_disposals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["erasure_id"],
            ["device_erasures.id"],
            name=op.f("fk_disposal_items_erasure_id_device_erasures"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_disposal_items_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disposal_items")),
        sa.UniqueConstraint("device_id", name=op.f("uq_disposal_items_device_id")),
    )
    with op.batch_alter_table("disposal_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_disposal_items_disposal_id"), ["disposal_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_disposal_items_school_id"), ["school_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("disposal_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disposal_items_school_id"))
        batch_op.drop_index(batch_op.f("ix_disposal_items_disposal_id"))

    op.drop_table("disposal_items")
    with op.batch_alter_table("disposals", schema=None) as batch_op:
        batch_op.drop_index("ix_disposals_school_id_status")

    op.drop_table("disposals")
    with op.batch_alter_table("device_erasures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_erasures_school_id"))
        batch_op.drop_index("ix_device_erasures_device_id_confirmed_at")

    op.drop_table("device_erasures")
