"""The metrics module and its call sites: label hygiene, what each recording function counts, and
the page served at /metrics.

The counters are per process, so every assertion compares a value before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.errors import RateLimited, TemporaryError
from bot.providers.base import send
from bot.slack_api import SlackGateway
from storage.models import BatchState, JobState
from tests.fakes.slack import FakeSlack

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def request(method: str, url: str) -> httpx.Request:
    return httpx.Request(method, url)


# -- endpoint labels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "endpoint"),
    [
        ("POST", "https://api.soniox.com/v1/files", "POST /v1/files"),
        (
            "GET",
            "https://api.soniox.com/v1/transcriptions/6a1f0c2e-93b4-4d0b-9f54-2c6f0e1d7a11",
            "GET /v1/transcriptions/{id}",
        ),
        (
            "GET",
            "https://api.soniox.com/v1/transcriptions/6a1f0c2e93b4/transcript?x=1",
            "GET /v1/transcriptions/{id}/transcript",
        ),
        (
            "GET",
            "https://api.soket.ai/transcribe/results/batch/b-12ab?page=2",
            "GET /transcribe/results/batch/{id}",
        ),
        (
            "GET",
            "https://files.slack.com/files-pri/T0TEAM-F0FILE/download/all%20hands.wav",
            "GET /files-pri/{id}/download/{id}",
        ),
        ("DELETE", "https://x.test/files/abcdefghijklmnopqrstuvwxyzab", "DELETE /files/{id}"),
    ],
)
def test_endpoint_labels_never_carry_ids_or_file_names(
    method: str, url: str, endpoint: str
) -> None:
    assert metrics.endpoint_of(request(method, url)) == endpoint


def test_endpoints_beyond_the_cap_are_counted_as_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_endpoints", set())
    monkeypatch.setattr(metrics, "MAX_ENDPOINTS", 2)
    assert metrics.endpoint_of(request("GET", "https://x.test/alpha")) == "GET /alpha"
    assert metrics.endpoint_of(request("GET", "https://x.test/beta")) == "GET /beta"
    assert metrics.endpoint_of(request("GET", "https://x.test/gamma")) == "other"
    assert metrics.endpoint_of(request("GET", "https://x.test/alpha")) == "GET /alpha"


# -- provider calls through send() ---------------------------------------------------------------


@pytest.fixture
def answers() -> Iterator[list[httpx.Response | Exception]]:
    queue: list[httpx.Response | Exception] = []
    yield queue
    assert queue == [], "every planned answer was used"


@pytest.fixture
async def client(answers: list[httpx.Response | Exception]) -> httpx.AsyncClient:
    def handler(_: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        yield http  # type: ignore[misc]


async def test_send_counts_every_call_by_status_and_each_failure_by_kind(
    client: httpx.AsyncClient, answers: list[httpx.Response | Exception]
) -> None:
    url = "https://api.test/v1/transcriptions/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    labels = {"service": "soniox", "endpoint": "GET /v1/transcriptions/{id}"}

    def calls(status: str) -> float:
        return value("threadscribe_provider_requests_total", **labels, status=status)

    def errors(kind: str) -> float:
        return value("threadscribe_provider_request_errors_total", **labels, kind=kind)

    before = {
        "200": calls("200"),
        "404": calls("404"),
        "429": calls("429"),
        "503": calls("503"),
        "timeout": calls("timeout"),
        "connection_error": calls("connection_error"),
    }
    kinds_before = {
        kind: errors(kind)
        for kind in ("client_error", "rate_limited", "server_error", "timeout", "connection")
    }
    durations = value("threadscribe_provider_request_duration_seconds_count", **labels)

    answers.extend(
        [
            httpx.Response(200, json={"status": "processing"}),
            httpx.Response(404, json={"error_type": "transcription_not_found"}),
            httpx.Response(429, text="slow down", headers={"Retry-After": "3"}),
            httpx.Response(503, text="maintenance"),
            httpx.ReadTimeout("read timed out"),
            httpx.ConnectError("refused"),
        ]
    )
    assert (await send(client, client.build_request("GET", url), what="soniox get")).is_success
    assert (await send(client, client.build_request("GET", url), what="soniox get")).is_error
    with pytest.raises(RateLimited):
        await send(client, client.build_request("GET", url), what="soniox get")
    for _ in range(3):
        with pytest.raises(TemporaryError):
            await send(client, client.build_request("GET", url), what="soniox get")

    assert {status: calls(status) - count for status, count in before.items()} == {
        "200": 1,
        "404": 1,
        "429": 1,
        "503": 1,
        "timeout": 1,
        "connection_error": 1,
    }
    assert {kind: errors(kind) - count for kind, count in kinds_before.items()} == {
        "client_error": 1,
        "rate_limited": 1,
        "server_error": 1,
        "timeout": 1,
        "connection": 1,
    }
    assert value("threadscribe_provider_request_duration_seconds_count", **labels) == (
        durations + 6
    )


# -- delivery latency, poll cycles ---------------------------------------------------------------


def test_observe_delivery_records_the_time_from_shared_to_posted() -> None:
    count = value("threadscribe_transcription_latency_seconds_count", provider="soket")
    total = value("threadscribe_transcription_latency_seconds_sum", provider="soket")
    in_first_minute = value(
        "threadscribe_transcription_latency_seconds_bucket", provider="soket", le="60.0"
    )

    metrics.observe_delivery(T0, T0 + timedelta(seconds=42), provider="soket")

    assert value("threadscribe_transcription_latency_seconds_count", provider="soket") == (
        count + 1
    )
    assert value("threadscribe_transcription_latency_seconds_sum", provider="soket") == (
        pytest.approx(total + 42)
    )
    assert value(
        "threadscribe_transcription_latency_seconds_bucket", provider="soket", le="60.0"
    ) == (in_first_minute + 1)


def test_a_clock_step_backwards_is_recorded_as_zero_not_negative() -> None:
    total = value("threadscribe_transcription_latency_seconds_sum", provider="soniox")
    metrics.observe_delivery(T0, T0 - timedelta(seconds=5), provider="soniox")
    assert value("threadscribe_transcription_latency_seconds_sum", provider="soniox") == total


def test_poll_cycle_timer_counts_cycles_and_failures() -> None:
    cycles = value("threadscribe_poll_cycle_duration_seconds_count")
    failures = value("threadscribe_poll_cycle_failures_total")

    with metrics.poll_cycle_timer():
        pass
    assert value("threadscribe_poll_cycle_last_success_timestamp_seconds") > 0
    with pytest.raises(RuntimeError), metrics.poll_cycle_timer():
        raise RuntimeError("a bug in one cycle")

    assert value("threadscribe_poll_cycle_duration_seconds_count") == cycles + 2
    assert value("threadscribe_poll_cycle_failures_total") == failures + 1


# -- Slack API errors --------------------------------------------------------------------------


async def test_slack_gateway_counts_errors_by_method_and_code(fake_slack: FakeSlack) -> None:
    gateway = SlackGateway(AsyncWebClient(token=fake_slack.bot_token, base_url=fake_slack.api_url))
    posted = value("threadscribe_slack_api_calls_total", method="chat.postMessage")
    not_found = value(
        "threadscribe_slack_api_errors_total", method="files.info", error="file_not_found"
    )
    no_reaction = value(
        "threadscribe_slack_api_errors_total", method="reactions.remove", error="no_reaction"
    )
    event = fake_slack.message_event(text="hello")

    await gateway.post_reply(
        channel="C0GENERAL", thread_ts=event["ts"], text="hi", blocks=[], batch_id="b-1"
    )
    with pytest.raises(SlackApiError):
        await gateway.file_info("F0MISSING")
    # A reaction that is already gone is what the caller expects: not an error worth counting.
    await gateway.remove_reaction("C0GENERAL", event["ts"], "hourglass_flowing_sand")

    assert value("threadscribe_slack_api_calls_total", method="chat.postMessage") == posted + 1
    assert value(
        "threadscribe_slack_api_errors_total", method="files.info", error="file_not_found"
    ) == (not_found + 1)
    assert value(
        "threadscribe_slack_api_errors_total", method="reactions.remove", error="no_reaction"
    ) == (no_reaction)


def test_odd_error_codes_are_folded_into_other() -> None:
    before = value("threadscribe_slack_api_errors_total", method="chat.postMessage", error="other")
    metrics.record_slack_error("chat.postMessage", "a code with spaces and <html>")
    after = value("threadscribe_slack_api_errors_total", method="chat.postMessage", error="other")
    assert after == before + 1


# -- the page ------------------------------------------------------------------------------------


def test_page_lists_every_state_of_every_provider_with_zeros() -> None:
    snapshot = metrics.StateSnapshot(
        {("completed", "soniox"): 3, ("processing", "soket"): 2},
        {"delivered": 3, "open": 1},
        providers=["soniox", "soket"],
        units_in_flight=1,
    )
    families = {
        family.name: family
        for family in text_string_to_metric_families(metrics.render(snapshot).decode())
    }

    jobs = {
        (sample.labels["state"], sample.labels["provider"]): sample.value
        for sample in families["threadscribe_jobs"].samples
    }
    assert jobs[("completed", "soniox")] == 3
    assert jobs[("processing", "soket")] == 2
    assert jobs[("failed", "soniox")] == 0
    assert len(jobs) == 2 * len(JobState), "every job state for each of the two providers"
    batches = {s.labels["state"]: s.value for s in families["threadscribe_batches"].samples}
    assert batches == {state.value: 0 for state in BatchState} | {"delivered": 3, "open": 1}
    assert families["threadscribe_units_in_flight"].samples[0].value == 1
    # The process-wide families are on the same page.
    assert "threadscribe_provider_requests" in families
    assert "threadscribe_poll_cycle_duration_seconds" in families
    assert "process_resident_memory_bytes" in families


def test_page_without_a_database_snapshot_still_has_the_process_figures() -> None:
    names = {f.name for f in text_string_to_metric_families(metrics.render(None).decode())}
    assert "threadscribe_jobs" not in names
    assert "threadscribe_transcription_latency_seconds" in names
