"""The PostgreSQL backend of :class:`storage.store.Store`: for several processes sharing one
database."""

from __future__ import annotations

from storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
