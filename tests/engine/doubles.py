"""Stand-ins for what the engine talks to over the network, kept in memory: a provider, Slack's
threads, and the download of Slack files. Each records what it was asked, for the tests to read,
and can be told to fail a call."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import SecretStr
from slack_sdk.errors import SlackApiError

from bot.errors import PermanentError
from bot.providers.base import (
    Progress,
    ProgressStatus,
    Provider,
    ProviderJob,
    Submitted,
    Uploaded,
)
from bot.slack_api import ThreadFile, ThreadState
from bot.slack_text import Block, Mrkdwn, PlainText
from bot.transcript import Segment, Transcript
from storage.models import Workspace


class Crash(BaseException):
    """The process dies here: nothing after this line runs, and no handler catches it."""


class Failures:
    """What goes wrong, per call name: the next call raises the first error queued for it; a
    call named in ``crash_after`` does its work, then the process dies before its answer is
    read."""

    def __init__(self) -> None:
        self._queued: dict[str, list[Exception]] = {}
        self.crash_after: set[str] = set()

    def add(self, call: str, *errors: Exception) -> None:
        self._queued.setdefault(call, []).extend(errors)

    def raise_next(self, call: str) -> None:
        queued = self._queued.get(call)
        if queued:
            raise queued.pop(0)

    def crash_if_asked(self, call: str) -> None:
        if call in self.crash_after:
            self.crash_after.discard(call)
            raise Crash(call)


class MemoryProvider(Provider):
    """A per-file provider that keeps what it is sent in memory; each transcription finishes
    after ``polls_until_done`` polls, with the words ``Hello from <file name>.``"""

    name = "memory"
    display_name = "Memory"

    def __init__(self, *, polls_until_done: int = 1) -> None:
        self.polls_until_done = polls_until_done
        self.failures = Failures()
        #: Every call made, as (call, job ids).
        self.calls: list[tuple[str, list[str]]] = []
        #: File id -> job id, and transcription id -> (job id, polls so far).
        self.files: dict[str, str] = {}
        self.transcriptions: dict[str, list[Any]] = {}
        self.deleted: list[str] = []
        #: What a file of this name transcribes to, instead of ``Hello from <file name>.``
        self.transcripts: dict[str, Transcript] = {}
        self._ids = itertools.count(1)

    def calls_to(self, call: str) -> list[list[str]]:
        return [job_ids for name, job_ids in self.calls if name == call]

    def _called(self, call: str, jobs: Sequence[ProviderJob]) -> None:
        self.calls.append((call, [job.job_id for job in jobs]))
        self.failures.raise_next(call)

    async def check_credentials(self) -> None:
        return None

    async def upload(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded | PermanentError]:
        self._called("upload", jobs)
        outcomes: dict[str, Uploaded | PermanentError] = {}
        for job in jobs:
            assert job.spool_path is not None and job.spool_path.is_file()
            file_id = f"file-{next(self._ids)}"
            self.files[file_id] = job.job_id
            outcomes[job.job_id] = Uploaded(file_id)
        self.failures.crash_if_asked("upload")
        return outcomes

    async def find_uploaded(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded]:
        self._called("find_uploaded", jobs)
        wanted = {job.job_id for job in jobs}
        return {
            job_id: Uploaded(file_id) for file_id, job_id in self.files.items() if job_id in wanted
        }

    async def submit(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted | PermanentError]:
        self._called("submit", jobs)
        outcomes: dict[str, Submitted | PermanentError] = {}
        for job in jobs:
            remote_id = f"tr-{next(self._ids)}"
            self.transcriptions[remote_id] = [job.job_id, 0, job.filename]
            outcomes[job.job_id] = Submitted(remote_id)
        self.failures.crash_if_asked("submit")
        return outcomes

    async def find_submitted(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted]:
        self._called("find_submitted", jobs)
        wanted = {job.job_id for job in jobs}
        return {
            job_id: Submitted(remote_id)
            for remote_id, (job_id, _, _) in self.transcriptions.items()
            if job_id in wanted
        }

    async def poll(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Progress]:
        self._called("poll", jobs)
        outcomes: dict[str, Progress] = {}
        for job in jobs:
            assert job.remote_id is not None
            state = self.transcriptions[job.remote_id]
            state[1] += 1
            if state[1] < self.polls_until_done:
                outcomes[job.job_id] = Progress(ProgressStatus.PROCESSING)
                continue
            text = f"Hello from {state[2]}."
            transcript = self.transcripts.get(state[2]) or Transcript(
                text=text, segments=[Segment(text=text)]
            )
            outcomes[job.job_id] = Progress(
                ProgressStatus.COMPLETED, transcript=transcript, raw={"id": job.remote_id}
            )
        return outcomes

    async def clean_up(self, jobs: Sequence[ProviderJob]) -> None:
        self._called("clean_up", jobs)
        for job in jobs:
            for held in (job.remote_id, job.file_id):
                if held is not None and (
                    self.transcriptions.pop(held, None) or self.files.pop(held, None)
                ):
                    self.deleted.append(held)


@dataclass
class Message:
    channel: str
    ts: str
    thread_ts: str
    text: str
    batch_id: str
    final: bool
    blocks: list[Block] = field(default_factory=list)


def slack_error(code: str) -> SlackApiError:
    """What slack-sdk raises when Slack answers ``{"ok": false, "error": code}``."""
    return SlackApiError(code, SimpleNamespace(data={"ok": False, "error": code}))


class RecordingSlack:
    """Slack's threads as the engine sees them through :class:`bot.slack_api.SlackGateway`:
    messages posted and edited, files attached, reactions. It is every workspace's Slack, as a
    single-workspace bot's one gateway is."""

    async def gateway(self, workspace: Workspace) -> RecordingSlack:
        self.workspaces_asked.append(workspace)
        return self

    async def file_token(self, workspace: Workspace) -> SecretStr:
        return SecretStr("xoxb-engine-test")

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.failures = Failures()
        self.messages: dict[str, Message] = {}
        #: Every call made, as (method, its arguments).
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.reactions: set[tuple[str, str, str]] = set()
        #: Files attached in threads, deleted ones included (``deleted``).
        self.attachments: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        #: The workspaces the engine asked for, in order.
        self.workspaces_asked: list[Workspace] = []
        #: The names people go by, by user id.
        self.people: dict[str, str] = {}
        self._clock = clock
        self._ts = itertools.count(1)
        self._file_ids = itertools.count(1)

    def files_in(self, thread_ts: str) -> list[dict[str, Any]]:
        """The files attached in the thread and not deleted."""
        return [
            attachment
            for attachment in self.attachments
            if attachment["thread_ts"] == thread_ts and not attachment["deleted"]
        ]

    def _called(self, method: str, **arguments: Any) -> None:
        self.calls.append((method, arguments))
        self.failures.raise_next(method)

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    def thread(self, thread_ts: str) -> list[Message]:
        return [message for message in self.messages.values() if message.thread_ts == thread_ts]

    async def file_info(self, file_id: str) -> dict[str, Any]:
        self._called("file_info", file_id=file_id)
        return self.files[file_id]

    async def add_reaction(self, channel: str, ts: str, name: str) -> None:
        self._called("add_reaction", channel=channel, ts=ts, name=name)
        self.reactions.add((channel, ts, name))

    async def remove_reaction(self, channel: str, ts: str, name: str) -> None:
        self._called("remove_reaction", channel=channel, ts=ts, name=name)
        self.reactions.discard((channel, ts, name))

    async def post_reply(
        self,
        *,
        channel: str,
        thread_ts: str,
        text: Mrkdwn,
        blocks: Sequence[Block],
        batch_id: str,
        final: bool = True,
    ) -> str:
        self._called("post_reply", channel=channel, thread_ts=thread_ts, text=text, final=final)
        ts = f"1800000000.{next(self._ts):06d}"
        self.messages[ts] = Message(channel, ts, thread_ts, text, batch_id, final, list(blocks))
        self.failures.crash_if_asked("post_reply")
        return ts

    async def update_message(
        self,
        *,
        channel: str,
        ts: str,
        text: Mrkdwn,
        blocks: Sequence[Block],
        batch_id: str,
        final: bool,
    ) -> None:
        self._called("update_message", channel=channel, ts=ts, text=text, final=final)
        message = self.messages.get(ts)
        if message is None:
            raise slack_error("message_not_found")
        message.text, message.blocks, message.final = text, list(blocks), final
        self.failures.crash_if_asked("update_message")

    async def upload_text(
        self, *, channel: str, thread_ts: str, filename: PlainText, title: PlainText, content: str
    ) -> list[str]:
        self._called("upload_text", channel=channel, thread_ts=thread_ts, filename=filename)
        file_id = f"F{next(self._file_ids):04d}"
        self.attachments.append(
            {
                "id": file_id,
                "thread_ts": thread_ts,
                "filename": filename,
                "content": content,
                "at": self._clock() if self._clock else None,
                "deleted": False,
            }
        )
        self.failures.crash_if_asked("upload_text")
        return [file_id]

    async def delete_file(self, file_id: str) -> None:
        self._called("delete_file", file_id=file_id)
        for attachment in self.attachments:
            if attachment["id"] == file_id:
                attachment["deleted"] = True
        self.failures.crash_if_asked("delete_file")

    async def thread_files(
        self, *, channel: str, thread_ts: str, since: datetime, until: datetime | None = None
    ) -> list[ThreadFile]:
        self._called("thread_files", channel=channel, thread_ts=thread_ts)
        return [
            ThreadFile(attachment["id"], attachment["filename"], "1800000000.000000")
            for attachment in self.files_in(thread_ts)
            if attachment["at"] is None
            or (attachment["at"] >= since and (until is None or attachment["at"] <= until))
        ]

    async def user_name(self, user: str) -> str | None:
        self._called("user_name", user=user)
        return self.people.get(user)

    async def thread_state(
        self, *, channel: str, thread_ts: str, batch_id: str, since: datetime
    ) -> ThreadState:
        self._called("thread_state", channel=channel, thread_ts=thread_ts, batch_id=batch_id)
        ours = [message for message in self.thread(thread_ts) if message.batch_id == batch_id]
        return ThreadState(
            reply_ts=next((message.ts for message in ours if message.final), None),
            status_ts=next((message.ts for message in ours if not message.final), None),
            file_names={attachment["filename"] for attachment in self.files_in(thread_ts)},
        )


class LocalDownloader:
    """Slack's files by download URL, written to the spool as Slack would send them."""

    def __init__(self) -> None:
        self.contents: dict[str, bytes] = {}
        self.downloads: list[str] = []
        self.failures = Failures()

    async def download(
        self,
        url: str,
        destination: Path,
        *,
        token: SecretStr,
        max_bytes: int,
        too_large_message: str | None = None,
    ) -> int:
        self.downloads.append(url)
        self.failures.raise_next("download")
        content = self.contents[url]
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
        return len(content)
