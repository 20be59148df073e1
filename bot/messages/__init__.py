"""Every sentence the app says to the people in Slack, and the reactions it leaves, in one place.

Sentences for Slack are :class:`~bot.slack_text.Mrkdwn`, made with :func:`~bot.slack_text.mrkdwn`
from templates written here, so what they carry from outside (file names, links, ids a person
typed) is escaped on the way in. Sentences that are stored first and shown later (why a file
failed) are plain ``str``: they are escaped when the reply that shows them is rendered.

- :mod:`bot.messages.answers`: answers to ``/transcribe``, the message shortcut and mentions;
- :mod:`bot.messages.reply`: the words of a transcript reply;
- :mod:`bot.messages.failures`: why a file was not transcribed;
- :mod:`bot.messages.words`: the command's own words, and durations and counts in words.

The package depends on nothing of the app but :mod:`bot.slack_text` and the storage states, so
any module can take its words from here; what a sentence needs (provider names, limits) comes in
as arguments.
"""

from __future__ import annotations

# -- reactions on the message being transcribed ---------------------------------------------------

REACTION_WORKING = "hourglass_flowing_sand"
REACTION_DONE = "white_check_mark"
REACTION_FAILED = "warning"
