"""outbox queued: the commands waiting to be published, in their own small index

Revision ID: 2140_outbox_queued
Revises: 2120_headteacher_approves
"""

import sqlalchemy as sa
from alembic import op

revision = "2140_outbox_queued"
# Off the newest migration that changed `commands`.
down_revision = "2120_headteacher_approves"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_commands_queued",
        "commands",
        ["id"],
        sqlite_where=sa.text("status = 'queued'"),
        postgresql_where=sa.text("status = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index("ix_commands_queued", table_name="commands")
