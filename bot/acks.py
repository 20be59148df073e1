"""Acks first: work that follows an ack waits while Slack's requests are being answered.

Slack retries an event whose answer takes more than 3 seconds, and every request is answered on
the bot's one event loop. When a burst arrives (a folder of recordings shared at once), the work
that follows each ack (a reaction, a poll cycle that starts downloads and uploads) would compete
with the answers still owed. None of it is urgent, so it waits until the burst has been
answered: no request in flight and none answered for a moment, or at most a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: How long the requests must have been quiet: the gap between requests of one burst.
SETTLE_SECONDS = 0.02
#: Longest wait: under a steady stream of requests the work must still go on.
LONGEST_WAIT_SECONDS = 1.0


class AckFirst:
    def __init__(
        self,
        *,
        settle: float = SETTLE_SECONDS,
        longest_wait: float = LONGEST_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settle = settle
        self._longest_wait = longest_wait
        self._clock = clock
        self._in_flight = 0
        self._last_answered = float("-inf")
        self._idle = asyncio.Event()
        self._idle.set()

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Around the handling of one request that Slack waits on."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._last_answered = self._clock()
            if self._in_flight == 0:
                self._idle.set()

    async def after_acks(self) -> None:
        """Return once no request has been in flight for the settle time, or after the longest
        wait, whichever comes first."""
        deadline = self._clock() + self._longest_wait
        while (left := deadline - self._clock()) > 0:
            if self._in_flight:
                try:
                    await asyncio.wait_for(self._idle.wait(), left)
                except TimeoutError:
                    return
                continue
            quiet_for = self._clock() - self._last_answered
            if quiet_for >= self._settle:
                return
            await asyncio.sleep(min(self._settle - quiet_for, left))
