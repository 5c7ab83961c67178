"""importer: a chosen heading row and re-tags kept with an upload; a leaver meeting's own UID

Revision ID: 1700_importer
Revises: 0300_imports, 1100_leavers
"""

import sqlalchemy as sa
from alembic import op

revision = "1700_importer"
# It changes a table of each of those two branches, so it follows both.
down_revision = ("0300_imports", "1100_leavers")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_uploads") as batch:
        batch.add_column(sa.Column("header_row", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retag", sa.JSON(), nullable=True))
    with op.batch_alter_table("leaver_cases") as batch:
        batch.add_column(sa.Column("meeting_uid", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leaver_cases") as batch:
        batch.drop_column("meeting_uid")
    with op.batch_alter_table("import_uploads") as batch:
        batch.drop_column("retag")
        batch.drop_column("header_row")
