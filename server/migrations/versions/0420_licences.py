"""licences: software licence records and the apps devices report (P-REG-5)

Revision ID: 0420_licences
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0420_licences"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "licences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("app_name", sa.String(length=200), nullable=False),
        sa.Column("app_id", sa.String(length=255), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("supplier", sa.String(length=120), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("cost_pence", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_licences_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licences")),
        sa.UniqueConstraint("school_id", "app_id", name=op.f("uq_licences_school_id_app_id")),
    )

    op.create_table(
        "installed_apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("first_seen", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_installed_apps_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_installed_apps_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installed_apps")),
        sa.UniqueConstraint("device_id", "app_id", name=op.f("uq_installed_apps_device_id_app_id")),
    )
    with op.batch_alter_table("installed_apps", schema=None) as batch_op:
        batch_op.create_index(
            "ix_installed_apps_school_id_app_id", ["school_id", "app_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("installed_apps", schema=None) as batch_op:
        batch_op.drop_index("ix_installed_apps_school_id_app_id")

    op.drop_table("installed_apps")
    op.drop_table("licences")
