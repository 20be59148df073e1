"""PostgreSQL URLs as the settings give them: whether one is usable, and how to show one."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

#: The schemes libpq (and so psycopg) reads as a PostgreSQL URL.
SCHEMES = ("postgresql", "postgres")
EXAMPLE = "postgresql://user:password@host:5432/database"


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a PostgreSQL URL, in words that never repeat its password;
    None when nothing is."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (raises for a port that is not a number)
    except ValueError:
        return f"must be a PostgreSQL URL, {EXAMPLE} (this one cannot be read: check its port)"
    if parts.scheme.lower() not in SCHEMES:
        scheme = f"scheme '{parts.scheme}'" if parts.scheme else "no scheme"
        return (
            f"must be a PostgreSQL URL, {EXAMPLE} (this one has {scheme}); for SQLite, leave "
            "DATABASE_URL unset and set DATABASE_PATH"
        )
    if not parts.hostname and "host=" not in parts.query:
        return f"must name the server: {EXAMPLE}"
    return None


def shown_url(url: str) -> str:
    """``url`` with its password masked: what messages, ``check`` and logs may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:[redacted]@{host}"))


def url_password(url: str) -> str | None:
    """The password ``url`` holds, as written and decoded; None without one."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return None if password is None else unquote(password)
