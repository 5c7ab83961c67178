"""Backups that recover a school: the database and every key, under the school's passphrase."""
