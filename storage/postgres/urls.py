"""PostgreSQL URLs as the settings give them: whether one is usable, and how to show one."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

#: The schemes libpq (and so psycopg) reads as a PostgreSQL URL.
SCHEMES = ("postgresql", "postgres")
EXAMPLE = "postgresql://user:password@host:5432/database"


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a PostgreSQL URL, in words that never repeat its password;
    None when nothing is."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in SCHEMES:
        scheme = f"scheme '{parts.scheme}'" if parts.scheme else "no scheme"
        return (
            f"must be a PostgreSQL URL, {EXAMPLE} (this one has {scheme}); for SQLite, leave "
            "DATABASE_URL unset and set DATABASE_PATH"
        )
    # No host is libpq's local socket; several, separated by commas, are tried in turn.
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(","):
        port = host.rpartition("]")[2].partition(":")[2]
        if port and not port.isdigit():
            return f"must be a PostgreSQL URL, {EXAMPLE} (its port is not a number)"
    return None


#: The password of a URL: what follows ``user:`` up to the ``@`` before the host(s).
_PASSWORD = re.compile(r"^(?P<head>[^:/?#]+://[^:@/?#]*):[^@/?#]*@")


def shown_url(url: str) -> str:
    """``url`` with its password masked: what messages, ``check`` and logs may show."""
    return _PASSWORD.sub(r"\g<head>:[redacted]@", url, count=1)


def url_password(url: str) -> str | None:
    """The password ``url`` holds, decoded; None without one."""
    found = re.match(r"^[^:/?#]+://[^:@/?#]*:(?P<password>[^@/?#]*)@", url)
    return unquote(found["password"]) if found else None
