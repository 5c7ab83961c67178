"""accounts: who set each account up, server-side sessions, scoped expiring tokens, role changes
a second administrator confirms, each school's security settings, serials unique per school

Tokens made before this revision keep working for 14 days and then expire: new ones are made on
the account page after a log-in with a second factor.

Revision ID: 1210_accounts
Revises: 0001
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import server.db

revision = "1210_accounts"
down_revision = "0001"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)
LEGACY_TOKEN_GRACE = timedelta(days=14)
USER_LINKS = ("created_by_id", "role_changed_by_id", "reactivated_by_id", "deactivated_by_id")
ROLES = ("teacher", "computing_lead", "sbm", "headteacher", "technician", "governor", "admin")


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


def _role() -> sa.Enum:
    return sa.Enum(*ROLES, name="role", native_enum=False, length=32)


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        for column in USER_LINKS:
            batch_op.add_column(sa.Column(column, sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("role_changed_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("reactivated_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("deactivated_at", WHEN, nullable=True))
        for column in USER_LINKS:
            batch_op.create_foreign_key(
                op.f(f"fk_users_{column}_users"), "users", [column], ["id"], ondelete="SET NULL"
            )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scope", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("expires_at", WHEN, nullable=True))
    grace = datetime.now(UTC) + LEGACY_TOKEN_GRACE
    tokens = sa.table("api_tokens", sa.column("scope", sa.String()), sa.column("expires_at", WHEN))
    op.execute(tokens.update().values(scope="read_write", expires_at=grace))
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column(
            "scope",
            existing_type=sa.String(length=32),
            type_=sa.Enum("read", "read_write", name="tokenscope", native_enum=False, length=32),
            nullable=False,
        )
        batch_op.alter_column("expires_at", existing_type=WHEN, nullable=False)

    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stage", sa.String(length=16), nullable=False, server_default="password")
        )

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint("uq_devices_serial", type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_devices_school_id_serial"), ["school_id", "serial"]
        )

    op.create_table(
        "login_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "stage",
            sa.Enum("pending", "active", name="sessionstage", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("second_factor", sa.Boolean(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("code_failures", sa.Integer(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        sa.Column("ended_at", WHEN, nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_login_sessions_key_hash")),
    )
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_login_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "role_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("from_role", _role(), nullable=False),
        sa.Column("to_role", _role(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "confirmed",
                "declined",
                name="changestatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", WHEN, nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", WHEN, nullable=True),
        _user_fk("role_changes", "decided_by_id"),
        _user_fk("role_changes", "requested_by_id"),
        _school_fk("role_changes"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_role_changes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_changes")),
    )
    with op.batch_alter_table("role_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_role_changes_school_id"), ["school_id"], unique=False)
        batch_op.create_index(
            "uq_role_changes_pending_user",
            ["user_id"],
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        "security_settings",
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("idle_minutes", sa.Integer(), nullable=False),
        sa.Column("approver_cooling_off_days", sa.Integer(), nullable=False),
        sa.Column("token_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        _school_fk("security_settings"),
        _user_fk("security_settings", "updated_by_id"),
        sa.PrimaryKeyConstraint("school_id", name=op.f("pk_security_settings")),
    )


def downgrade() -> None:
    op.drop_table("security_settings")
    op.drop_table("role_changes")
    op.drop_table("login_sessions")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_constraint("uq_devices_school_id_serial", type_="unique")
        batch_op.create_unique_constraint(op.f("uq_devices_serial"), ["serial"])
    with op.batch_alter_table("login_attempts", schema=None) as batch_op:
        batch_op.drop_column("stage")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scope")
    with op.batch_alter_table("users", schema=None) as batch_op:
        for column in USER_LINKS:
            batch_op.drop_constraint(f"fk_users_{column}_users", type_="foreignkey")
        for column in (*USER_LINKS, "role_changed_at", "reactivated_at", "deactivated_at"):
            batch_op.drop_column(column)
