"""loans: how long loan history is kept (P-SEC-3)

Revision ID: 0710_loan_history
Revises: 0700_loans
"""

import sqlalchemy as sa
from alembic import op

revision = "0710_loan_history"
down_revision = "0700_loans"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("loan_settings") as batch:
        batch.add_column(sa.Column("history_months", sa.Integer(), nullable=True))
    op.create_index("ix_loan_scans_school_at", "loan_scans", ["school_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_loan_scans_school_at", table_name="loan_scans")
    with op.batch_alter_table("loan_settings") as batch:
        batch.drop_column("history_months")
