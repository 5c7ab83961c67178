"""loans: lesson periods, loans and their items, scans, damage reports

Revision ID: 0700_loans
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0700_loans"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lesson_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("starts", sa.Time(), nullable=False),
        sa.Column("ends", sa.Time(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_lesson_periods_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesson_periods")),
    )
    with op.batch_alter_table("lesson_periods", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lesson_periods_school_id"), ["school_id"], unique=False
        )

    op.create_table(
        "loan_settings",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("day_ends", sa.Time(), nullable=False),
        sa.Column("updated_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_loan_settings_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_loan_settings_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("school_id", name=op.f("pk_loan_settings")),
    )

    op.create_table(
        "loans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("lesson", "home", name="loankind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("teacher_id", sa.Integer(), nullable=False),
        sa.Column("class_label", sa.String(length=64), nullable=False),
        sa.Column("trolley_id", sa.Integer(), nullable=True),
        sa.Column("started_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("due_notified_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column(
            "approval",
            sa.Enum(
                "requested",
                "approved",
                "declined",
                name="homeapproval",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("requested_tags", sa.JSON(), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.Column("overdue_notified_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_loans_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_loans_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["teacher_id"], ["users.id"], name=op.f("fk_loans_teacher_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["trolley_id"], ["locations.id"], name=op.f("fk_loans_trolley_id_locations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loans")),
    )
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.create_index("ix_loans_school_closed", ["school_id", "closed_at"], unique=False)
        batch_op.create_index("ix_loans_teacher_closed", ["teacher_id", "closed_at"], unique=False)
        batch_op.create_index("ix_loans_closed_due", ["closed_at", "due_at"], unique=False)

    op.create_table(
        "loan_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("loan_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "out", "returned", "transferred", name="itemstate", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("from_location_id", sa.Integer(), nullable=True),
        sa.Column("out_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("out_by_id", sa.Integer(), nullable=True),
        sa.Column("returned_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("returned_by_id", sa.Integer(), nullable=True),
        sa.Column("return_location_id", sa.Integer(), nullable=True),
        sa.Column("wrong_trolley", sa.Boolean(), nullable=False),
        sa.Column("condition", sa.JSON(), nullable=False),
        sa.Column("condition_note", sa.String(length=500), nullable=True),
        sa.Column("wipe_command_id", sa.Integer(), nullable=True),
        sa.Column("wipe_note", sa.String(length=200), nullable=True),
        sa.Column("wipe_unconfirmed_at_out", sa.Boolean(), nullable=False),
        sa.Column("escalated_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_loan_items_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_location_id"],
            ["locations.id"],
            name=op.f("fk_loan_items_from_location_id_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_loan_items_loan_id_loans"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["out_by_id"],
            ["users.id"],
            name=op.f("fk_loan_items_out_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["return_location_id"],
            ["locations.id"],
            name=op.f("fk_loan_items_return_location_id_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["returned_by_id"],
            ["users.id"],
            name=op.f("fk_loan_items_returned_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_loan_items_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loan_items")),
    )
    with op.batch_alter_table("loan_items", schema=None) as batch_op:
        batch_op.create_index("ix_loan_items_device_out_at", ["device_id", "out_at"], unique=False)
        batch_op.create_index("ix_loan_items_loan_id", ["loan_id"], unique=False)
        # At most one open item per device, enforced by the database itself.
        batch_op.create_index(
            "ix_loan_items_open_device",
            ["device_id"],
            unique=True,
            sqlite_where=sa.text("state = 'out'"),
            postgresql_where=sa.text("state = 'out'"),
        )
        batch_op.create_index("ix_loan_items_state_school", ["state", "school_id"], unique=False)

    op.create_table(
        "damage_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("reported_by_id", sa.Integer(), nullable=True),
        sa.Column("reported_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "open", "in_repair", "resolved", name="damagestatus", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("resolved_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_damage_reports_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["loan_items.id"],
            name=op.f("fk_damage_reports_item_id_loan_items"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reported_by_id"],
            ["users.id"],
            name=op.f("fk_damage_reports_reported_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"],
            ["users.id"],
            name=op.f("fk_damage_reports_resolved_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_damage_reports_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_damage_reports")),
    )
    with op.batch_alter_table("damage_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_damage_reports_device_id"), ["device_id"], unique=False
        )
        batch_op.create_index(
            "ix_damage_reports_school_status", ["school_id", "status"], unique=False
        )

    op.create_table(
        "loan_scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "out", "in", "transfer", "batch", name="scanaction", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("undone_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_loan_scans_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["loan_items.id"],
            name=op.f("fk_loan_scans_item_id_loan_items"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_loan_scans_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_loan_scans_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loan_scans")),
        sa.UniqueConstraint("school_id", "key", name=op.f("uq_loan_scans_school_id_key")),
    )
    with op.batch_alter_table("loan_scans", schema=None) as batch_op:
        batch_op.create_index("ix_loan_scans_user_id_at", ["user_id", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("loan_scans")
    op.drop_table("damage_reports")
    op.drop_table("loan_items")
    op.drop_table("loans")
    op.drop_table("loan_settings")
    op.drop_table("lesson_periods")
