"""ipads: each school's credentials for Apple's push service, and the last push per enrolment

Revision ID: 2110_ipad_push
Revises: 2100_ipads
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2110_ipad_push"
down_revision = "2100_ipads"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ipad_push_credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column(
            "auth",
            sa.Enum("certificate", "token", name="pushauth", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=True),
        sa.Column("not_after", WHEN, nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("team_id", sa.String(length=16), nullable=True),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_ipad_push_credentials_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"],
            ["users.id"],
            name=op.f("fk_ipad_push_credentials_uploaded_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ipad_push_credentials")),
        sa.UniqueConstraint("school_id", name=op.f("uq_ipad_push_credentials_school_id")),
    )
    with op.batch_alter_table("ipad_enrolments") as batch:
        batch.add_column(sa.Column("pushed_at", WHEN, nullable=True))
        batch.add_column(sa.Column("push_result", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("push_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("push_retry_at", WHEN, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ipad_enrolments") as batch:
        batch.drop_column("push_retry_at")
        batch.drop_column("push_failures")
        batch.drop_column("push_result")
        batch.drop_column("pushed_at")
    op.drop_table("ipad_push_credentials")
