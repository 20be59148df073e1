"""Prometheus metrics, served as text at ``GET /metrics``.

Two kinds of figures live here:

* **Events** counted where they happen (provider HTTP calls, poll cycles, Slack API errors,
  delivered transcripts). They sit in :data:`REGISTRY`, one per process, because the call sites
  (``send()``, the scheduler, the Slack gateway) are shared by everything in the process. It is
  not Prometheus' global default registry, so importing a library that registers its own metrics
  there cannot change what we serve, and tests that build many runtimes never register twice.
* **State** read from the database at scrape time (jobs by state and provider, batches by
  state). Counting rows on each scrape is never out of step with the truth, survives restarts,
  and needs no bookkeeping on every state change.

Label values are kept to small, fixed sets: an endpoint is a method and a path template with ids
replaced, never a raw id or file name, so a busy workspace cannot blow up the number of series.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from storage.models import BatchState, JobState

__all__ = [
    "CONTENT_TYPE",
    "REGISTRY",
    "StateSnapshot",
    "endpoint_of",
    "observe_delivery",
    "observe_http_request",
    "poll_cycle_timer",
    "record_provider_call",
    "record_slack_call",
    "record_slack_error",
    "render",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()
# Memory, CPU, open files and GC of the bot process: the first things to look at when it misbehaves.
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

#: From a minute (a voice memo) to several hours (a backlog, or a provider outage).
LATENCY_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 1800, 3600, 7200, 21600)
#: Quick JSON calls take milliseconds; an upload of hundreds of MB takes minutes.
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
#: A healthy cycle is milliseconds; seconds mean the database or a provider is slow.
CYCLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

DELIVERY_LATENCY = Histogram(
    "threadscribe_transcription_latency_seconds",
    "Time from a message with audio being recorded to its transcript reply being posted.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
PROVIDER_REQUESTS = Counter(
    "threadscribe_provider_requests",
    "HTTP calls to providers (and Slack file downloads), by endpoint and HTTP status "
    "(or timeout / connection_error).",
    ["service", "endpoint", "status"],
    registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "threadscribe_provider_request_errors",
    "Failed HTTP calls to providers: timeout, connection, rate_limited, server_error or "
    "client_error (4xx other than 429, some of which callers expect, such as a 404 on delete).",
    ["service", "endpoint", "kind"],
    registry=REGISTRY,
)
PROVIDER_SECONDS = Histogram(
    "threadscribe_provider_request_duration_seconds",
    "Duration of HTTP calls to providers, request body included (for streamed downloads: until "
    "the response headers).",
    ["service", "endpoint"],
    buckets=REQUEST_BUCKETS,
    registry=REGISTRY,
)
POLL_CYCLE_SECONDS = Histogram(
    "threadscribe_poll_cycle_duration_seconds",
    "Duration of one poll cycle (transfers run in the background and are not included).",
    buckets=CYCLE_BUCKETS,
    registry=REGISTRY,
)
POLL_CYCLE_FAILURES = Counter(
    "threadscribe_poll_cycle_failures",
    "Poll cycles that ended with an unexpected error (the next tick tries again).",
    registry=REGISTRY,
)
POLL_CYCLE_LAST_SUCCESS = Gauge(
    "threadscribe_poll_cycle_last_success_timestamp_seconds",
    "Unix time at which the last poll cycle completed; alert on time() minus this.",
    registry=REGISTRY,
)
WEBHOOKS_MISSED = Counter(
    "threadscribe_webhooks_missed",
    "Jobs a fallback poll found finished before their provider's webhook arrived: webhooks are "
    "not reaching PUBLIC_URL (or arrive late), and replies wait for the fallback poll.",
    ["provider"],
    registry=REGISTRY,
)
SLACK_API_CALLS = Counter(
    "threadscribe_slack_api_calls",
    "Slack Web API calls the bot made, by method.",
    ["method"],
    registry=REGISTRY,
)
SLACK_API_ERRORS = Counter(
    "threadscribe_slack_api_errors",
    "Slack Web API calls that failed after slack-sdk's retries, by method and error code.",
    ["method", "error"],
    registry=REGISTRY,
)

HTTP_SECONDS = Histogram(
    "threadscribe_http_request_duration_seconds",
    "Time the bot's HTTP server took to answer, by route; for /slack/events this is the ack "
    "Slack waits for (it retries after 3 s).",
    ["path"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10),
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "threadscribe_http_requests",
    "Requests to the bot's HTTP server, by route and status (401: a bad Slack signature).",
    ["path", "status"],
    registry=REGISTRY,
)

# -- label hygiene ---------------------------------------------------------------------------------

#: A path segment kept as it is: a lowercase word such as ``transcriptions`` or ``files-pri``.
_WORD_SEGMENT = re.compile(r"[a-z][a-z_]*(?:-[a-z_]+)*")
_VERSION_SEGMENT = re.compile(r"v\d{1,2}")
_MAX_WORD_SEGMENT = 24
_SAFE_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Beyond this many distinct endpoints, new ones are counted as ``other``: a hard cap on series in
#: case a caller ever puts something unbounded (a file name without digits) in a URL path.
MAX_ENDPOINTS = 64
_endpoints: set[str] = set()


def endpoint_of(request: httpx.Request) -> str:
    """``METHOD /path/template`` with every id-like segment replaced by ``{id}``.

    A segment stays only when it reads like a resource name (lowercase letters, ``_``, ``-``,
    short) or an API version (``v1``); uuids, hex ids, Slack ids and file names all become
    ``{id}``.
    """
    parts = []
    for segment in request.url.path.split("/"):
        if not segment:
            continue
        if (
            len(segment) <= _MAX_WORD_SEGMENT and _WORD_SEGMENT.fullmatch(segment)
        ) or _VERSION_SEGMENT.fullmatch(segment):
            parts.append(segment)
        else:
            parts.append("{id}")
    endpoint = f"{request.method} /{'/'.join(parts)}"
    if endpoint not in _endpoints:
        if len(_endpoints) >= MAX_ENDPOINTS:
            return "other"
        _endpoints.add(endpoint)
    return endpoint


def _service_of(what: str) -> str:
    """The first word of ``send()``'s ``what``: a provider's name, or ``slack``."""
    word = what.split(" ", 1)[0].lower()
    return word if _WORD_SEGMENT.fullmatch(word) and len(word) <= 16 else "other"


def _safe(value: str) -> str:
    """A label value from outside (a Slack error code): short and plain, or ``other``."""
    return value if _SAFE_LABEL.fullmatch(value) else "other"


def _error_kind(status: int | str) -> str | None:
    if status == "timeout":
        return "timeout"
    if status == "connection_error":
        return "connection"
    assert isinstance(status, int)
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return None


# -- recording -------------------------------------------------------------------------------------


def record_provider_call(
    what: str, request: httpx.Request, status: int | str, seconds: float
) -> None:
    """Count one HTTP call made through ``bot.providers.base.send``.

    ``status`` is the HTTP status, or ``"timeout"`` / ``"connection_error"`` when no answer came.
    """
    service, endpoint = _service_of(what), endpoint_of(request)
    PROVIDER_REQUESTS.labels(service, endpoint, str(status)).inc()
    PROVIDER_SECONDS.labels(service, endpoint).observe(seconds)
    kind = _error_kind(status)
    if kind is not None:
        PROVIDER_ERRORS.labels(service, endpoint, kind).inc()


def observe_delivery(
    created_at: datetime, delivered_at: datetime, *, provider: str = "unknown"
) -> None:
    """Record the time a batch took from being recorded to its reply being posted."""
    seconds = (delivered_at - created_at).total_seconds()
    DELIVERY_LATENCY.labels(_safe(provider)).observe(max(0.0, seconds))


@contextmanager
def poll_cycle_timer() -> Iterator[None]:
    """Time the block as one poll cycle; an exception counts as a failed cycle and goes on."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        POLL_CYCLE_FAILURES.inc()
        raise
    else:
        POLL_CYCLE_LAST_SUCCESS.set_to_current_time()
    finally:
        POLL_CYCLE_SECONDS.observe(time.perf_counter() - started)


def observe_http_request(path: str, status: int, seconds: float) -> None:
    """Record one answer of the bot's own server; ``path`` is a route, never a raw URL."""
    HTTP_SECONDS.labels(path).observe(seconds)
    HTTP_REQUESTS.labels(path, str(status)).inc()


def record_slack_call(method: str) -> None:
    SLACK_API_CALLS.labels(_safe(method)).inc()


def record_slack_error(method: str, error: str) -> None:
    SLACK_API_ERRORS.labels(_safe(method), _safe(error or "unknown")).inc()


# -- state at scrape time --------------------------------------------------------------------------


class StateSnapshot:
    """A collector for one scrape: the database's counts, read just before by the caller.

    ``collect()`` must be synchronous, and the database is not, so the counts are read first and
    handed over here instead of being queried from inside ``collect()``.
    """

    def __init__(
        self,
        jobs: Mapping[tuple[str, str], int],
        batches: Mapping[str, int],
        *,
        providers: Iterable[str] = (),
        units_in_flight: int = 0,
        account_problems: Iterable[tuple[str, str]] = (),
        account_problem_reasons: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self._jobs = jobs
        self._batches = batches
        self._providers = providers
        self._units_in_flight = units_in_flight
        #: (provider, reason) of each account refusing new work now.
        self._account_problems = set(account_problems)
        #: Per provider, every reason it can report: each gets a series, at zero when it does
        #: not stand.
        self._account_problem_reasons = account_problem_reasons or {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "threadscribe_jobs",
            "Jobs (one file or link each) in the database, by state and provider.",
            labels=["state", "provider"],
        )
        # Every state of every known provider, zeros included, so a series never vanishes when
        # its count drops to zero (an absent series looks like "no data", not "none").
        providers = sorted({*self._providers, *(provider for _, provider in self._jobs)})
        states = [state.value for state in JobState]
        states += sorted({state for state, _ in self._jobs} - set(states))
        for provider in providers:
            for state in states:
                jobs.add_metric([state, _safe(provider)], self._jobs.get((state, provider), 0))
        yield jobs

        batches = GaugeMetricFamily(
            "threadscribe_batches",
            "Batches (one Slack message each) in the database, by state.",
            labels=["state"],
        )
        batch_states = [state.value for state in BatchState]
        batch_states += sorted(set(self._batches) - set(batch_states))
        for state in batch_states:
            batches.add_metric([state], self._batches.get(state, 0))
        yield batches

        yield GaugeMetricFamily(
            "threadscribe_units_in_flight",
            "Units of work (a job, or a batch-native provider's batch) with a step running now.",
            value=self._units_in_flight,
        )

        accounts = GaugeMetricFamily(
            "threadscribe_provider_account_problem",
            "1 while a provider account refuses new work until an admin acts (its balance or a "
            "budget is used up), by provider and the provider's reason; files wait meanwhile.",
            labels=["provider", "reason"],
        )
        series = {
            (provider, reason)
            for provider, reasons in self._account_problem_reasons.items()
            for reason in reasons
        }
        for provider, reason in sorted(series | self._account_problems):
            accounts.add_metric(
                [_safe(provider), _safe(reason)], int((provider, reason) in self._account_problems)
            )
        yield accounts


def render(snapshot: StateSnapshot | None) -> bytes:
    """The whole ``/metrics`` page: process-wide counters, then the scrape's database state."""
    page = generate_latest(REGISTRY)
    if snapshot is not None:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(snapshot)
        page += generate_latest(scrape)
    return page
