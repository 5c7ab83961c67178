"""commands waiting: an index for what waits for approval in a school, oldest first

Revision ID: 2100_commands_waiting
Revises: 1200_fleet_safeguards
"""

from alembic import op

revision = "2100_commands_waiting"
down_revision = "1200_fleet_safeguards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every home page and the nav ask what waits for approval in the school: without it, a
    # school with 100,000 commands scans them all on each page.
    op.create_index(
        "ix_commands_school_status_created", "commands", ["school_id", "status", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_commands_school_status_created", table_name="commands")
