"""Common ground for the loopback fakes: an aiohttp server on 127.0.0.1, a log of every request, and
fault injection.

A fake subclasses :class:`LoopbackServer`, adds its routes in :meth:`LoopbackServer.routes`, and
tests read :attr:`LoopbackServer.requests` or wait with :meth:`LoopbackServer.wait_for`.

Faults are queued with :meth:`LoopbackServer.inject`: the next request whose path matches answers
with the given status and body instead of reaching the route (or the connection is dropped, or the
answer is delayed). Every fault is used once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    #: Parsed JSON or form body when small and parseable; ``None`` for streamed uploads.
    body: Any = None


@dataclass
class Fault:
    path_pattern: str
    method: str | None = None
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (or before passing through when ``status`` is 0).
    delay: float = 0.0
    #: Close the connection without answering.
    drop: bool = False
    #: With ``status`` 0: seconds to hold back the answer after the route has acted on it.
    answer_delay: float = 0.0

    def matches(self, request: web.Request) -> bool:
        if self.method is not None and request.method != self.method:
            return False
        return re.search(self.path_pattern, request.path) is not None


class LoopbackServer:
    """An aiohttp application bound to a free port on 127.0.0.1."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """Add the fake's routes to ``app``."""
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=2**40)
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LoopbackServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- faults and observation ----------------------------------------------------------------

    def inject(self, path_pattern: str, **fault: Any) -> Fault:
        """Queue a one-shot fault for the next request whose path matches ``path_pattern``."""
        injected = Fault(path_pattern=path_pattern, **fault)
        self._faults.append(injected)
        return injected

    def requests_to(self, path_pattern: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if re.search(path_pattern, r.path) and (method is None or r.method == method)
        ]

    async def notify(self) -> None:
        """Wake up :meth:`wait_for` callers; call after any change of the fake's state."""
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate()`` is truthy and return its value."""

        async def _wait() -> Any:
            async with self._changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    # Re-check now and then too: some state changes come from the test itself.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.05)

        return await asyncio.wait_for(_wait(), timeout)

    # -- plumbing ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
        )
        ctype = request.content_type
        if request.can_read_body and ctype in (
            "application/json",
            "application/x-www-form-urlencoded",
        ):
            raw = await request.read()
            try:
                if ctype == "application/json":
                    recorded.body = json.loads(raw or b"null")
                else:
                    recorded.body = dict(await request.post())
            except ValueError:
                recorded.body = raw.decode("utf-8", "replace")
        self.requests.append(recorded)
        await self.notify()

        for fault in self._faults:
            if fault.matches(request):
                self._faults.remove(fault)
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.drop:
                    assert request.transport is not None
                    request.transport.close()
                    raise web.HTTPInternalServerError()  # never reaches the client
                if fault.status:
                    body = fault.body
                    if isinstance(body, (dict, list)):
                        return web.json_response(body, status=fault.status, headers=fault.headers)
                    return web.Response(status=fault.status, text=body or "", headers=fault.headers)
                if fault.answer_delay:
                    response = await handler(request)
                    await asyncio.sleep(fault.answer_delay)
                    return response
                break
        return await handler(request)
