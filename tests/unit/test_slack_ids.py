"""Which workspace a request comes from, read from each kind of body the fake Slack sends."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from bot.slack_ids import workspace_of
from storage.models import Workspace
from tests.fakes.slack import FakeSlack


def test_an_event_names_its_workspace_and_organisation() -> None:
    fake = FakeSlack()
    body = fake.event_callback(fake.message_event(text="hi"))
    assert workspace_of(body) == Workspace(fake.team_id)
    grid = fake.add_workspace("T0GRID", enterprise_id="E0ORG")
    body = fake.event_callback(fake.message_event(text="hi"), workspace=grid)
    assert workspace_of(body) == Workspace("T0GRID", "E0ORG")
    org_wide = fake.event_callback(fake.message_event(text="hi"), workspace=grid, org_wide=True)
    assert workspace_of(org_wide) == Workspace("T0GRID", "E0ORG")


def test_an_organisation_wide_event_is_read_from_its_authorization() -> None:
    body = {"authorizations": [{"team_id": "T2", "enterprise_id": "E2"}]}
    assert workspace_of(body) == Workspace("T2", "E2")


def test_a_slash_command_names_its_workspace_in_its_form() -> None:
    fake = FakeSlack()
    form = dict(parse_qsl(urlencode(fake.slash_command("status"))))
    assert workspace_of(form) == Workspace(fake.team_id)
    assert workspace_of({"team_id": "T1", "enterprise_id": "E1"}) == Workspace("T1", "E1")


def test_an_interactivity_payload_names_its_team_and_enterprise_objects() -> None:
    fake = FakeSlack()
    event = fake.message_event(text="hi")
    payload = fake.message_shortcut(event["channel"], event["ts"])
    assert workspace_of(payload) == Workspace(fake.team_id)
    assert workspace_of(
        {"team": {"id": "T3", "domain": "x"}, "enterprise": {"id": "E3", "name": "Org"}}
    ) == Workspace("T3", "E3")
    assert workspace_of({"team": None, "user": {"id": "U1", "team_id": "T4"}}) == Workspace("T4")


def test_a_body_naming_no_workspace_has_none() -> None:
    assert workspace_of({}) == Workspace("")
    assert workspace_of({"team_id": 7, "authorizations": ["x"], "user": "U1"}) == Workspace("")


def test_a_connected_channels_event_is_the_installations_not_the_guests() -> None:
    body = {
        "team_id": "T0GUEST",
        "is_ext_shared_channel": True,
        "authorizations": [{"team_id": "T0HOST", "enterprise_id": None}],
        "event": {"type": "message", "team": "T0GUEST", "user_team": "T0GUEST"},
    }
    assert workspace_of(body) == Workspace("T0HOST")


def test_a_form_opened_from_another_workspace_is_the_installations() -> None:
    payload = {"team": {"id": "T0GUEST"}, "view": {"app_installed_team_id": "T0HOST"}}
    assert workspace_of(payload) == Workspace("T0HOST")
