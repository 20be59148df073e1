"""The Store: the one interface between the bot and its database, whatever the backend.

A backend is a subpackage of :mod:`storage` (``storage.sqlite``) with a class that satisfies
:class:`Store`; the composition root (``bot.app``) is the only place that names one. Every backend
passes the contract suite in ``tests/contract``.

The contract, for every method:

* **Durable on return.** A write is committed before the method returns, so whatever the caller
  does next (a download, an upload, a post) happens after the state it depends on is recorded.
* **The caller's clock.** Methods that stamp a time take ``now`` (and every other time) from the
  caller; a store never reads the clock. Times are timezone-aware and come back as UTC: a time
  without a time zone is refused with :class:`InvalidRecord`, before anything is written.
* **Guarded moves.** A verb that changes a job's or a batch's state moves it only along a move of
  :mod:`storage.states`, and only from that move's source states, atomically. It says in its
  return value whether (or for which rows) the move happened: a row found in any other state is
  left as it is, and that is not an error.
* **Grouped writes.** A verb given many rows writes them in one transaction: all or none.
* **Errors.** Every method raises :class:`StoreClosed` once :meth:`Store.close` was called, and
  :class:`StoreUnavailable` when the database cannot be reached or refuses to work; no backend's
  own exception reaches the caller. Other raises are named in each method's docstring.
* **Shared.** A backend that several processes may share (PostgreSQL) keeps nothing in memory that
  another process could change: every read is the database's answer at that moment.
* **Leases.** A process takes a unit of work (a job's next step, a batch's reply or progress
  message) only under a lease: its ``owner`` id (one per process) and an expiry time. A claim
  takes only rows that no other owner holds unexpired, atomically, so two owners never both hold
  one; the owner renews its leases while it works and releases them when done, and a lease left
  to expire (its process died) may be claimed by anyone. Leases are advisory: the verbs that move
  rows do not look at them, and the guarded moves still decide every race. A backend that one
  process alone may use (SQLite) keeps them in memory: they end with the store, and a restarted
  process finds nothing leased.
* **Counted under a lock.** Verbs that count what a provider holds and reserve more of it
  (:meth:`Store.take_submission_slots`, :meth:`Store.take_upload_room`) count and mark in one
  transaction that no other process's count can interleave: the caps hold across processes.
* Ids a method is given that match no row are ignored, unless its docstring says otherwise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from storage.protocol.batches import BatchSteps
from storage.protocol.installations import InstallationSteps
from storage.protocol.jobs import JobSteps
from storage.protocol.leases import LeaseSteps
from storage.protocol.reads import IntakeAndReads
from storage.protocol.speakers import SpeakerSteps
from storage.protocol.workspaces import WorkspaceSteps


class StorageError(Exception):
    """Something went wrong in the store; the subclasses say what."""


class StoreClosed(StorageError):
    """The store was closed (the process is shutting down)."""


class StoreUnavailable(StorageError):
    """The database cannot be reached, opened or written (a missing directory, a full disk, a
    lock held too long): the same call may work later."""


class InvalidRecord(StorageError):
    """The database refused what it was given (a required value missing): the same call will
    fail again."""


def naive_time_message(value: datetime) -> str:
    """What :class:`InvalidRecord` says of a time without a time zone, the same for every
    backend."""
    return (
        f"a time without a time zone ({value.isoformat()}): the store takes timezone-aware "
        "times only, such as datetime.now(UTC)"
    )


class WriteInterrupted(StorageError):
    """The write was stopped before it was committed (the store is shutting down): nothing of it
    was recorded."""


class DatabaseInUse(StoreUnavailable):
    """Another process works on this database, which serves one process only (SQLite): it may
    be opened once that process has stopped."""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer version of threadscribe than this one: this code
    does not know its schema, and must not write to it."""


def too_new_message(database: str, found: int, known: int) -> str:
    """What :class:`SchemaTooNew` says, the same for every backend."""
    return (
        f"{database} is at schema version {found}, and this threadscribe knows versions up to "
        f"{known}: a newer threadscribe migrated it. Run that version (or a newer one), or "
        "restore a backup taken before the upgrade; this version must not write to it"
    )


class SchemaTooOld(StorageError):
    """The database was opened without migrating it, and its schema is older than this code's:
    it is migrated when the bot starts (or with ``python -m bot migrate``)."""


#: How long a provider's notice that a transcription ended is kept for a submission not recorded
#: yet (:meth:`Store.record_remote_finished`).
EARLY_NOTICE_KEPT = timedelta(minutes=10)


class Store(
    IntakeAndReads,
    LeaseSteps,
    JobSteps,
    BatchSteps,
    SpeakerSteps,
    InstallationSteps,
    WorkspaceSteps,
    Protocol,
):
    """Batches, jobs, channel settings, provider account problems and speaker names, and every
    move they make; the Slack installations the app serves, and the OAuth states of installs
    under way. Batches and channel settings belong to a workspace
    (:class:`storage.models.Workspace`): the channel views and settings show each workspace its
    own, and a workspace that removed the app has its work stopped and erased
    (:meth:`remove_workspace`)."""

    @property
    def backend(self) -> str:
        """The backend's name, as ``/healthz`` and ``check`` show it: ``sqlite``, ``postgresql``."""

    async def close(self) -> None:
        """Finish the writes under way and release the database. Returns once closed; calling it
        again does nothing. Raises nothing."""

    async def ping(self) -> bool:
        """Returns True when the database answers a trivial query. Raises the common errors."""
