"""Whose work is whose: the rows recorded before the app knew its workspace, and the workspaces
that removed the app.

Part of :class:`storage.store.Store`, whose docstring states the contract every method
keeps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from storage.models import Workspace


class WorkspaceSteps(Protocol):
    """The rows recorded without a workspace, and the workspaces that removed the app."""

    async def adopt_unowned(self, workspace: Workspace) -> int:
        """Give ``workspace`` every row recorded without a team (a team id NULL or ``''``): the
        batches, which take its team id and enterprise id, and the channel settings (where the
        workspace already has settings of its own for the channel, they are kept and the
        unowned ones dropped). In one transaction. A single-workspace bot calls it at start,
        once it knows its team: what it recorded before then stays its own. Returns how many
        rows were adopted (0 for a workspace without a team id, which adopts nothing). Raises
        the common errors."""

    async def remove_workspace(self, workspace: Workspace, now: datetime) -> int:
        """The app was removed from ``workspace`` (``team_id`` ``''`` with an enterprise id: from
        a whole organisation, every workspace of it, whose rows are found by their enterprise
        id). In one transaction:

        * the removal is recorded at ``now`` (:meth:`workspace_removed` is True from then on,
          and :meth:`create_batch` creates nothing for it);
        * its open batches are cancelled (``BatchMoves.CANCEL``) and those whose reply has begun
          given up (``BatchMoves.GIVE_UP``): no reply, no progress message, nothing more is
          posted for them; their unfinished jobs fail (``JobMoves.FAIL``), finished at ``now``;
        * what it said is erased: transcripts and the providers' answers, file names, Slack file
          ids, links and download links, mimetypes, errors, user ids, channel ids and message
          times, progress texts, language hints and transcription options, dedupe keys, speaker
          names, the records of reply files, and its channel settings;
        * what remains is anonymous: states, providers, sizes, durations and times (so
          :meth:`count_jobs_by_state_and_provider` and :meth:`count_batches_by_state` still
          count them), and what cleaning up needs without Slack: the providers' ids of its
          copies, which :meth:`jobs_to_clean_up` and :meth:`lost_answers_to_recover` keep
          finding, and the spool files, which :meth:`jobs_with_unneeded_spool` keeps finding.

        Its rows no longer show in any workspace's channel views, and :meth:`adopt_unowned`
        never gives them to another. Processed event ids are not kept by workspace; retention
        forgets them. Removing a workspace again is harmless (the first removal time stays).
        Returns how many of its batches were stopped. Raises the common errors."""

    async def workspace_removed(self, workspace: Workspace) -> bool:
        """Returns whether the app was removed from ``workspace``, or from its organisation, and
        not installed again since (:meth:`save_installation`). Raises the common errors."""

    async def forget_removal(self, workspace: Workspace) -> bool:
        """The app works in ``workspace`` again without an installation recorded here (a
        single-workspace bot given a new bot token after a re-install): the removals that cover
        it, its team's and its organisation's, are forgotten, as :meth:`save_installation`
        forgets them. Nothing erased comes back. Returns whether there was one. Raises the
        common errors."""
