"""desired unpublished: the desired states the worker has still to publish, in their own index

Revision ID: 2150_desired_unpublished
Revises: 1900_applied_state
"""

import sqlalchemy as sa
from alembic import op

revision = "2150_desired_unpublished"
# Off the newest migration that changed `device_desired_states`.
down_revision = "1900_applied_state"
branch_labels = None
depends_on = None

UNPUBLISHED = "published_sha256 IS NULL OR published_sha256 <> sha256"


def upgrade() -> None:
    op.create_index(
        "ix_device_desired_states_unpublished",
        "device_desired_states",
        ["id"],
        sqlite_where=sa.text(UNPUBLISHED),
        postgresql_where=sa.text(UNPUBLISHED),
    )


def downgrade() -> None:
    op.drop_index("ix_device_desired_states_unpublished", table_name="device_desired_states")
