"""PostgreSQL for the tests: the server to use, and a schema of its own for each test.

The server is ``TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Each test works in a schema it creates and drops (even when it fails), so tests can run in
parallel on one server and leave nothing behind. When the server cannot be reached, the tests
that need it skip and say how to run them, except under ``CI=true``, where they fail: CI must
exercise PostgreSQL, not pass without it.
"""

from __future__ import annotations

import functools
import os
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_URL


@functools.cache
def _unreachable(url: str) -> str | None:
    """Why the server at ``url`` cannot be used; None when it can. Asked once per run."""
    try:
        with psycopg.connect(url, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        parts = urlsplit(url)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"PostgreSQL not reachable at {parts.hostname}:{parts.port or 5432} ({first}); "
            "start one or set TEST_DATABASE_URL=postgresql://user@host:port/database"
        )
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_postgres() -> str:
    """The server's URL; skips the test when there is none (fails it under ``CI=true``)."""
    url = server_url()
    reason = _unreachable(url)
    if reason is not None:
        if in_ci():
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return url


def with_schema(url: str, schema: str) -> str:
    """``url`` with its connections working in ``schema`` (``options=-csearch_path=…``)."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


class TestSchema:
    """A schema of one test's own on the test server: :attr:`url` works in it."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self) -> None:
        self.server = require_postgres()
        self.name = f"threadscribe_test_{uuid.uuid4().hex[:16]}"
        self.url = with_schema(self.server, self.name)
        self._created = False

    async def create(self) -> str:
        if not self._created:
            await self._run(f'CREATE SCHEMA "{self.name}"')
            self._created = True
        return self.url

    async def drop(self) -> None:
        if self._created:
            await self._run(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')
            self._created = False

    async def _run(self, statement: str) -> None:
        async with await psycopg.AsyncConnection.connect(
            self.server, autocommit=True, connect_timeout=5
        ) as connection:
            await connection.execute(statement)  # type: ignore[arg-type]
