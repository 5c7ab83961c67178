"""escrow: sealed device credentials

Revision ID: 0900_escrow
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0900_escrow"
down_revision = "0001"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "credential_escrow",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "pin",
                "passcode",
                "apple_id",
                "google_account",
                "other",
                name="secretkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("label", sa.String(length=120), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.Column("deposited_by_id", sa.Integer(), nullable=True),
        sa.Column("deposited_at", WHEN, nullable=False),
        sa.Column("last_read_at", WHEN, nullable=True),
        sa.Column("destroyed_at", WHEN, nullable=True),
        sa.Column("destroyed_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["deposited_by_id"],
            ["users.id"],
            name=op.f("fk_credential_escrow_deposited_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_credential_escrow_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_credential_escrow_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_escrow")),
    )
    with op.batch_alter_table("credential_escrow", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credential_escrow_school_id"), ["school_id"])
        batch_op.create_index("ix_credential_escrow_device_live", ["device_id", "destroyed_at"])


def downgrade() -> None:
    op.drop_table("credential_escrow")
