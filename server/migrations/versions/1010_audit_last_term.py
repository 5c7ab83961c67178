"""audits: which devices were missing in the audit a signed-off one is compared with

Revision ID: 1010_audit_last_term
Revises: 1000_audits
"""

import sqlalchemy as sa
from alembic import op

revision = "1010_audit_last_term"
down_revision = "1000_audits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_items") as batch:
        batch.add_column(sa.Column("missing_last_term", sa.Boolean(), nullable=True))
    op.create_index(
        "ix_audit_items_audit_last_term_tag",
        "audit_items",
        ["audit_id", "missing_last_term", "asset_tag"],
    )
    # Audits signed off before this revision: mark the same rows sign-off now marks.
    op.execute(
        """
        UPDATE audit_items SET missing_last_term = true
        WHERE EXISTS (
            SELECT 1 FROM audits a JOIN audit_items p ON p.audit_id = a.previous_audit_id
            WHERE a.id = audit_items.audit_id AND a.status = 'closed'
              AND p.device_id = audit_items.device_id AND p.state = 'missing'
        )
        """
    )


def downgrade() -> None:
    op.drop_index("ix_audit_items_audit_last_term_tag", table_name="audit_items")
    with op.batch_alter_table("audit_items") as batch:
        batch.drop_column("missing_last_term")
