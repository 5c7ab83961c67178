"""profiles: restriction profiles, versions, groups, assignments, filter exceptions, desired state

Revision ID: 0200_profiles
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0200_profiles"
down_revision = "0001"
branch_labels = None
depends_on = None

TARGET_TYPE = sa.Enum(
    "school", "location", "group", "device", name="targettype", native_enum=False, length=32
)


def upgrade() -> None:
    op.create_table(
        "device_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_device_groups_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_groups")),
        sa.UniqueConstraint("school_id", "name", name=op.f("uq_device_groups_school_id_name")),
    )
    with op.batch_alter_table("device_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_groups_school_id"), ["school_id"], unique=False)

    op.create_table(
        "profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_profiles_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
        sa.UniqueConstraint("school_id", "slug", name=op.f("uq_profiles_school_id_slug")),
    )
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profiles_school_id"), ["school_id"], unique=False)

    op.create_table(
        "filter_exceptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=False),
        sa.Column("urls", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("class_label", sa.String(length=64), nullable=False),
        sa.Column("target_type", TARGET_TYPE, nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "approved",
                "declined",
                "expired",
                "revoked",
                name="exceptionstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("activated_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.String(length=500), nullable=True),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_filter_exceptions_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["users.id"],
            name=op.f("fk_filter_exceptions_requester_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_filter_exceptions_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_exceptions")),
    )
    with op.batch_alter_table("filter_exceptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_filter_exceptions_school_status", ["school_id", "status"], unique=False
        )

    op.create_table(
        "profile_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("target_type", TARGET_TYPE, nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_profile_assignments_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_profile_assignments_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_profile_assignments_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_assignments")),
        sa.UniqueConstraint(
            "school_id",
            "target_type",
            "target_id",
            name=op.f("uq_profile_assignments_school_id_target_type_target_id"),
        ),
    )
    with op.batch_alter_table("profile_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_profile_assignments_profile_id"), ["profile_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_profile_assignments_school_id"), ["school_id"], unique=False
        )

    op.create_table(
        "profile_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_profile_versions_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_profile_versions_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_versions")),
        sa.UniqueConstraint(
            "profile_id", "number", name=op.f("uq_profile_versions_profile_id_number")
        ),
    )
    op.create_table(
        "device_desired_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("profile_version_id", sa.Integer(), nullable=True),
        sa.Column("document", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("updated_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_sha256", sa.String(length=64), nullable=True),
        sa.Column("published_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_desired_states_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_version_id"],
            ["profile_versions.id"],
            name=op.f("fk_device_desired_states_profile_version_id_profile_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_device_desired_states_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_desired_states")),
        sa.UniqueConstraint("device_id", name=op.f("uq_device_desired_states_device_id")),
    )
    with op.batch_alter_table("device_desired_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_desired_states_school_id"), ["school_id"], unique=False
        )

    op.create_table(
        "device_group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_group_members_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["device_groups.id"],
            name=op.f("fk_device_group_members_group_id_device_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "device_id", name=op.f("pk_device_group_members")),
    )
    with op.batch_alter_table("device_group_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_group_members_device_id"), ["device_id"], unique=False
        )

    op.create_table(
        "device_profile_statuses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("applied_sha256", sa.String(length=64), nullable=True),
        sa.Column("reported_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_profile_statuses_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_device_profile_statuses_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_profile_statuses")),
        sa.UniqueConstraint("device_id", name=op.f("uq_device_profile_statuses_device_id")),
    )
    with op.batch_alter_table("device_profile_statuses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_profile_statuses_school_id"), ["school_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("device_profile_statuses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_profile_statuses_school_id"))

    op.drop_table("device_profile_statuses")
    with op.batch_alter_table("device_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_group_members_device_id"))

    op.drop_table("device_group_members")
    with op.batch_alter_table("device_desired_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_desired_states_school_id"))

    op.drop_table("device_desired_states")
    op.drop_table("profile_versions")
    with op.batch_alter_table("profile_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_assignments_school_id"))
        batch_op.drop_index(batch_op.f("ix_profile_assignments_profile_id"))

    op.drop_table("profile_assignments")
    with op.batch_alter_table("filter_exceptions", schema=None) as batch_op:
        batch_op.drop_index("ix_filter_exceptions_school_status")

    op.drop_table("filter_exceptions")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profiles_school_id"))

    op.drop_table("profiles")
    with op.batch_alter_table("device_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_groups_school_id"))

    op.drop_table("device_groups")
