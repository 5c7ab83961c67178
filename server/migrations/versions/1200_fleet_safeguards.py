"""fleet safeguards: what each command costs the school's budget, and the school's freeze

Revision ID: 1200_fleet_safeguards
Revises: 0600_device_channel
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "1200_fleet_safeguards"
down_revision = "0600_device_channel"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "disruption",
                sa.Enum(
                    "out_of_use",
                    "photo_wipe",
                    "factory_reset",
                    name="disruption",
                    native_enum=False,
                    length=32,
                ),
                nullable=True,
            )
        )
        batch_op.create_index(
            "ix_commands_school_disruption_created", ["school_id", "disruption", "created_at"]
        )
    op.create_table(
        "fleet_freezes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "asked",
                "frozen",
                "lifted",
                "lapsed",
                name="freezestate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("asked_by_id", sa.Integer(), nullable=True),
        sa.Column("asked_at", WHEN, nullable=False),
        sa.Column("frozen_by_id", sa.Integer(), nullable=True),
        sa.Column("frozen_at", WHEN, nullable=True),
        sa.Column("lift_asked_by_id", sa.Integer(), nullable=True),
        sa.Column("lift_asked_at", WHEN, nullable=True),
        sa.Column("lifted_by_id", sa.Integer(), nullable=True),
        sa.Column("lifted_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_fleet_freezes_school_id_schools"),
            ondelete="CASCADE",
        ),
        *(
            sa.ForeignKeyConstraint(
                [column],
                ["users.id"],
                name=op.f(f"fk_fleet_freezes_{column}_users"),
                ondelete="SET NULL",
            )
            for column in ("asked_by_id", "frozen_by_id", "lift_asked_by_id", "lifted_by_id")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fleet_freezes")),
    )
    with op.batch_alter_table("fleet_freezes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fleet_freezes_school_id"), ["school_id"])


def downgrade() -> None:
    op.drop_table("fleet_freezes")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index("ix_commands_school_disruption_created")
        batch_op.drop_column("disruption")
