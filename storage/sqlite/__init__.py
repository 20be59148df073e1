"""The SQLite backend of :class:`storage.store.Store`: the default, for one process."""

from __future__ import annotations

from storage.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
