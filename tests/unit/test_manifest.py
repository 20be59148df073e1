"""``manifest.yml`` declares exactly what the app handles: every event, slash command, shortcut,
button and form the Bolt app registers is declared (buttons and forms by interactivity being on),
nothing undeclared is registered, and the bot scopes are the ones the app uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners import (
    BLOCK_ACTIONS,
    COMMANDS,
    EVENTS,
    MESSAGE_SHORTCUTS,
    VIEW_SUBMISSIONS,
    register_listeners,
)
from tests.fakes.slack import DEFAULT_SCOPES

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"

#: The Events API subscription behind each ``message.*`` manifest event, by ``channel_type``.
MESSAGE_SUBSCRIPTIONS = {
    "message.channels": "channel",
    "message.groups": "group",
    "message.im": "im",
    "message.mpim": "mpim",
}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def registered_listeners() -> list[Any]:
    """The listeners ``register_listeners`` puts on a Bolt app (nothing is called on the stand-ins:
    registering only reads them)."""
    bolt = AsyncApp(
        client=AsyncWebClient(token="xoxb-manifest-test"),
        signing_secret="manifest-test",
        request_verification_enabled=False,
    )
    register_listeners(
        bolt,
        store=None,  # type: ignore[arg-type]
        slack=None,  # type: ignore[arg-type]
        intake=None,  # type: ignore[arg-type]
        commands=None,  # type: ignore[arg-type]
        acks=None,  # type: ignore[arg-type]
        kick=lambda: None,
        clock=None,  # type: ignore[arg-type]
    )
    return list(bolt._async_listeners)


def event_body(event_type: str, **event: Any) -> dict[str, Any]:
    return {
        "type": "event_callback",
        "team_id": "T1",
        "api_app_id": "A1",
        "event_id": "Ev1",
        "event": {"type": event_type, "channel": "C1", "ts": "1.000001", **event},
    }


def declared_bodies(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One request body per thing the manifest declares, named after the declaration."""
    bodies: dict[str, dict[str, Any]] = {}
    for name in manifest["settings"]["event_subscriptions"]["bot_events"]:
        if name in MESSAGE_SUBSCRIPTIONS:
            bodies[f"event {name}"] = event_body(
                "message", channel_type=MESSAGE_SUBSCRIPTIONS[name], text="hi"
            )
        else:
            bodies[f"event {name}"] = event_body(name)
    for command in manifest["features"].get("slash_commands", []):
        bodies[f"command {command['command']}"] = {
            "command": command["command"],
            "text": "",
            "team_id": "T1",
            "channel_id": "C1",
            "user_id": "U1",
            "response_url": "https://hooks.slack.com/commands/x",
        }
    for shortcut in manifest["features"].get("shortcuts", []):
        kind = "message_action" if shortcut["type"] == "message" else "shortcut"
        bodies[f"shortcut {shortcut['callback_id']}"] = {
            "type": kind,
            "callback_id": shortcut["callback_id"],
            "team": {"id": "T1"},
            "user": {"id": "U1"},
        }
    if manifest["settings"].get("interactivity", {}).get("is_enabled"):
        # Buttons and forms are not declared one by one: interactivity on delivers them all.
        for action_id in BLOCK_ACTIONS:
            bodies[f"block action {action_id}"] = {
                "type": "block_actions",
                "team": {"id": "T1"},
                "user": {"id": "U1"},
                "actions": [{"type": "button", "action_id": action_id, "block_id": "b"}],
            }
        for callback_id in VIEW_SUBMISSIONS:
            bodies[f"view submission {callback_id}"] = {
                "type": "view_submission",
                "team": {"id": "T1"},
                "user": {"id": "U1"},
                "view": {"type": "modal", "callback_id": callback_id, "state": {"values": {}}},
            }
    return bodies


#: Requests Slack would send only if the manifest declared more than it does.
UNDECLARED_BODIES = {
    "event file_shared": event_body("file_shared"),
    "event reaction_added": event_body("reaction_added"),
    "event app_home_opened": event_body("app_home_opened"),
    "command /other": {"command": "/other", "text": "", "team_id": "T1"},
    "global shortcut transcribe_message": {
        "type": "shortcut",
        "callback_id": "transcribe_message",
        "team": {"id": "T1"},
    },
    "message shortcut other": {"type": "message_action", "callback_id": "other"},
    "block action": {"type": "block_actions", "actions": [{"action_id": "x"}]},
    "view submission": {
        "type": "view_submission",
        "view": {"type": "modal", "callback_id": "x", "state": {"values": {}}},
    },
    "view closed": {
        "type": "view_closed",
        "view": {"type": "modal", "callback_id": VIEW_SUBMISSIONS[0]},
    },
}


async def matches(listener: Any, body: dict[str, Any]) -> bool:
    request = AsyncBoltRequest(body=body, mode="socket_mode")
    return bool(await listener.async_matches(req=request, resp=BoltResponse(status=200)))


def test_manifest_is_a_socket_mode_app_with_a_bot_user(manifest: dict[str, Any]) -> None:
    assert manifest["display_information"]["name"] == "threadscribe"
    assert len(manifest["display_information"]["description"]) <= 140
    assert manifest["features"]["bot_user"]["display_name"] == "threadscribe"
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"], "Socket Mode needs no URL"


def test_bot_scopes_are_exactly_the_ones_used(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) == set(DEFAULT_SCOPES)
    assert set(scopes) == {
        "channels:history",
        "groups:history",
        "im:history",
        "mpim:history",
        "files:read",
        "files:write",
        "chat:write",
        "reactions:write",
        "commands",
        "app_mentions:read",
        # Who is in a channel: only its members may name a transcript's speakers.
        "channels:read",
        "groups:read",
        "im:read",
        "mpim:read",
        # The names of the people named, for the attached transcript files.
        "users:read",
    }


def test_declarations_follow_the_names_the_listeners_register(manifest: dict[str, Any]) -> None:
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    subscribed = {name.split(".")[0] for name in events}
    assert subscribed == set(EVENTS)
    assert set(MESSAGE_SUBSCRIPTIONS) <= set(events)
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == list(COMMANDS)
    assert all(c["usage_hint"] and c["description"] for c in commands)
    shortcuts = manifest["features"]["shortcuts"]
    assert [s["callback_id"] for s in shortcuts] == list(MESSAGE_SHORTCUTS)
    assert all(s["type"] == "message" and s["name"] == "Transcribe" for s in shortcuts)
    assert all(len(s["description"]) <= 150 and len(s["name"]) <= 24 for s in shortcuts)


async def test_every_registered_listener_is_declared_and_every_declaration_handled(
    manifest: dict[str, Any],
) -> None:
    listeners = registered_listeners()
    declared = declared_bodies(manifest)
    assert listeners

    for listener in listeners:
        handled = [name for name, body in declared.items() if await matches(listener, body)]
        assert handled, f"{listener.ack_function.__name__} handles nothing the manifest declares"
    for name, body in declared.items():
        assert any([await matches(listener, body) for listener in listeners]), (
            f"the manifest declares {name}, but no listener handles it"
        )
    for name, body in UNDECLARED_BODIES.items():
        assert not any([await matches(listener, body) for listener in listeners]), (
            f"a listener handles {name}, which the manifest does not declare"
        )
