"""Settings, read from the environment and a ``.env`` file in the working directory.

The variable names are part of the operator contract (see the README): they may gain siblings but
are never renamed. A bad configuration stops the start with one message listing every problem, so
an operator fixes everything in one go instead of one restart per mistake.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProviderName(StrEnum):
    SONIOX = "soniox"
    SOKET = "soket"


WEBHOOK_HEADER = "X-Threadscribe-Webhook-Token"
#: Where Soniox is asked to report finished transcriptions, below ``PUBLIC_URL``.
SONIOX_WEBHOOK_PATH = "/webhooks/soniox"
#: Soniox refuses a ``webhook_url`` longer than this, and with it every transcription.
SONIOX_WEBHOOK_URL_MAX = 256


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    header_name: str
    header_value: str = field(repr=False)


class ConfigError(Exception):
    """The configuration cannot run the bot; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        return f"threadscribe cannot start; fix these settings:\n{lines}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: AnyHttpUrl = AnyHttpUrl("https://slack.com/api/")

    transcribe_provider: ProviderName = ProviderName.SONIOX

    soniox_api_key: SecretStr | None = None
    soniox_api_url: AnyHttpUrl = AnyHttpUrl("https://api.soniox.com/v1")
    soniox_model: str = "stt-async-v5"

    soket_api_token: SecretStr | None = None
    soket_api_url: AnyHttpUrl = AnyHttpUrl("https://api.soket.ai/transcribe")

    #: Public https base URL of this deployment (HTTP mode): Soniox then calls
    #: ``$PUBLIC_URL/webhooks/soniox`` when a transcription ends, instead of waiting for a poll.
    public_url: AnyHttpUrl | None = None

    database_path: Path = Path("./threadscribe.db")
    poll_interval_seconds: Annotated[float, Field(gt=0)] = 5
    port: Annotated[int, Field(ge=0, le=65535)] = 3000
    max_file_mb: Annotated[int, Field(gt=0)] = 500
    log_level: str = "INFO"
    #: ``json`` writes one JSON object per line, for log collectors that index fields.
    log_format: Literal["text", "json"] = "text"

    #: Where downloads wait between Slack and the provider; next to the database by default, so a
    #: restart finds them again.
    spool_dir: Path | None = None
    #: A job older than this fails with a clear reason instead of retrying forever.
    job_max_age_hours: Annotated[float, Field(gt=0)] = 6
    #: Soniox transcriptions submitted and not finished at once; Soniox refuses more than 100.
    soniox_max_pending: Annotated[int, Field(ge=1, le=100)] = 50
    #: Files, and megabytes, the bot keeps at Soniox at once: Soniox keeps at most 1,000 files
    #: and 10 GB per account (more on request), and refuses uploads beyond. 9536 MiB stays under
    #: 10 GB even if Soniox counts 10^10 bytes.
    soniox_max_files: Annotated[int, Field(ge=1)] = 1000
    soniox_max_storage_mb: Annotated[int, Field(ge=1)] = 9536
    #: Transcripts are erased from the database this many days after delivery.
    retention_days: Annotated[float, Field(gt=0)] = 30
    #: A batch running longer than this gets a progress message in its thread.
    progress_after_seconds: Annotated[float, Field(ge=0)] = 5
    #: Transfers (download + upload) running at once.
    max_concurrent_transfers: Annotated[int, Field(ge=1)] = 4

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("transcribe_provider", mode="before")
    @classmethod
    def _lower_provider(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    # -- derived -----------------------------------------------------------------------------

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def soniox_webhook(self) -> WebhookTarget | None:
        """Where Soniox should report finished transcriptions, and the header proving it.

        The header value is derived from the signing secret: unguessable, different for every
        deployment, and the same after a restart, so transcriptions in flight still match.
        """
        if self.public_url is None or self.socket_mode or self.slack_signing_secret is None:
            return None
        secret = self.slack_signing_secret.get_secret_value().encode()
        token = hmac.new(secret, b"threadscribe soniox webhook", hashlib.sha256).hexdigest()
        return WebhookTarget(
            url=str(self.public_url).rstrip("/") + SONIOX_WEBHOOK_PATH,
            header_name=WEBHOOK_HEADER,
            header_value=token,
        )

    @property
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.database_path.parent / "spool"

    def provider_configured(self, provider: ProviderName) -> bool:
        if provider is ProviderName.SONIOX:
            return self.soniox_api_key is not None
        return self.soket_api_token is not None

    def cross_field_problems(self, *, need_slack: bool = True) -> list[str]:
        problems = []
        if need_slack and self.slack_bot_token is None:
            problems.append("SLACK_BOT_TOKEN is required (the bot token, xoxb-…)")
        if need_slack and not self.socket_mode and self.slack_signing_secret is None:
            problems.append(
                "SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for "
                "Socket Mode)"
            )
        if not self.provider_configured(self.transcribe_provider):
            key = (
                "SONIOX_API_KEY"
                if self.transcribe_provider is ProviderName.SONIOX
                else "SOKET_API_TOKEN"
            )
            problems.append(
                f"{key} is required because TRANSCRIBE_PROVIDER is {self.transcribe_provider.value}"
            )
        webhook = self.soniox_webhook
        if (
            webhook is not None
            and self.soniox_api_key is not None
            and len(webhook.url) > SONIOX_WEBHOOK_URL_MAX
        ):
            # Caught here, not by Soniox: it would refuse every transcription for it.
            longest = SONIOX_WEBHOOK_URL_MAX - len(SONIOX_WEBHOOK_PATH)
            problems.append(
                f"PUBLIC_URL is too long: Soniox takes a webhook URL of at most "
                f"{SONIOX_WEBHOOK_URL_MAX} characters, and PUBLIC_URL{SONIOX_WEBHOOK_PATH} has "
                f"{len(webhook.url)}; use a base URL of at most {longest} characters"
            )
        return problems


def _describe(error: ErrorDetails) -> str:
    name = str(error["loc"][0]).upper() if error["loc"] else "configuration"
    if error["type"] == "missing":
        return f"{name} is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}: {message}"


def load_settings(*, need_slack: bool = True, **overrides: Any) -> Settings:
    """Read the settings, or raise :class:`ConfigError` naming every problem at once.

    ``need_slack=False`` is for commands that never talk to Slack (``transcribe``).
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        problems = [_describe(error) for error in errors]
        # The other checks too, with each invalid setting taken as unset: every problem is
        # named in one go, not one more after each fix.
        invalid = {str(error["loc"][0]) for error in errors if error["loc"]}
        defaults = {name: Settings.model_fields[name].default for name in invalid}
        try:
            partial = Settings(**{**overrides, **defaults})
        except ValidationError:
            raise ConfigError(problems) from None
        named = {name.upper() for name in invalid}
        problems += [
            problem
            for problem in partial.cross_field_problems(need_slack=need_slack)
            if problem.split(" ", 1)[0] not in named
        ]
        raise ConfigError(problems) from None
    problems = settings.cross_field_problems(need_slack=need_slack)
    if problems:
        raise ConfigError(problems)
    return settings
