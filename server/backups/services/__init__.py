"""Backups: take one, restore one on a new machine, and drill a restore into a scratch place."""

from server.backups.services.archive import (
    Opened,
    Retention,
    Written,
    after_restore,
    describe,
    drill,
    open_backup,
    plan_restore,
    record_drill,
    restore,
    take_backup,
)
from server.backups.services.checks import Check, Report
from server.backups.services.keypairs import (
    Identities,
    Recipients,
    generate,
    read_identities,
    read_recipients,
)
from server.backups.services.keys import Placement
from server.backups.services.retention import newest
from server.backups.services.sealing import MIN_PASSPHRASE, check_passphrase

__all__ = [
    "MIN_PASSPHRASE",
    "Check",
    "Identities",
    "Opened",
    "Placement",
    "Recipients",
    "Report",
    "Retention",
    "Written",
    "after_restore",
    "check_passphrase",
    "describe",
    "drill",
    "generate",
    "newest",
    "open_backup",
    "plan_restore",
    "read_identities",
    "read_recipients",
    "record_drill",
    "restore",
    "take_backup",
]
