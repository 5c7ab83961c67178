"""headteacher approves: a command only someone in one role may approve (a teacher's fourth loss
report in an hour waits for the headteacher)

Revision ID: 2120_headteacher_approves
Revises: 1200_fleet_safeguards
"""

import sqlalchemy as sa
from alembic import op

revision = "2120_headteacher_approves"
# Off the newest migration that changed `commands`.
down_revision = "1200_fleet_safeguards"
branch_labels = None
depends_on = None

ROLES = ("teacher", "computing_lead", "sbm", "headteacher", "technician", "governor", "admin")


def upgrade() -> None:
    with op.batch_alter_table("commands") as batch:
        batch.add_column(
            sa.Column(
                "approver_role",
                sa.Enum(*ROLES, name="role", native_enum=False, length=32),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("approver_role")
