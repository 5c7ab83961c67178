"""passkeys: WebAuthn credentials as a second factor, a session's fresh second-factor check
(step-up) and its one open passkey challenge, and the window in which an account may set up its
second factor after an administrator set its password

Accounts that must have a second factor and have none get 14 days to set one up at a log-in;
after that an administrator resets their password to open a new window.

Revision ID: 2100_passkeys
Revises: 1210_accounts
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2100_passkeys"
# Off the migration that creates `login_sessions`, which this adds columns to.
down_revision = "1210_accounts"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)
SETUP_GRACE = timedelta(days=14)


def upgrade() -> None:
    op.create_table(
        "passkeys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(length=1024), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=2048), nullable=False),
        sa.Column("sign_count", sa.Integer(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("last_used_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_passkeys_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkeys_credential_id")),
    )
    with op.batch_alter_table("passkeys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_passkeys_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("passkey_challenge", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("challenge_purpose", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("stepped_up_at", WHEN, nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("second_factor_setup_until", WHEN, nullable=True))
    users = sa.table(
        "users",
        sa.column("totp_secret_sealed", sa.String()),
        sa.column("second_factor_setup_until", WHEN),
    )
    op.execute(
        users.update()
        .where(users.c.totp_secret_sealed.is_(None))
        .values(second_factor_setup_until=datetime.now(UTC) + SETUP_GRACE)
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("second_factor_setup_until")
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.drop_column("stepped_up_at")
        batch_op.drop_column("challenge_purpose")
        batch_op.drop_column("passkey_challenge")
    op.drop_table("passkeys")
