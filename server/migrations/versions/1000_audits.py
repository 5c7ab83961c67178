"""audits: termly audits with their items and unknown tags, reminders, photo checks, spot checks

Revision ID: 1000_audits
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "1000_audits"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sent_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_audit_reminders_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["term_id"],
            ["terms.id"],
            name=op.f("fk_audit_reminders_term_id_terms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_reminders")),
        sa.UniqueConstraint(
            "school_id", "term_id", "kind", name=op.f("uq_audit_reminders_school_id_term_id_kind")
        ),
    )
    op.create_table(
        "audits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("whole_school", sa.Boolean(), nullable=False),
        sa.Column("scope_location_ids", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "closed", name="auditstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("expected_count", sa.Integer(), nullable=False),
        sa.Column("started_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_by_id", sa.Integer(), nullable=True),
        sa.Column("closed_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.Column("sign_off_note", sa.String(length=1000), nullable=True),
        sa.Column("countersigned_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("countersigned_by_id", sa.Integer(), nullable=True),
        sa.Column("countersign_note", sa.String(length=1000), nullable=True),
        sa.Column("follow_ups_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("follow_ups_by_id", sa.Integer(), nullable=True),
        sa.Column("previous_audit_id", sa.Integer(), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["closed_by_id"],
            ["users.id"],
            name=op.f("fk_audits_closed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["countersigned_by_id"],
            ["users.id"],
            name=op.f("fk_audits_countersigned_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["follow_ups_by_id"],
            ["users.id"],
            name=op.f("fk_audits_follow_ups_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["previous_audit_id"], ["audits.id"], name=op.f("fk_audits_previous_audit_id_audits")
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_audits_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["started_by_id"],
            ["users.id"],
            name=op.f("fk_audits_started_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["term_id"], ["terms.id"], name=op.f("fk_audits_term_id_terms")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audits")),
    )
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.create_index("ix_audits_school_term", ["school_id", "term_id"], unique=False)
        batch_op.create_index(
            "uq_audits_open_school",
            ["school_id"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "photo_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("half", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "complete", name="photocheckstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("started_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_by_id", sa.Integer(), nullable=True),
        sa.Column("devices_total", sa.Integer(), nullable=False),
        sa.Column("never_reported", sa.Integer(), nullable=False),
        sa.Column("holding_before", sa.Integer(), nullable=False),
        sa.Column("photos_before", sa.Integer(), nullable=False),
        sa.Column("wipe_requested_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("wipe_requested_by_id", sa.Integer(), nullable=True),
        sa.Column("completed_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_by_id", sa.Integer(), nullable=True),
        sa.Column("cleared", sa.Integer(), nullable=True),
        sa.Column("still_holding", sa.Integer(), nullable=True),
        sa.Column("unconfirmed", sa.Integer(), nullable=True),
        sa.Column("photos_after", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["completed_by_id"],
            ["users.id"],
            name=op.f("fk_photo_checks_completed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_photo_checks_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["started_by_id"],
            ["users.id"],
            name=op.f("fk_photo_checks_started_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["term_id"], ["terms.id"], name=op.f("fk_photo_checks_term_id_terms")
        ),
        sa.ForeignKeyConstraint(
            ["wipe_requested_by_id"],
            ["users.id"],
            name=op.f("fk_photo_checks_wipe_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo_checks")),
    )
    with op.batch_alter_table("photo_checks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_photo_checks_school_term", ["school_id", "term_id", "half"], unique=False
        )
        batch_op.create_index(
            "uq_photo_checks_open_school",
            ["school_id"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )

    op.create_table(
        "spot_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("population_size", sa.Integer(), nullable=False),
        sa.Column("population", sa.JSON(), nullable=False),
        sa.Column("population_sha256", sa.String(length=64), nullable=False),
        sa.Column("drawn_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("drawn_by_id", sa.Integer(), nullable=True),
        sa.Column("completed_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["drawn_by_id"],
            ["users.id"],
            name=op.f("fk_spot_checks_drawn_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_spot_checks_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spot_checks")),
    )
    with op.batch_alter_table("spot_checks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_spot_checks_school_drawn", ["school_id", "drawn_at"], unique=False
        )

    op.create_table(
        "audit_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("asset_tag", sa.String(length=32), nullable=False),
        sa.Column("expected", sa.Boolean(), nullable=False),
        sa.Column("expected_location_id", sa.Integer(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "missing",
                "verified",
                "misplaced",
                "found",
                name="auditstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("scanned_location_id", sa.Integer(), nullable=True),
        sa.Column("first_scanned_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("scanned_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("scanned_by_id", sa.Integer(), nullable=True),
        sa.Column("scan_count", sa.Integer(), nullable=False),
        sa.Column("case_on", sa.Boolean(), nullable=True),
        sa.Column("screen_intact", sa.Boolean(), nullable=True),
        sa.Column("charger", sa.Boolean(), nullable=True),
        sa.Column("label_readable", sa.Boolean(), nullable=True),
        sa.Column("powers_on", sa.Boolean(), nullable=True),
        sa.Column("damaged", sa.Boolean(), nullable=False),
        sa.Column("condition_note", sa.String(length=500), nullable=True),
        sa.Column("condition_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("condition_by_id", sa.Integer(), nullable=True),
        sa.Column("holder_id", sa.Integer(), nullable=True),
        sa.Column("last_seen_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("photo_count", sa.Integer(), nullable=True),
        sa.Column("photo_count_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_scan_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_scan_note", sa.String(length=500), nullable=True),
        sa.Column("silent", sa.Boolean(), nullable=True),
        sa.Column("holding_photos", sa.Boolean(), nullable=True),
        sa.Column("loss_report_id", sa.Integer(), nullable=True),
        sa.Column("repair_raised_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["audit_id"],
            ["audits.id"],
            name=op.f("fk_audit_items_audit_id_audits"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["condition_by_id"],
            ["users.id"],
            name=op.f("fk_audit_items_condition_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_audit_items_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["expected_location_id"],
            ["locations.id"],
            name=op.f("fk_audit_items_expected_location_id_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["holder_id"],
            ["users.id"],
            name=op.f("fk_audit_items_holder_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["scanned_by_id"],
            ["users.id"],
            name=op.f("fk_audit_items_scanned_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["scanned_location_id"],
            ["locations.id"],
            name=op.f("fk_audit_items_scanned_location_id_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_audit_items_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_items")),
        sa.UniqueConstraint(
            "audit_id", "device_id", name=op.f("uq_audit_items_audit_id_device_id")
        ),
    )
    with op.batch_alter_table("audit_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_items_audit_damaged_tag", ["audit_id", "damaged", "asset_tag"], unique=False
        )
        batch_op.create_index(
            "ix_audit_items_audit_photos_tag",
            ["audit_id", "holding_photos", "asset_tag"],
            unique=False,
        )
        batch_op.create_index(
            "ix_audit_items_audit_place", ["audit_id", "expected_location_id"], unique=False
        )
        batch_op.create_index(
            "ix_audit_items_audit_silent_tag", ["audit_id", "silent", "asset_tag"], unique=False
        )
        batch_op.create_index(
            "ix_audit_items_audit_state_tag", ["audit_id", "state", "asset_tag"], unique=False
        )
        batch_op.create_index("ix_audit_items_device", ["device_id"], unique=False)

    op.create_table(
        "audit_unknown_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=32), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("first_scanned_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("scanned_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("scanned_by_id", sa.Integer(), nullable=True),
        sa.Column("scan_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_id"],
            ["audits.id"],
            name=op.f("fk_audit_unknown_tags_audit_id_audits"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_audit_unknown_tags_location_id_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["scanned_by_id"],
            ["users.id"],
            name=op.f("fk_audit_unknown_tags_scanned_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_audit_unknown_tags_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_unknown_tags")),
        sa.UniqueConstraint("audit_id", "tag", name=op.f("uq_audit_unknown_tags_audit_id_tag")),
    )
    op.create_table(
        "photo_check_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("photos_before", sa.Integer(), nullable=False),
        sa.Column("reported_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("enrolled", sa.Boolean(), nullable=False),
        sa.Column("command_id", sa.Integer(), nullable=True),
        sa.Column("photos_after", sa.Integer(), nullable=True),
        sa.Column("after_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("by_hand_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["by_hand_by_id"],
            ["users.id"],
            name=op.f("fk_photo_check_items_by_hand_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["check_id"],
            ["photo_checks.id"],
            name=op.f("fk_photo_check_items_check_id_photo_checks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_photo_check_items_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_photo_check_items_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo_check_items")),
        sa.UniqueConstraint(
            "check_id", "device_id", name=op.f("uq_photo_check_items_check_id_device_id")
        ),
    )
    op.create_table(
        "spot_check_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("spot_check_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("photos_found", sa.Boolean(), nullable=True),
        sa.Column("other_personal_data", sa.Boolean(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("checked_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("checked_by_id", sa.Integer(), nullable=True),
        sa.Column("notified_user_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["checked_by_id"],
            ["users.id"],
            name=op.f("fk_spot_check_items_checked_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_spot_check_items_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["notified_user_id"],
            ["users.id"],
            name=op.f("fk_spot_check_items_notified_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_spot_check_items_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["spot_check_id"],
            ["spot_checks.id"],
            name=op.f("fk_spot_check_items_spot_check_id_spot_checks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spot_check_items")),
        sa.UniqueConstraint(
            "spot_check_id", "device_id", name=op.f("uq_spot_check_items_spot_check_id_device_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("spot_check_items")
    op.drop_table("photo_check_items")
    op.drop_table("audit_unknown_tags")
    with op.batch_alter_table("audit_items", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_items_device")
        batch_op.drop_index("ix_audit_items_audit_state_tag")
        batch_op.drop_index("ix_audit_items_audit_silent_tag")
        batch_op.drop_index("ix_audit_items_audit_place")
        batch_op.drop_index("ix_audit_items_audit_photos_tag")
        batch_op.drop_index("ix_audit_items_audit_damaged_tag")

    op.drop_table("audit_items")
    with op.batch_alter_table("spot_checks", schema=None) as batch_op:
        batch_op.drop_index("ix_spot_checks_school_drawn")

    op.drop_table("spot_checks")
    with op.batch_alter_table("photo_checks", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_photo_checks_open_school",
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index("ix_photo_checks_school_term")

    op.drop_table("photo_checks")
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_audits_open_school",
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index("ix_audits_school_term")

    op.drop_table("audits")
    op.drop_table("audit_reminders")
