"""ipads: enrolments through Apple's MDM protocol and the commands carried to them

Revision ID: 2100_ipads
Revises: 1200_fleet_safeguards
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2100_ipads"
down_revision = "1200_fleet_safeguards"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ipad_enrolments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column(
            "stage",
            sa.Enum(
                "downloaded",
                "authenticated",
                "enrolled",
                "checked_out",
                "replaced",
                name="stage",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("udid", sa.String(length=64), nullable=True),
        sa.Column("push_token", sa.String(length=512), nullable=True),
        sa.Column("push_magic", sa.String(length=128), nullable=True),
        sa.Column("supervised", sa.Boolean(), nullable=True),
        sa.Column("shared_ipad", sa.Boolean(), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("facts_at", WHEN, nullable=True),
        sa.Column("apps_count", sa.Integer(), nullable=True),
        sa.Column("apps_at", WHEN, nullable=True),
        sa.Column("profile_sha256", sa.String(length=64), nullable=True),
        sa.Column("profile_identifier", sa.String(length=255), nullable=True),
        sa.Column("profile_step", sa.String(length=32), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("enrolled_at", WHEN, nullable=True),
        sa.Column("last_seen_at", WHEN, nullable=True),
        sa.Column("checked_out_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_ipad_enrolments_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_ipad_enrolments_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ipad_enrolments")),
        sa.UniqueConstraint(
            "certificate_sha256", name=op.f("uq_ipad_enrolments_certificate_sha256")
        ),
    )
    op.create_index(
        "ix_ipad_enrolments_device_stage", "ipad_enrolments", ["device_id", "stage"], unique=False
    )
    op.create_index(
        op.f("ix_ipad_enrolments_school_id"), "ipad_enrolments", ["school_id"], unique=False
    )
    op.create_index(op.f("ix_ipad_enrolments_udid"), "ipad_enrolments", ["udid"], unique=False)
    op.create_table(
        "ipad_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("command_id", sa.Integer(), nullable=False),
        sa.Column("enrolment_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("not_now", sa.Integer(), nullable=False),
        sa.Column("offered_at", WHEN, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["command_id"],
            ["commands.id"],
            name=op.f("fk_ipad_deliveries_command_id_commands"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["enrolment_id"],
            ["ipad_enrolments.id"],
            name=op.f("fk_ipad_deliveries_enrolment_id_ipad_enrolments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_ipad_deliveries_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ipad_deliveries")),
        sa.UniqueConstraint("command_id", name=op.f("uq_ipad_deliveries_command_id")),
    )
    op.create_index(
        op.f("ix_ipad_deliveries_enrolment_id"), "ipad_deliveries", ["enrolment_id"], unique=False
    )
    op.create_index(
        op.f("ix_ipad_deliveries_school_id"), "ipad_deliveries", ["school_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("ipad_deliveries")
    op.drop_table("ipad_enrolments")
