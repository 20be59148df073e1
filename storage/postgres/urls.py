"""PostgreSQL URLs as the settings give them: whether one is usable, and how to show one.

A URL is read as libpq reads it (psycopg's ``conninfo_to_dict`` is libpq's own parser), not as
:mod:`urllib.parse` would: libpq takes a password holding an unescaped ``?`` or ``#``, and one
given as ``?password=`` in the query, and each of those must be found to be masked.
"""

from __future__ import annotations

from urllib.parse import unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

#: The schemes libpq (and so psycopg) reads as a PostgreSQL URL, spelt as it wants them: it
#: reads ``POSTGRESQL://…`` as ``key=value`` settings, and shows the whole text in its error.
SCHEMES = ("postgresql", "postgres")
EXAMPLE = "postgresql://user:password@host:5432/database"
MASK = "[redacted]"

_ENCODE = (
    "percent-encode the user name and password: a space as %20, '/' as %2F, '@' as %40, ':' as %3A"
)


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a PostgreSQL URL, in words that never repeat its password;
    None when nothing is."""
    text = url.strip()
    scheme, separator, rest = text.partition("://")
    if not separator or scheme.lower() not in SCHEMES:
        named = f"scheme '{scheme}'" if separator and scheme else "no scheme"
        return (
            f"must be a PostgreSQL URL, {EXAMPLE} (this one has {named}); for SQLite, leave "
            "DATABASE_URL unset and set DATABASE_PATH"
        )
    if scheme not in SCHEMES:
        return f"must start with {scheme.lower()}:// in lowercase, the only way libpq reads it"
    try:
        settings = conninfo_to_dict(text)
    except psycopg.ProgrammingError:
        # libpq's reason repeats the part it could not read, which may be the password.
        return f"must be a PostgreSQL URL libpq can read, {EXAMPLE}: {_ENCODE}"
    # No host is libpq's local socket; several, separated by commas, are tried in turn.
    ports = str(settings.get("port") or "").split(",")
    if any(port and not port.isdigit() for port in ports):
        return f"must be a PostgreSQL URL, {EXAMPLE} (its port is not a number; {_ENCODE})"
    # libpq takes the user and password up to the first '@' or '/': an '@' or '/' inside the
    # password would leave the rest of it in the host or the database name.
    location = rest.partition("?")[0]
    if "@" in str(settings.get("host") or "") or "@" in location.partition("/")[2]:
        return f"must be a PostgreSQL URL, {EXAMPLE} (an '@' out of place; {_ENCODE})"
    return None


def shown_url(url: str) -> str:
    """``url`` with its password masked, in the user part and in the query alike: what
    messages, ``check`` and logs may show."""
    head, userinfo, rest = _split(url)
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        head += f"{user}:{MASK}@" if colon else f"{user}@"
    location, question, query = rest.partition("?")
    if question:
        query = "&".join(_masked_parameter(parameter) for parameter in query.split("&"))
    return f"{head}{location}{question}{query}"


def url_password(url: str) -> str | None:
    """The password libpq takes from ``url``, decoded; None without one."""
    try:
        password = conninfo_to_dict(url.strip()).get("password")
    except psycopg.ProgrammingError:
        passwords = [secret for secret in url_secrets(url) if secret]
        return unquote(passwords[0]) if passwords else None
    return str(password) if password else None


def url_secrets(url: str) -> list[str]:
    """Every password ``url`` holds, as written and decoded, wherever it sits: what output
    showing the URL, or a driver's message about it, must mask."""
    _, userinfo, rest = _split(url)
    written = []
    if userinfo is not None and ":" in userinfo:
        written.append(userinfo.partition(":")[2])
    for parameter in rest.partition("?")[2].split("&"):
        key, equals, value = parameter.partition("=")
        if equals and unquote(key).strip() == "password":
            written.append(value)
    return [secret for each in written for secret in dict.fromkeys([each, unquote(each)]) if secret]


def _split(url: str) -> tuple[str, str | None, str]:
    """``url`` as libpq splits it: up to ``://``; the user part (without its ``@``), None
    when there is none; and the rest (hosts, database, query)."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "", None, url
    # The user part ends at the first '@' before any '/', as libpq looks for it.
    end = next((index for index, char in enumerate(rest) if char in "@/"), len(rest))
    if end < len(rest) and rest[end] == "@":
        return f"{scheme}://", rest[:end], rest[end + 1 :]
    return f"{scheme}://", None, rest


def _masked_parameter(parameter: str) -> str:
    key, equals, _ = parameter.partition("=")
    return f"{key}={MASK}" if equals and unquote(key).strip() == "password" else parameter
