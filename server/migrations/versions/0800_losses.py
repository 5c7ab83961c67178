"""losses: loss reports with breach assessment and the 72-hour clock, their timeline, settings

Revision ID: 0800_losses
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0800_losses"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "loss_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("lost", "stolen", name="losskind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("reported_by_id", sa.Integer(), nullable=True),
        sa.Column("reported_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_where", sa.String(length=200), nullable=False),
        sa.Column("circumstances", sa.Text(), nullable=False),
        sa.Column("police_reference", sa.String(length=64), nullable=True),
        sa.Column("aware_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lost_mode_note", sa.String(length=300), nullable=True),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("personal_data", sa.Text(), nullable=True),
        sa.Column(
            "risk",
            sa.Enum("unlikely", "risk", "high", name="risklevel", native_enum=False, length=32),
            nullable=True,
        ),
        sa.Column("risk_notes", sa.Text(), nullable=True),
        sa.Column("assessed_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("assessed_by_id", sa.Integer(), nullable=True),
        sa.Column(
            "decision",
            sa.Enum("report", "no_report", name="decision", native_enum=False, length=32),
            nullable=True,
        ),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("decided_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("ico_reference", sa.String(length=64), nullable=True),
        sa.Column("ico_reported_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum("found", "stolen", "written_off", name="outcome", native_enum=False, length=32),
            nullable=True,
        ),
        sa.Column("outcome_reference", sa.String(length=100), nullable=True),
        sa.Column("outcome_note", sa.Text(), nullable=True),
        sa.Column("closed_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assessed_by_id"],
            ["users.id"],
            name=op.f("fk_loss_reports_assessed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["closed_by_id"],
            ["users.id"],
            name=op.f("fk_loss_reports_closed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_loss_reports_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_loss_reports_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["reported_by_id"],
            ["users.id"],
            name=op.f("fk_loss_reports_reported_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_loss_reports_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loss_reports")),
    )
    with op.batch_alter_table("loss_reports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loss_reports_device_id"), ["device_id"], unique=False)
        batch_op.create_index(
            "ix_loss_reports_school_id_closed_at", ["school_id", "closed_at"], unique=False
        )
        batch_op.create_index(
            "uq_loss_reports_open_device",
            ["device_id"],
            unique=True,
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )

    op.create_table(
        "loss_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("loss_id", sa.Integer(), nullable=False),
        sa.Column("at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.String(length=1000), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_loss_events_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["loss_id"],
            ["loss_reports.id"],
            name=op.f("fk_loss_events_loss_id_loss_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loss_events")),
    )
    with op.batch_alter_table("loss_events", schema=None) as batch_op:
        batch_op.create_index("ix_loss_events_loss_id_at", ["loss_id", "at"], unique=False)

    op.create_table(
        "loss_settings",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("dpo_email", sa.String(length=254), nullable=True),
        sa.Column("updated_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_loss_settings_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_loss_settings_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("school_id", name=op.f("pk_loss_settings")),
    )


def downgrade() -> None:

    op.drop_table("loss_settings")
    with op.batch_alter_table("loss_events", schema=None) as batch_op:
        batch_op.drop_index("ix_loss_events_loss_id_at")

    op.drop_table("loss_events")
    with op.batch_alter_table("loss_reports", schema=None) as batch_op:
        batch_op.drop_index("uq_loss_reports_open_device")
        batch_op.drop_index("ix_loss_reports_school_id_closed_at")
        batch_op.drop_index(batch_op.f("ix_loss_reports_device_id"))

    op.drop_table("loss_reports")
