"""leavers: leaver cases, what is on each (devices, personal register entries), their record

Revision ID: 1100_leavers
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "1100_leavers"
down_revision = "0001"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)


def _user_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete="SET NULL"
    )


def _school_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["school_id"],
        ["schools.id"],
        name=op.f(f"fk_{table}_school_id_schools"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "leaver_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("leaver_id", sa.Integer(), nullable=True),
        sa.Column("leaver_name", sa.String(length=120), nullable=False),
        sa.Column("leaver_email", sa.String(length=254), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("line_manager_id", sa.Integer(), nullable=True),
        sa.Column("technician_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("open", "closed", name="casestatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("opened_by_id", sa.Integer(), nullable=True),
        sa.Column("opened_at", WHEN, nullable=False),
        sa.Column("ready_at", WHEN, nullable=True),
        sa.Column("closed_at", WHEN, nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.Column("close_note", sa.String(length=500), nullable=True),
        sa.Column("leaver_signed_at", WHEN, nullable=True),
        sa.Column("leaver_signed_via", sa.String(length=16), nullable=True),
        sa.Column("line_manager_signed_at", WHEN, nullable=True),
        sa.Column("technician_signed_at", WHEN, nullable=True),
        sa.Column("meeting_starts_at", WHEN, nullable=True),
        sa.Column("meeting_ends_at", WHEN, nullable=True),
        sa.Column("meeting_place", sa.String(length=200), nullable=True),
        sa.Column("meeting_sequence", sa.Integer(), nullable=False),
        sa.Column("meeting_booked_by_id", sa.Integer(), nullable=True),
        sa.Column("link_token_hash", sa.String(length=64), nullable=True),
        sa.Column("link_expires_at", WHEN, nullable=True),
        sa.Column("escalated_on", sa.Date(), nullable=True),
        _user_fk("leaver_cases", "closed_by_id"),
        _user_fk("leaver_cases", "leaver_id"),
        _user_fk("leaver_cases", "line_manager_id"),
        _user_fk("leaver_cases", "meeting_booked_by_id"),
        _user_fk("leaver_cases", "opened_by_id"),
        _school_fk("leaver_cases"),
        _user_fk("leaver_cases", "technician_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leaver_cases")),
        sa.UniqueConstraint("link_token_hash", name=op.f("uq_leaver_cases_link_token_hash")),
    )
    with op.batch_alter_table("leaver_cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_leaver_cases_school_id_status_last_day",
            ["school_id", "status", "last_day"],
            unique=False,
        )
        batch_op.create_index(
            "uq_leaver_cases_open_leaver",
            ["leaver_id"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "leaver_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("what", sa.String(length=500), nullable=False),
        _user_fk("leaver_events", "actor_id"),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["leaver_cases.id"],
            name=op.f("fk_leaver_events_case_id_leaver_cases"),
            ondelete="CASCADE",
        ),
        _school_fk("leaver_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leaver_events")),
    )
    with op.batch_alter_table("leaver_events", schema=None) as batch_op:
        batch_op.create_index("ix_leaver_events_case_id", ["case_id"], unique=False)

    op.create_table(
        "leaver_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("device", "personal_device", name="itemkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("personal_device_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("added_at", WHEN, nullable=False),
        sa.Column(
            "route",
            sa.Enum("credentials", "meeting", name="handoverroute", native_enum=False, length=32),
            nullable=True,
        ),
        sa.Column("credentials_at", WHEN, nullable=True),
        sa.Column("escrow_ids", sa.JSON(), nullable=False),
        sa.Column("returned_at", WHEN, nullable=True),
        sa.Column("returned_by_id", sa.Integer(), nullable=True),
        sa.Column("reset_command_id", sa.Integer(), nullable=True),
        sa.Column("reset_at", WHEN, nullable=True),
        sa.Column(
            "reset_source",
            sa.Enum("device", "evidence", name="resetsource", native_enum=False, length=32),
            nullable=True,
        ),
        sa.Column("reset_evidence", sa.Text(), nullable=True),
        sa.Column("reset_by_id", sa.Integer(), nullable=True),
        sa.Column("removed_at", WHEN, nullable=True),
        sa.Column("removed_by_id", sa.Integer(), nullable=True),
        sa.Column("settled_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["leaver_cases.id"],
            name=op.f("fk_leaver_items_case_id_leaver_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_leaver_items_device_id_devices"),
            ondelete="CASCADE",
        ),
        _user_fk("leaver_items", "removed_by_id"),
        _user_fk("leaver_items", "reset_by_id"),
        _user_fk("leaver_items", "returned_by_id"),
        _school_fk("leaver_items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leaver_items")),
    )
    with op.batch_alter_table("leaver_items", schema=None) as batch_op:
        batch_op.create_index("ix_leaver_items_case_id", ["case_id"], unique=False)
        batch_op.create_index(
            "ix_leaver_items_reset_command_id", ["reset_command_id"], unique=False
        )
        batch_op.create_index(
            "uq_leaver_items_open_device",
            ["device_id"],
            unique=True,
            sqlite_where=sa.text("settled_at IS NULL"),
            postgresql_where=sa.text("settled_at IS NULL"),
        )


def downgrade() -> None:
    op.drop_table("leaver_items")
    op.drop_table("leaver_events")
    op.drop_table("leaver_cases")
