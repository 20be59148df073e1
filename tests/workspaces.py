"""The workspaces tests work in."""

from __future__ import annotations

from storage.models import Workspace

#: The fake Slack's workspace (``tests.fakes.slack.FakeSlack``'s default team).
FAKE_WORKSPACE = Workspace("T0FAKE")
#: The contract suite's workspace (``tests.contract.builders.new_batch``'s team).
T1 = Workspace("T1")
