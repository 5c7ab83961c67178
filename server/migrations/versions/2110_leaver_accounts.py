"""leaver accounts: when a signed-off leaver's own log-in was turned off, or why it stays

Revision ID: 2110_leaver_accounts
Revises: 1700_importer
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "2110_leaver_accounts"
# Off the newest migration that changed `leaver_cases`.
down_revision = "1700_importer"
branch_labels = None
depends_on = None

WHEN = server.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("leaver_cases") as batch:
        batch.add_column(sa.Column("account_ended_at", WHEN, nullable=True))
        batch.add_column(sa.Column("keep_account_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leaver_cases") as batch:
        batch.drop_column("keep_account_reason")
        batch.drop_column("account_ended_at")
