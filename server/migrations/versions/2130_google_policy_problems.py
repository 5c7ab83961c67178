"""google: why the last automatic push of profiles to Google left an org unit alone

Revision ID: 2130_google_policy_problems
Revises: 1400_google
"""

import sqlalchemy as sa
from alembic import op

revision = "2130_google_policy_problems"
down_revision = "1400_google"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("google_links") as batch:
        batch.add_column(
            sa.Column("policy_problems", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("google_links") as batch:
        batch.drop_column("policy_problems")
