"""What ``/healthz`` answers: whether the process does its work, and what the operator must fix."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from bot.runtime import Runtime
from storage.models import ProviderAccountProblem

#: A poll cycle older than this (and at least a minute) means the clock or the cycle is stuck.
STALE_POLL_INTERVALS = 10
MIN_STALE_POLL_SECONDS = 60.0
#: The single-workspace bot's workspace removed the app: its bot token was revoked with it.
UNINSTALLED = (
    "slack: the app was uninstalled from this bot's workspace and its data there erased; "
    "SLACK_BOT_TOKEN no longer works: install the app again, set the new bot token and restart"
)
#: A database that does not answer a ``SELECT 1`` in this long is as good as down.
HEALTH_DB_TIMEOUT_SECONDS = 2.0


async def health_report(runtime: Runtime, *, started_at: datetime) -> tuple[bool, dict[str, Any]]:
    """Every check, and whether they all pass.

    A process can be up and serving HTTP while doing no work (the scheduler stopped, a poll cycle
    hung on a lock, the database file gone, PostgreSQL out of reach); an orchestrator only
    restarts it if this says so. The database check is a ``SELECT 1`` through the store's own
    connection (or pool), so it fails when the bot's work would.
    """
    problems: list[str] = []
    jobs_in_flight: int | None = None
    accounts: list[ProviderAccountProblem] = []
    uninstalled = False
    try:
        database = await asyncio.wait_for(runtime.store.ping(), timeout=HEALTH_DB_TIMEOUT_SECONDS)
        if database:
            jobs_in_flight = await asyncio.wait_for(
                runtime.store.count_unfinished_jobs(), timeout=HEALTH_DB_TIMEOUT_SECONDS
            )
            accounts = await asyncio.wait_for(
                runtime.store.account_problems(), timeout=HEALTH_DB_TIMEOUT_SECONDS
            )
            if runtime.own_workspace is not None:
                uninstalled = await asyncio.wait_for(
                    runtime.store.workspace_removed(runtime.own_workspace),
                    timeout=HEALTH_DB_TIMEOUT_SECONDS,
                )
    except Exception as exc:
        database = False
        problems.append(f"database: {type(exc).__name__}")
    else:
        if not database:
            problems.append("database: no answer to SELECT 1")
    scheduler = runtime.scheduler.running
    if not scheduler:
        problems.append("scheduler is not running")
    age, stale_after, stale = _poll_staleness(runtime, started_at)
    if stale is not None:
        problems.append(stale)
    healthy = not problems
    # The process is fine and restarting it cannot help: still healthy, but degraded, and said.
    problems += [account_problem_text(account) for account in accounts]
    if uninstalled:
        problems.append(UNINSTALLED)
    degraded = bool(accounts) or uninstalled
    return healthy, {
        "status": "unhealthy" if not healthy else "degraded" if degraded else "ok",
        "backend": runtime.store.backend,
        "database": database,
        "scheduler": scheduler,
        "last_poll_age_seconds": None if age is None else round(age, 3),
        "poll_stale_after_seconds": stale_after,
        "jobs_in_flight": jobs_in_flight,
        "steps_running": runtime.engine.steps_running,
        "provider_accounts": [
            {
                "provider": account.provider,
                "reason": account.reason,
                "since": account.since.isoformat(timespec="seconds"),
            }
            for account in accounts
        ],
        "problems": problems,
    }


def _poll_staleness(
    runtime: Runtime, started_at: datetime
) -> tuple[float | None, float, str | None]:
    """The last poll cycle's age, how old it may get, and the problem if it is older."""
    interval = runtime.settings.poll_interval_seconds
    stale_after = max(MIN_STALE_POLL_SECONDS, STALE_POLL_INTERVALS * interval)
    last = runtime.engine.last_cycle_at
    now = runtime.clock()
    age = None if last is None else (now - last).total_seconds()
    # Until the first poll cycle completes, staleness is measured from the start.
    waited = (now - started_at).total_seconds() if last is None else age
    if waited is not None and waited > stale_after:
        problem = f"no poll cycle completed for {waited:.0f} s (expected every {interval:g} s)"
        return age, stale_after, problem
    return age, stale_after, None


def account_problem_text(problem: ProviderAccountProblem) -> str:
    """One line for the operator: which account, since when, what it said, and what to do."""
    return (
        f"the {problem.provider} account refuses new work since "
        f"{problem.since.isoformat(timespec='seconds')} ({problem.reason}: {problem.detail}); "
        f"an admin needs to add funds or raise its limit. Files wait meanwhile and go on by "
        f"themselves once it works"
    )
