"""The work: each job's way from a Slack file (or a link) to a transcript in its thread.

:mod:`bot.work.cycle` runs the cycle over the stages, each in a module of its own:
:mod:`~bot.work.transfer` (Slack to the provider, within its :mod:`~bot.work.room`),
:mod:`~bot.work.submit` and :mod:`~bot.work.poll` (the provider's work), :mod:`~bot.work.deliver`
(the reply), :mod:`~bot.work.progress` (the thread's progress message) and
:mod:`~bot.work.cleanup`. What a step does after an error is decided by :mod:`~bot.work.retry`
and written by :mod:`~bot.work.verdicts`; :mod:`~bot.work.accounts` holds work for a provider
account that refuses it. Every sentence the work posts is in :mod:`~bot.messages.work`.
"""

from __future__ import annotations

from bot.work.context import EngineConfig
from bot.work.cycle import Engine

__all__ = ["Engine", "EngineConfig"]
