"""What people ask of the app explicitly: ``/transcribe`` and its subcommands, the *Transcribe*
message shortcut, and ``@threadscribe transcribe`` in a thread. The words of the answers are in
:mod:`bot.messages.answers`.

The Bolt listeners stay thin: they hand the request here and send what comes back. Each entry point
is split at the ack. Before it, only database writes (and, for ``/transcribe <link>``, the one
message the answer threads under), so what Slack has acknowledged is already durable; after it,
the slower Slack calls (reactions, ephemeral answers) that may be lost in a crash without losing
any work.

- :mod:`~bot.commands.entry_points`: :class:`Commands`, what the listeners call;
- :mod:`~bot.commands.slash`: ``/transcribe`` help, and which subcommand was asked for;
- :mod:`~bot.commands.parsing`: reading the words, links, language codes and batch ids typed;
- :mod:`~bot.commands.settings`: ``provider``, ``auto`` and ``language``;
- :mod:`~bot.commands.transcript_settings`: ``vocabulary``, ``context``, ``translate`` and
  ``confidence``;
- :mod:`~bot.commands.status`: ``status``;
- :mod:`~bot.commands.work`: links, ``retry`` and ``cancel``;
- :mod:`~bot.commands.message_requests`: the message shortcut and mentions;
- :mod:`~bot.commands.speakers`: naming a transcript's speakers (its button, form and mention);
- :mod:`~bot.commands.context`: what each of them is given, and gives back.
"""

from __future__ import annotations

from bot.commands.context import CommandError, Outcome
from bot.commands.entry_points import Commands
from bot.commands.parsing import (
    MAX_COMMAND_LINKS,
    asks_to_transcribe,
    looks_like_link,
    mention_words,
    parse_language_setting,
    parse_languages,
    parse_links,
    split_command,
)
from bot.commands.slash import HELP, help_text
from bot.commands.status import STATUS_FINISHED, STATUS_RUNNING
from bot.languages import ISO_639_1
from bot.messages.words import COMMAND, STRICT, format_duration

__all__ = [
    "COMMAND",
    "HELP",
    "ISO_639_1",
    "MAX_COMMAND_LINKS",
    "STATUS_FINISHED",
    "STATUS_RUNNING",
    "STRICT",
    "CommandError",
    "Commands",
    "Outcome",
    "asks_to_transcribe",
    "format_duration",
    "help_text",
    "looks_like_link",
    "mention_words",
    "parse_language_setting",
    "parse_languages",
    "parse_links",
    "split_command",
]
