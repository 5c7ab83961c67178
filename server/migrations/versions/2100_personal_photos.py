"""personal photos: the head's authorisation of photo use on staff devices, each day's
confirmation, and reports of a staff device's loss, theft or new owner (P-PHOTO-4, P-LOSS-4)

Revision ID: 2100_personal_photos
Revises: 0410_personal_devices
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2100_personal_photos"
down_revision = "0410_personal_devices"
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, server.db.UTCDateTime(timezone=True), nullable=nullable)


def _user(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete="SET NULL"
    )


def _parent(table: str, column: str, parent: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{parent}.id"], name=op.f(f"fk_{table}_{column}_{parent}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "personal_photo_authorisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("purpose", sa.String(length=500), nullable=True),
        sa.Column("granted_by_id", sa.Integer(), nullable=True),
        _when("granted_at", nullable=False),
        sa.Column("withdrawn_on", sa.Date(), nullable=True),
        _when("withdrawn_at"),
        sa.Column("withdrawn_by_id", sa.Integer(), nullable=True),
        sa.Column("withdrawn_reason", sa.String(length=500), nullable=True),
        _parent("personal_photo_authorisations", "school_id", "schools"),
        _parent("personal_photo_authorisations", "device_id", "personal_devices"),
        _user("personal_photo_authorisations", "granted_by_id"),
        _user("personal_photo_authorisations", "withdrawn_by_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_photo_authorisations")),
    )
    with op.batch_alter_table("personal_photo_authorisations") as batch:
        batch.create_index(
            batch.f("ix_personal_photo_authorisations_device_id"), ["device_id"], unique=False
        )
        batch.create_index(
            "ix_personal_photo_authorisations_school_id_ends_on",
            ["school_id", "ends_on"],
            unique=False,
        )

    op.create_table(
        "personal_photo_days",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("authorisation_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "moved_and_deleted",
                "not_used",
                "not_confirmed",
                name="photodaystate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("confirmed_by_id", sa.Integer(), nullable=True),
        _when("confirmed_at"),
        _when("owner_chased_at"),
        _when("head_chased_at"),
        _parent("personal_photo_days", "school_id", "schools"),
        _parent("personal_photo_days", "authorisation_id", "personal_photo_authorisations"),
        _parent("personal_photo_days", "device_id", "personal_devices"),
        _user("personal_photo_days", "confirmed_by_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_photo_days")),
        sa.UniqueConstraint("device_id", "day", name=op.f("uq_personal_photo_days_device_id_day")),
    )
    with op.batch_alter_table("personal_photo_days") as batch:
        batch.create_index(batch.f("ix_personal_photo_days_school_id"), ["school_id"])
        batch.create_index(batch.f("ix_personal_photo_days_authorisation_id"), ["authorisation_id"])

    op.create_table(
        "personal_device_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("lost", "stolen", "new_owner", name="reportkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("happened_on", sa.Date(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("reported_by_id", sa.Integer(), nullable=True),
        _when("reported_at", nullable=False),
        _parent("personal_device_reports", "school_id", "schools"),
        _parent("personal_device_reports", "device_id", "personal_devices"),
        _user("personal_device_reports", "reported_by_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_device_reports")),
    )
    with op.batch_alter_table("personal_device_reports") as batch:
        batch.create_index(batch.f("ix_personal_device_reports_school_id"), ["school_id"])
        batch.create_index(batch.f("ix_personal_device_reports_device_id"), ["device_id"])


def downgrade() -> None:
    op.drop_table("personal_device_reports")
    op.drop_table("personal_photo_days")
    op.drop_table("personal_photo_authorisations")
