"""google: a school's link to its Google domain, its Chromebooks, commands and Chrome policy

Revision ID: 1400_google
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "1400_google"
down_revision = "0001"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "google_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("command_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column(
            "phase",
            sa.Enum(
                "waiting",
                "in_flight",
                "polling",
                "finished",
                name="phase",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("google_command_id", sa.String(length=32), nullable=True),
        sa.Column("google_state", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", WHEN, nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_google_deliveries_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_google_deliveries")),
        sa.UniqueConstraint("command_id", name=op.f("uq_google_deliveries_command_id")),
    )
    op.create_index(
        "ix_google_deliveries_phase_next", "google_deliveries", ["phase", "next_at"], unique=False
    )
    op.create_table(
        "google_policy_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("profile_version_id", sa.Integer(), nullable=True),
        sa.Column("org_unit_id", sa.String(length=64), nullable=False),
        sa.Column("org_unit_path", sa.String(length=400), nullable=False),
        sa.Column("schema", sa.String(length=120), nullable=False),
        sa.Column("field", sa.String(length=120), nullable=False),
        sa.Column("desired", sa.JSON(), nullable=False),
        sa.Column("applied", sa.JSON(none_as_null=True), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "enforced",
                "failed",
                "not_supported",
                "pending",
                name="policystate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("evidence", sa.String(length=500), nullable=False),
        sa.Column("pushed_at", WHEN, nullable=True),
        sa.Column("checked_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_google_policy_settings_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_google_policy_settings")),
        sa.UniqueConstraint(
            "school_id",
            "org_unit_id",
            "schema",
            "field",
            name=op.f("uq_google_policy_settings_school_id_org_unit_id_schema_field"),
        ),
    )
    op.create_table(
        "google_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("admin_email", sa.String(length=254), nullable=False),
        sa.Column("client_email", sa.String(length=254), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("school_networks", sa.JSON(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("tested_at", WHEN, nullable=True),
        sa.Column("test_problems", sa.JSON(), nullable=False),
        sa.Column("known_schemas", sa.JSON(), nullable=False),
        sa.Column("synced_at", WHEN, nullable=True),
        sa.Column("sync_problem", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_google_links_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_google_links_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_google_links")),
        sa.UniqueConstraint("school_id", name=op.f("uq_google_links_school_id")),
    )
    op.create_table(
        "google_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("google_id", sa.String(length=128), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=120), nullable=False),
        sa.Column("os_version", sa.String(length=64), nullable=False),
        sa.Column("last_sync", WHEN, nullable=True),
        sa.Column("org_unit_path", sa.String(length=400), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=False),
        sa.Column("auto_update_expires", sa.Date(), nullable=True),
        sa.Column("networks", sa.JSON(), nullable=False),
        sa.Column("off_site", sa.Boolean(), nullable=True),
        sa.Column("recent_users", sa.Integer(), nullable=False),
        sa.Column("seen_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_google_devices_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_google_devices_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_google_devices")),
        sa.UniqueConstraint("device_id", name=op.f("uq_google_devices_device_id")),
        sa.UniqueConstraint(
            "school_id", "google_id", name=op.f("uq_google_devices_school_id_google_id")
        ),
    )
    op.create_index(
        "ix_google_devices_school_serial", "google_devices", ["school_id", "serial"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_google_devices_school_serial", table_name="google_devices")
    op.drop_table("google_devices")
    op.drop_table("google_links")
    op.drop_table("google_policy_settings")
    op.drop_index("ix_google_deliveries_phase_next", table_name="google_deliveries")
    op.drop_table("google_deliveries")
