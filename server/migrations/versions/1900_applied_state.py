"""applied state: each setting as the device reported it, and its passcode and encryption

Revision ID: 1900_applied_state
Revises: 0200_profiles
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "1900_applied_state"
down_revision = "0200_profiles"
branch_labels = None
depends_on = None

APPLIED_STATE = sa.Enum(
    "enforced",
    "not_supported",
    "failed",
    name="appliedstate",
    native_enum=False,
    length=32,
)


def upgrade() -> None:
    with op.batch_alter_table("device_desired_states", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("settings_count", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("device_profile_statuses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("settings_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("settings_at", server.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("settings_reported", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("settings_not_enforced", sa.Integer(), nullable=True))

    op.create_table(
        "device_applied_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("setting", sa.String(length=80), nullable=False),
        sa.Column("state", APPLIED_STATE, nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("profile_sha256", sa.String(length=64), nullable=False),
        sa.Column("since", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_applied_settings_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_device_applied_settings_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_applied_settings")),
        sa.UniqueConstraint(
            "device_id", "setting", name=op.f("uq_device_applied_settings_device_id_setting")
        ),
    )
    with op.batch_alter_table("device_applied_settings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_applied_settings_school_id"), ["school_id"], unique=False
        )

    op.create_table(
        "device_protections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("passcode", sa.Boolean(), nullable=True),
        sa.Column("storage_encrypted", sa.Boolean(), nullable=True),
        sa.Column("passcode_detail", sa.String(length=200), nullable=False),
        sa.Column("encryption_detail", sa.String(length=200), nullable=False),
        sa.Column("reported_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_protections_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_device_protections_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_protections")),
        sa.UniqueConstraint("device_id", name=op.f("uq_device_protections_device_id")),
    )
    with op.batch_alter_table("device_protections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_protections_school_id"), ["school_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("device_protections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_protections_school_id"))
    op.drop_table("device_protections")
    with op.batch_alter_table("device_applied_settings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_applied_settings_school_id"))
    op.drop_table("device_applied_settings")
    with op.batch_alter_table("device_profile_statuses", schema=None) as batch_op:
        batch_op.drop_column("settings_not_enforced")
        batch_op.drop_column("settings_reported")
        batch_op.drop_column("settings_at")
        batch_op.drop_column("settings_sha256")
    with op.batch_alter_table("device_desired_states", schema=None) as batch_op:
        batch_op.drop_column("settings_count")
