"""Log output: one event per line in both formats, JSON that parses, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from bot.config import ConfigError, load_settings
from bot.logs import (
    MASK,
    RedactSecrets,
    SecretRegistry,
    build_handler,
    configure_logging,
    redacted_output,
)

BOT_TOKEN = "xoxb-1234-5678-abcdefghijklmnop"
SONIOX_KEY = "soniox-secret-key-0123456789"


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger that writes JSON through the real handler into a buffer."""
    out = io.StringIO()
    logger = logging.getLogger("bot.test_logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = build_handler([BOT_TOKEN, SONIOX_KEY], "json", stream=out)
    logger.addHandler(handler)
    yield logger, out
    logger.removeHandler(handler)
    logger.propagate = True


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_each_event_is_one_json_object_with_the_standard_fields(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    logger.info("batch %s: reply posted in %s", "b-1a2b3c4d", "C0GENERAL")
    logger.warning("job %s: temporary failure\nsecond line", "f00d")

    first, second = lines(out)
    assert first["message"] == "batch b-1a2b3c4d: reply posted in C0GENERAL"
    assert first["level"] == "INFO"
    assert first["logger"] == "bot.test_logs"
    assert isinstance(first["time"], str)
    assert first["time"].endswith("Z") and "T" in first["time"]
    assert "exc_info" not in first
    assert second["message"] == "job f00d: temporary failure\nsecond line"


def test_a_traceback_stays_inside_its_event(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    try:
        raise RuntimeError("provider said no")
    except RuntimeError:
        logger.exception("poll cycle failed")

    (event,) = lines(out)
    assert event["level"] == "ERROR"
    assert event["message"] == "poll cycle failed"
    assert isinstance(event["exc_info"], str)
    assert "Traceback" in event["exc_info"]
    assert "RuntimeError: provider said no" in event["exc_info"]


def test_secrets_are_masked_in_messages_arguments_and_tracebacks(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = capture
    logger.debug("Authorization: Bearer %s", BOT_TOKEN)
    logger.info(f"calling with key={SONIOX_KEY}")
    try:
        raise ValueError(f"bad header {BOT_TOKEN}")
    except ValueError:
        logger.exception("request failed for %s", {"token": SONIOX_KEY})
    logger.info("stack", stack_info=True, extra={"unused": BOT_TOKEN})

    text = out.getvalue()
    assert BOT_TOKEN not in text
    assert SONIOX_KEY not in text
    events = lines(out)
    assert len(events) == 4
    assert events[0]["message"] == f"Authorization: Bearer {MASK}"
    assert events[1]["message"] == f"calling with key={MASK}"
    assert MASK in str(events[2]["message"]) and MASK in str(events[2]["exc_info"])


def test_text_format_keeps_the_classic_line() -> None:
    out = io.StringIO()
    handler = build_handler([BOT_TOKEN], "text", stream=out)
    record = logging.LogRecord("bot.x", logging.INFO, __file__, 1, "token %s", (BOT_TOKEN,), None)
    assert handler.filter(record)
    handler.emit(record)
    assert out.getvalue().rstrip().endswith(f"INFO bot.x: token {MASK}")


def test_configure_logging_installs_one_json_handler_on_the_root() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        configure_logging("DEBUG", [BOT_TOKEN], "json")
        assert len(root.handlers) == 1
        assert root.level == logging.DEBUG
        formatted = root.handlers[0].format(
            logging.LogRecord("bot", logging.INFO, __file__, 1, "hello", None, None)
        )
        assert json.loads(formatted)["message"] == "hello"
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def test_log_format_setting_is_case_insensitive_and_checked() -> None:
    base = {"slack_bot_token": BOT_TOKEN, "slack_app_token": "xapp-1", "_env_file": None}
    base |= {"soniox_api_key": SONIOX_KEY}
    assert load_settings(**base).log_format == "text"
    assert load_settings(**base, log_format="JSON").log_format == "json"
    with pytest.raises(ConfigError) as raised:
        load_settings(**base, log_format="xml")
    assert any(problem.startswith("LOG_FORMAT") for problem in raised.value.problems)


def test_skipped_scheduler_ticks_are_not_logged_but_other_scheduler_warnings_are() -> None:
    out = io.StringIO()
    logger = logging.getLogger("apscheduler.scheduler")
    handler = build_handler([], "json", stream=out)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            'Execution of job "%s" skipped: maximum number of running instances reached (%d)',
            "poll-cycle",
            1,
        )
        logger.warning('Run time of job "%s" was missed by %s', "poll-cycle", "0:00:02")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    (event,) = lines(out)
    assert "was missed" in str(event["message"])


def test_the_password_of_any_url_is_masked_however_short() -> None:
    out = io.StringIO()
    url = "postgresql://bot:pw@db.internal:5432/threadscribe"
    handler = build_handler([url, "pw"], "text", stream=out)
    for message, args in (
        ("connecting to %s", (url,)),
        ("connecting to postgresql://other:hunter2@db:5432/x?sslmode=require", ()),
    ):
        record = logging.LogRecord("bot.x", logging.INFO, __file__, 1, message, args, None)
        assert handler.filter(record)
        handler.emit(record)
    text = out.getvalue()
    assert ":pw@" not in text and "hunter2" not in text
    assert f"postgresql://other:{MASK}@db:5432/x?sslmode=require" in text
    assert "http://host:8080/path" in RedactSecrets([]).redact("http://host:8080/path")


def test_secrets_learnt_while_running_are_masked_from_then_on() -> None:
    out = io.StringIO()
    registry = SecretRegistry()
    logger = logging.getLogger("bot.test_logs.learnt")
    logger.propagate = False
    handler = build_handler([], "text", stream=out, registry=registry)
    logger.addHandler(handler)
    try:
        # Not shaped like a Slack token: only learning it masks it.
        secret = "refresh-secret-0123456789"
        registry.add(secret, None, "short")
        logger.warning("kept %s", secret)
        registry.add("another-secret-abcdef")
        logger.warning("and %s after %s", "another-secret-abcdef", secret)
    finally:
        logger.removeHandler(handler)
    written = out.getvalue()
    assert "secret-0123" not in written and "another-secret" not in written
    assert written.count(MASK) == 3


def test_anything_shaped_like_a_slack_token_is_masked_unknown() -> None:
    redact = RedactSecrets([], SecretRegistry()).redact
    for token in (
        "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
        "xoxe.xoxb-1-MS0yLTIyMTk4OTQ1",
        "xoxe-1-My0xLTIyMTk4OTQ1NjctMjU",
        "xoxp-1234-5678-abcdef",
        "xapp-1-A0APP-1234-abcdef",
    ):
        assert (
            redact(f"answer {{'access_token': '{token}'}}")
            == f"answer {{'access_token': '{MASK}'}}"
        )
    # The words that name a kind of token are not tokens.
    said = "must be a bot token starting with xoxb- (or xoxe.xoxb-…)"
    assert redact(said) == said


def test_the_registry_keeps_the_latest_secrets_only() -> None:
    registry = SecretRegistry(limit=2)
    registry.add("secret-number-1", "secret-number-2")
    before = registry.version
    registry.add("secret-number-2")
    assert registry.version == before
    registry.add("secret-number-3")
    assert registry.secrets()[1] == ["secret-number-2", "secret-number-3"]


def test_a_password_given_as_a_setting_is_masked() -> None:
    redact = RedactSecrets([]).redact
    assert redact("postgresql://bot@db/x?sslmode=require&password=hunter2") == (
        f"postgresql://bot@db/x?sslmode=require&password={MASK}"
    )
    assert redact("host=db password='hun ter2' user=bot") == f"host=db password={MASK} user=bot"


def test_what_a_command_prints_is_masked_as_the_logs_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with redacted_output([SONIOX_KEY, "hun ter2"]):
        print('Cannot migrate: missing "=" after "POSTGRESQL://bot:hun ter2@db/x"')
        print(f"key {SONIOX_KEY} refused", file=sys.stderr)
    print("after: not masked hun ter2")
    out, err = capsys.readouterr()
    assert out == (
        f'Cannot migrate: missing "=" after "POSTGRESQL://bot:{MASK}@db/x"\n'
        "after: not masked hun ter2\n"
    )
    assert err == f"key {MASK} refused\n"
