"""register: indexes that keep search, filters and sorting fast at 100,000 devices

Each filter or sort key is followed by the asset tag, so a page is read from the index in order;
the status index also carries the columns a text search reads. They replace the two-column
indexes of the foundation, which are their prefixes.

Revision ID: 0500_register
Revises: 0002
"""

from alembic import op

revision = "0500_register"
down_revision = "0002"
branch_labels = None
depends_on = None

NEW = {
    "ix_devices_school_status_search": [
        "school_id",
        "status",
        "asset_tag",
        "serial",
        "model",
        "holder_id",
    ],
    "ix_devices_school_home_tag": ["school_id", "home_location_id", "asset_tag"],
    "ix_devices_school_current_tag": ["school_id", "current_location_id", "asset_tag"],
    "ix_devices_school_warranty_tag": ["school_id", "warranty_until", "asset_tag", "status"],
    "ix_devices_school_model_tag": ["school_id", "model", "asset_tag"],
    "ix_devices_school_last_seen_tag": ["school_id", "last_seen_at", "asset_tag"],
    "ix_devices_school_purchased_tag": ["school_id", "purchase_date", "asset_tag"],
}
OLD = {
    "ix_devices_school_status": ["school_id", "status"],
    "ix_devices_school_home": ["school_id", "home_location_id"],
    "ix_devices_school_current": ["school_id", "current_location_id"],
    "ix_devices_school_warranty": ["school_id", "warranty_until"],
}


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        for name in OLD:
            batch_op.drop_index(name)
        for name, columns in NEW.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        for name in NEW:
            batch_op.drop_index(name)
        for name, columns in OLD.items():
            batch_op.create_index(name, columns, unique=False)
