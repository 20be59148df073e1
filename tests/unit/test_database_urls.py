"""PostgreSQL URLs as an operator writes them: accepted in the forms libpq reads, refused with a
reason that never repeats the password, and shown with the password masked."""

from __future__ import annotations

import pytest

from storage.postgres.urls import shown_url, url_password, url_problem, url_secrets


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


def test_a_password_in_the_query_is_found_and_masked() -> None:
    url = "postgresql://bot@db:5432/x?sslmode=require&password=hunter2"
    assert url_problem(url) is None
    assert shown_url(url) == "postgresql://bot@db:5432/x?sslmode=require&password=[redacted]"
    assert url_password(url) == "hunter2"
    both = "postgresql://bot:p%40ss@db/x?pass%77ord=s3cret%21"
    assert shown_url(both) == "postgresql://bot:[redacted]@db/x?pass%77ord=[redacted]"
    assert set(url_secrets(both)) == {"p%40ss", "p@ss", "s3cret%21", "s3cret!"}


@pytest.mark.parametrize("password", ["pa?ss", "pa#ss", "a?b#c:d"])
def test_a_password_with_characters_libpq_takes_unescaped_is_accepted(password: str) -> None:
    url = f"postgresql://bot:{password}@db:5432/threadscribe?sslmode=require"
    assert url_problem(url) is None
    assert url_password(url) == password
    assert shown_url(url) == "postgresql://bot:[redacted]@db:5432/threadscribe?sslmode=require"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # libpq reads only the lowercase scheme, and shows the whole text when it fails.
        ("POSTGRESQL://postgres:hunter2@127.0.0.1:5432/test", "lowercase"),
        ("Postgres://postgres:hunter2@db/test", "lowercase"),
        ("postgresql://postgres:hun ter2@127.0.0.1:5432/test", "percent-encode"),
        ("postgresql://bot:hun/ter2@db/x", "percent-encode"),
        ("postgresql://bot:1234/hunter2@db/x", "percent-encode"),
        ("postgresql://bot:hunter2@ss@db/x", "percent-encode"),
    ],
)
def test_a_url_libpq_would_misread_is_refused_saying_how_to_write_it(url: str, reason: str) -> None:
    problem = url_problem(url)
    assert problem is not None and reason in problem
    assert "hunter2" not in problem and "hun ter2" not in problem and "ter2" not in problem
