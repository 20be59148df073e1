"""PostgreSQL URLs as an operator writes them: accepted in the forms libpq reads, refused with a
reason that never repeats the password, and shown with the password masked."""

from __future__ import annotations

import pytest

from storage.postgres.urls import shown_url, url_password, url_problem


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bot:pw@db.internal:5432/threadscribe",
        "postgres://bot@db/threadscribe?sslmode=verify-full",
        "postgresql://bot:pw@h1:5432,h2:5433/db?target_session_attrs=read-write",
        "postgresql://bot:p%40ss@[::1]:5432/db",
        "postgresql:///threadscribe",  # libpq's local socket
    ],
)
def test_the_urls_libpq_reads_are_accepted(url: str) -> None:
    assert url_problem(url) is None


def test_a_wrong_url_is_refused_without_its_password() -> None:
    problem = url_problem("mysql://root:hunter2@db/x")
    assert problem is not None and "scheme 'mysql'" in problem and "hunter2" not in problem
    problem = url_problem("postgresql://bot:hunter2@db:54x2/x")
    assert problem is not None and "port" in problem and "hunter2" not in problem


def test_the_password_is_masked_and_found() -> None:
    url = "postgresql://bot:p%40ss-word@h1:5432,h2:5433/db?sslmode=require"
    assert shown_url(url) == "postgresql://bot:[redacted]@h1:5432,h2:5433/db?sslmode=require"
    assert url_password(url) == "p@ss-word"
    assert shown_url("postgresql://bot@db/x") == "postgresql://bot@db/x"
    assert url_password("postgresql://bot@db/x") is None
