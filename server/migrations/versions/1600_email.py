"""email: e-mails still waiting from before the minimal notice lose the text they copied

Revision ID: 1600_email
Revises: 0100_notifications
"""

import sqlalchemy as sa
from alembic import op

revision = "1600_email"
down_revision = "0100_notifications"
branch_labels = None
depends_on = None

# Written out here, not imported: a migration must say what it said on the day it was written.
SUBJECT = "Something new for you in Trolley"
BODY = (
    "Something new needs your attention in Trolley.\n\n"
    "Names, notes and the other details are in Trolley, not in this e-mail: "
    "sign in to read them."
)

emails = sa.table(
    "email_messages",
    sa.column("status", sa.String),
    sa.column("subject", sa.String),
    sa.column("body_text", sa.Text),
    sa.column("attachments", sa.JSON),
)


def upgrade() -> None:
    # Queued (or failed, so retryable) before this revision, these still hold the in-app text:
    # names and what staff typed. They go out, or are retried, as a bare notice with their link.
    op.execute(
        emails.update()
        .where(emails.c.status.in_(["queued", "failed"]))
        .values(subject=SUBJECT, body_text=BODY, attachments=[])
    )


def downgrade() -> None:
    # Nothing to put back: the copied text is gone on purpose.
    pass
