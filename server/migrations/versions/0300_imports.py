"""imports: spreadsheets kept between preview and import

Revision ID: 0300_imports
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import server.db

revision = "0300_imports"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "import_uploads",
        sa.Column("id", sa.String(length=43), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=True),
        sa.Column("create_locations", sa.Boolean(), nullable=False),
        sa.Column("location_parent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("committed_at", server.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["location_parent_id"],
            ["locations.id"],
            name=op.f("fk_import_uploads_location_parent_id_locations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
            name=op.f("fk_import_uploads_school_id_schools"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_import_uploads_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_uploads")),
    )
    with op.batch_alter_table("import_uploads", schema=None) as batch_op:
        batch_op.create_index("ix_import_uploads_expires_at", ["expires_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_import_uploads_school_id"), ["school_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("import_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_uploads_school_id"))
        batch_op.drop_index("ix_import_uploads_expires_at")

    op.drop_table("import_uploads")
