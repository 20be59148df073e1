"""One process per SQLite database: an exclusive lock on a file beside it, held while it is open.

SQLite itself lets several processes open one file, and they would all work the same jobs: each
would upload, transcribe and reply for every file. The lock makes a second process refuse to
start instead. It is an ``flock`` on ``<database>.lock`` (beside the file a link leads to): the
kernel releases it when the holder exits, however it exits (even ``kill -9``), so a crash never
leaves a stale lock behind. The file holds the holder's process id, for the message the next one
shows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from storage.store import DatabaseInUse


def lock_path(database: Path) -> Path:
    """``<database>.lock`` beside the file itself, links followed: every path that leads to one
    database (a symbolic link to it, say) takes the same lock."""
    real = database.resolve()
    return real.with_name(real.name + ".lock")


class ProcessLock:
    """The exclusive lock of one SQLite database, held until :meth:`release`."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def take(cls, database: Path) -> ProcessLock:
        """Take the database's lock, or raise :class:`DatabaseInUse` (naming the process that
        holds it) without waiting."""
        path = lock_path(database)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise DatabaseInUse(in_use_message(database, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd, path)

    @staticmethod
    def is_held(database: Path) -> bool:
        """Whether some process holds the database's lock now (a running bot)."""
        if not database.parent.is_dir():
            return False
        try:
            lock = ProcessLock.take(database)
        except DatabaseInUse:
            return True
        lock.release()
        return False

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # The file stays: removing it could let a process that opened it just before lock a file
        # no longer at the path while a third one locks a new one.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def in_use_message(database: Path, holder: int | None) -> str:
    process = f"another threadscribe process (pid {holder})" if holder else "another process"
    return (
        f"{process} is already running on the SQLite database {database}. SQLite serves one "
        "process only: two would both work the same files and reply twice. Stop the other "
        "process first; to run several processes, use PostgreSQL: set "
        "DATABASE_URL=postgresql://user:password@host:5432/database (see the README, "
        "'Moving from SQLite to PostgreSQL')"
    )
