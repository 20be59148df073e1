"""``manifest.distributed.yml`` is ``manifest.yml`` for an app installed in many workspaces: the
same features, bot scopes and events, plus only what distribution needs (the OAuth redirect URL,
rotating tokens, the uninstall events, organisation-wide installs, and the request URLs of HTTP
mode). Anything added to one manifest and not the other fails here."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.config import DEFAULT_REDIRECT_PATH

ROOT = Path(__file__).resolve().parents[2]

#: The events a distributed app needs on top of the single-workspace app's.
UNINSTALL_EVENTS = ("app_uninstalled", "tokens_revoked")

#: Where the bot answers Slack's requests in HTTP mode (see the README).
EVENTS_PATH = "/slack/events"


def load(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def single() -> dict[str, Any]:
    return load("manifest.yml")


@pytest.fixture(scope="module")
def distributed() -> dict[str, Any]:
    return load("manifest.distributed.yml")


def without_transport(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without what differs by design between the two: how Slack reaches the app
    (Socket Mode or request URLs), the redirect URL, token rotation, organisation-wide installs
    and the uninstall events."""
    left = copy.deepcopy(manifest)
    for command in left["features"].get("slash_commands", []):
        command.pop("url", None)
    left["oauth_config"].pop("redirect_urls", None)
    settings = left["settings"]
    for key in ("socket_mode_enabled", "token_rotation_enabled", "org_deploy_enabled"):
        settings.pop(key, None)
    settings["interactivity"].pop("request_url", None)
    events = settings["event_subscriptions"]
    events.pop("request_url", None)
    events["bot_events"] = [e for e in events["bot_events"] if e not in UNINSTALL_EVENTS]
    return left


def test_everything_but_distribution_is_the_same(
    single: dict[str, Any], distributed: dict[str, Any]
) -> None:
    assert without_transport(distributed) == without_transport(single)


def test_same_bot_scopes_and_events_plus_the_uninstall_events(
    single: dict[str, Any], distributed: dict[str, Any]
) -> None:
    assert distributed["oauth_config"]["scopes"] == single["oauth_config"]["scopes"]
    events = distributed["settings"]["event_subscriptions"]["bot_events"]
    assert len(events) == len(set(events))
    expected = [*single["settings"]["event_subscriptions"]["bot_events"], *UNINSTALL_EVENTS]
    assert sorted(events) == sorted(expected)
    assert not set(UNINSTALL_EVENTS) & set(single["settings"]["event_subscriptions"]["bot_events"])


def test_distribution_settings(distributed: dict[str, Any]) -> None:
    settings = distributed["settings"]
    assert settings["token_rotation_enabled"] is True
    assert settings["org_deploy_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True


def test_one_redirect_url_at_the_default_redirect_path(distributed: dict[str, Any]) -> None:
    (redirect,) = distributed["oauth_config"]["redirect_urls"]
    parts = urlsplit(redirect)
    assert parts.scheme == "https"
    assert parts.hostname
    assert parts.path == DEFAULT_REDIRECT_PATH
    assert not parts.query and not parts.fragment


def test_http_mode_sends_everything_to_the_events_route_of_the_same_host(
    distributed: dict[str, Any],
) -> None:
    settings = distributed["settings"]
    assert settings["socket_mode_enabled"] is False
    host = urlsplit(distributed["oauth_config"]["redirect_urls"][0]).netloc
    urls = [
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        *(command["url"] for command in distributed["features"]["slash_commands"]),
    ]
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", host, EVENTS_PATH), url
