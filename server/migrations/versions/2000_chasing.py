"""chasing: photo checks ask every device, wipes stay outstanding until confirmed, possible losses

Revision ID: 2000_chasing
Revises: 0710_loan_history, 1010_audit_last_term, 0800_losses, 0600_device_channel
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2000_chasing"
# The tables this changes belong to the loans, audits and losses branches (and it reads the
# commands table), so it comes after each of them.
down_revision = ("0710_loan_history", "1010_audit_last_term", "0800_losses", "0600_device_channel")
branch_labels = None
depends_on = None


def _when(name: str) -> sa.Column:
    return sa.Column(name, server.db.UTCDateTime(timezone=True), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("loan_settings") as batch:
        batch.add_column(
            sa.Column("wipe_at_lesson_end", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("loan_items") as batch:
        batch.add_column(
            sa.Column("wipe_outstanding", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(_when("wipe_chased_at"))
        batch.add_column(_when("wipe_resolved_at"))
        batch.add_column(sa.Column("wipe_resolved_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("wipe_resolution", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("wipe_photos_left", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("lesson_wipe_command_id", sa.Integer(), nullable=True))
        batch.add_column(_when("lesson_wipe_at"))
        batch.add_column(_when("loss_offered_at"))
        batch.create_foreign_key(
            op.f("fk_loan_items_wipe_resolved_by_id_users"),
            "users",
            ["wipe_resolved_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(
            "ix_loan_items_wipe_outstanding",
            ["school_id"],
            sqlite_where=sa.text("wipe_outstanding = 1"),
            postgresql_where=sa.text("wipe_outstanding"),
        )
    # Returns whose wipe was never confirmed are outstanding from now on: they were before, too,
    # only nobody was told. The chasing job settles those a later wipe or report resolved.
    op.execute(
        """
        UPDATE loan_items SET wipe_outstanding = true
        WHERE state = 'returned' AND (
            wipe_note IS NOT NULL
            OR wipe_command_id IN (SELECT id FROM commands WHERE status <> 'done')
        )
        """
    )

    with op.batch_alter_table("photo_checks") as batch:
        batch.add_column(sa.Column("asked", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("checked_by_hand", sa.Integer(), nullable=True))
    with op.batch_alter_table("photo_check_items") as batch:
        batch.alter_column("photos_before", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("inventory_command_id", sa.Integer(), nullable=True))
        batch.add_column(_when("hand_at"))
        batch.add_column(sa.Column("hand_photos", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("hand_note", sa.String(length=500), nullable=True))
        batch.add_column(_when("reminded_at"))
    # Until now a person's record of wiping by hand was stored as the device's answer.
    op.execute(
        """
        UPDATE photo_check_items
        SET hand_at = after_at, hand_photos = photos_after, photos_after = NULL, after_at = NULL
        WHERE by_hand_by_id IS NOT NULL
        """
    )

    op.create_table(
        "possible_losses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column(
            "source",
            sa.Enum("not_back", "audit", name="possiblelosssource", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("raised_at", server.db.UTCDateTime(timezone=True), nullable=False),
        _when("last_seen_at"),
        sa.Column("last_seen_where", sa.String(length=200), nullable=False),
        sa.Column("circumstances", sa.Text(), nullable=False),
        _when("resolved_at"),
        sa.Column(
            "resolution",
            sa.Enum(
                "reported",
                "found",
                "dismissed",
                name="possiblelossoutcome",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("loss_report_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_possible_losses_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_possible_losses_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"],
            ["users.id"],
            name=op.f("fk_possible_losses_resolved_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["loss_report_id"],
            ["loss_reports.id"],
            name=op.f("fk_possible_losses_loss_report_id_loss_reports"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_possible_losses")),
    )
    with op.batch_alter_table("possible_losses") as batch:
        batch.create_index(
            "ix_possible_losses_school_id_resolved_at", ["school_id", "resolved_at"], unique=False
        )
        batch.create_index(
            "uq_possible_losses_open_device",
            ["device_id"],
            unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"),
            postgresql_where=sa.text("resolved_at IS NULL"),
        )


def downgrade() -> None:
    op.drop_table("possible_losses")
    op.execute(
        """
        UPDATE photo_check_items
        SET photos_after = hand_photos, after_at = hand_at
        WHERE by_hand_by_id IS NOT NULL AND hand_at IS NOT NULL
        """
    )
    with op.batch_alter_table("photo_check_items") as batch:
        for name in ("reminded_at", "hand_note", "hand_photos", "hand_at", "inventory_command_id"):
            batch.drop_column(name)
    with op.batch_alter_table("photo_checks") as batch:
        batch.drop_column("checked_by_hand")
        batch.drop_column("asked")
    with op.batch_alter_table("loan_items") as batch:
        batch.drop_index("ix_loan_items_wipe_outstanding")
        batch.drop_constraint(op.f("fk_loan_items_wipe_resolved_by_id_users"), type_="foreignkey")
        for name in (
            "loss_offered_at",
            "lesson_wipe_at",
            "lesson_wipe_command_id",
            "wipe_photos_left",
            "wipe_resolution",
            "wipe_resolved_by_id",
            "wipe_resolved_at",
            "wipe_chased_at",
            "wipe_outstanding",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("loan_settings") as batch:
        batch.drop_column("wipe_at_lesson_end")
