"""Versioned SQL migrations of the service database, applied in order by ``service.migrate``.

Files are named ``NNNN_what.sql``; an applied file is never edited (its checksum is recorded), a
change is a new file. Each file runs inside one transaction, so it must not use statements that
refuse transactions (``CREATE INDEX CONCURRENTLY``, ``VACUUM``). Every file runs on PostgreSQL 15+.
"""
