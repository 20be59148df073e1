"""Settings, read from the environment and a ``.env`` file in the working directory.

The variable names are part of the operator contract (see the README): they may gain siblings but
are never renamed. A bad configuration stops the start with one message listing every problem, so
an operator fixes everything in one go instead of one restart per mistake.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.providers.registry import ProviderName, spec_named, specs
from bot.providers.spec import ProviderSettings, ProviderSpec, WebhookTarget
from storage.postgres.urls import url_problem, url_secrets

__all__ = ["ConfigError", "ProviderName", "Settings", "WebhookTarget", "load_settings"]


#: Bolt's own routes for the install page and the redirect after it.
DEFAULT_INSTALL_PATH = "/slack/install"
DEFAULT_REDIRECT_PATH = "/slack/oauth_redirect"

#: The routes the app serves already, which the OAuth ones must not take.
_TAKEN_PATHS = ("/slack/events", "/healthz", "/metrics")
_TAKEN_PREFIXES = ("/webhooks/",)

#: Hosts a browser reaches on its own machine: the only ones a plain http redirect may use.
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")

#: A Slack app's Client ID: digits, a dot, digits (``1234567890.9876543210``).
_CLIENT_ID = re.compile(r"[0-9]+\.[0-9]+")


class ConfigError(Exception):
    """The configuration cannot run the bot; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        return f"threadscribe cannot start; fix these settings:\n{lines}"


class Settings(BaseSettings):
    """The app's own settings, and through the registry each provider's: ``<PROVIDER>_API_KEY``
    is field ``api_key`` of that provider's settings (:meth:`provider_settings`)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: AnyHttpUrl = AnyHttpUrl("https://slack.com/api/")

    #: The app's credentials (its Basic Information page), with which it installs itself in
    #: other workspaces through OAuth and refreshes their rotating tokens.
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    #: Where Slack sends the browser back after an install: one of the app's redirect URLs.
    #: Unset, Slack uses the app's only one.
    slack_redirect_uri: AnyHttpUrl | None = None
    #: The routes, on ``PORT``, of the "Add to Slack" page and of Slack's redirect after it.
    slack_install_path: str = DEFAULT_INSTALL_PATH
    slack_redirect_path: str = DEFAULT_REDIRECT_PATH

    transcribe_provider: ProviderName = ProviderName("soniox")

    #: Public https base URL of this deployment (HTTP mode): a provider with a webhook route
    #: then calls ``$PUBLIC_URL/webhooks/<provider>`` when a transcription ends, instead of
    #: waiting for a poll.
    public_url: AnyHttpUrl | None = None

    #: ``postgresql://user:password@host:5432/database`` selects PostgreSQL, which several
    #: processes may share; unset, the bot keeps its work in the SQLite file at ``database_path``.
    database_url: SecretStr | None = None
    database_path: Path = Path("./threadscribe.db")
    #: How long a process holds the work it claimed without renewing its lease (it renews every
    #: third of it): after a crash, how long that work waits before another process takes it.
    lease_seconds: Annotated[float, Field(gt=0)] = 30
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
    #: Transcripts are erased from the database this many days after delivery.
    retention_days: Annotated[float, Field(gt=0)] = 30
    #: A batch running longer than this gets a progress message in its thread.
    progress_after_seconds: Annotated[float, Field(ge=0)] = 5
    #: Transfers (download + upload) running at once.
    max_concurrent_transfers: Annotated[int, Field(ge=1)] = 4
    #: In a channel that asked for it (``/transcribe confidence on``), a word the provider is
    #: less sure of than this (0 to 1) is marked in the reply.
    confidence_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5

    #: Each registered provider's settings, by provider name.
    _providers: dict[str, ProviderSettings] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        """Read these settings and every registered provider's, from ``values`` (named like
        the variables, in lower case: ``<provider>_api_key``), the environment and ``.env``.

        One :class:`ValidationError` names every invalid setting, the providers' included.
        """
        options = {key: value for key, value in values.items() if key.startswith("_")}
        app: dict[str, Any] = {}
        per_provider: dict[str, dict[str, Any]] = {spec.name: {} for spec in specs()}
        for key, value in values.items():
            found = _provider_field(key)
            if found is None:
                app[key] = value
            else:
                per_provider[found[0].name][found[1]] = value
        errors: list[InitErrorDetails] = []
        providers: dict[str, ProviderSettings] = {}
        for spec in specs():
            own = per_provider[spec.name]
            try:
                sources = {**options, "_env_prefix": spec.prefix}
                providers[spec.name] = spec.settings(**sources, **own)
            except ValidationError as exc:
                errors += _renamed(exc, spec.prefix)
        try:
            super().__init__(**app)
        except ValidationError as exc:
            errors = _renamed(exc, "") + errors
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        self._providers = providers

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

    @field_validator("slack_client_id", mode="before")
    @classmethod
    def _client_id_shape(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return None
        if not _CLIENT_ID.fullmatch(value):
            raise ValueError(
                "must be the app's Client ID as its Basic Information page shows it "
                "(digits, a dot, digits)"
            )
        return value

    @field_validator("slack_client_secret")
    @classmethod
    def _client_secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if any(character.isspace() for character in value.get_secret_value().strip()):
            raise ValueError("must be the app's Client Secret, without spaces")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("slack_redirect_uri", mode="before")
    @classmethod
    def _empty_redirect_uri(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("slack_redirect_uri")
    @classmethod
    def _https_redirect_uri(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        # Slack takes only https redirect URLs; plain http is left for a browser on this machine.
        if value is not None and value.scheme != "https" and value.host not in _LOOPBACK_HOSTS:
            raise ValueError("must be an https URL, as Slack requires of redirect URLs")
        if value is not None and (value.query or value.fragment):
            raise ValueError("must have no query or fragment: Slack adds its own query")
        return value

    @field_validator("slack_install_path", "slack_redirect_path")
    @classmethod
    def _route_path(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*", value) or "//" in value:
            raise ValueError("must be a path starting with / (no query, no spaces)")
        if value in _TAKEN_PATHS or value.startswith(_TAKEN_PREFIXES) or value == "/":
            raise ValueError(f"{value} is a route the app serves already; choose another path")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        problem = url_problem(value.get_secret_value())
        if problem is not None:
            raise ValueError(problem)
        return SecretStr(value.get_secret_value().strip())

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
    def max_file_bytes(self) -> int:
        return self.max_file_mb * 1024 * 1024

    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.database_path.parent / "spool"

    def provider_settings(self, name: str) -> ProviderSettings | None:
        """The settings of provider ``name``; None for a name not registered."""
        return self._providers.get(name)

    def provider_configured(self, name: str) -> bool:
        spec, own = spec_named(name), self._providers.get(name)
        return spec is not None and own is not None and not spec.missing(own)

    def webhook_target(self, spec: ProviderSpec) -> WebhookTarget | None:
        """Where ``spec``'s provider should report finished work, and the header proving it;
        None when it has no webhook route, in Socket Mode, or without ``PUBLIC_URL``.

        The header value is derived from the signing secret: unguessable, different for every
        deployment, and the same after a restart, so transcriptions in flight still match.
        """
        route = spec.webhook
        if route is None or self.public_url is None or self.socket_mode:
            return None
        if self.slack_signing_secret is None:
            return None
        secret = self.slack_signing_secret.get_secret_value().encode()
        message = f"threadscribe {spec.name} webhook".encode()
        return WebhookTarget(
            url=str(self.public_url).rstrip("/") + route.path,
            header_name=route.header_name,
            header_value=hmac.new(secret, message, hashlib.sha256).hexdigest(),
        )

    def secret_values(self) -> list[str]:
        """Every secret that is set, the app's and each provider's: logs and the commands'
        output never show them. The database URL's password counts on its own too (as written
        and decoded, in the user part or the query), as a driver may show it apart; the whole
        URL counts only when it holds one: without, it names a server, which ``check`` and the
        errors must be able to show."""
        own = [
            value.get_secret_value()
            for name, value in self
            if isinstance(value, SecretStr) and name != "database_url"
        ]
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
            passwords = url_secrets(url)
            own += [url, *passwords] if passwords else []
        return own + [
            secret for provider in self._providers.values() for secret in provider.secret_values()
        ]

    if not TYPE_CHECKING:
        # Scripts and tests may read a provider's setting as its variable spells it
        # (``settings.<provider>_api_key``), and its webhook target as
        # ``settings.<provider>_webhook``. Kept from the type checker, so the bot itself uses
        # the typed accessors above.
        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                found = _provider_field(name)
                if found is not None:
                    spec, field_name = found
                    return getattr(self._providers[spec.name], field_name)
                spec = spec_named(name.removesuffix("_webhook"))
                if name.endswith("_webhook") and spec is not None:
                    return self.webhook_target(spec)
                raise

    def cross_field_problems(
        self, *, need_slack: bool = True, need_provider: bool = True
    ) -> list[str]:
        problems = []
        # Half of the OAuth pair is named below: then the bot token is not what is missing.
        no_oauth = self.slack_client_id is None and self.slack_client_secret is None
        if need_slack and self.slack_bot_token is None and no_oauth:
            problems.append(
                "SLACK_BOT_TOKEN is required (the bot token, xoxb-…) for one workspace; for "
                "many, set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET instead"
            )
        if need_slack and not self.socket_mode and self.slack_signing_secret is None:
            problems.append(
                "SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for "
                "Socket Mode)"
            )
        problems += self._oauth_problems()
        default = spec_named(self.transcribe_provider.value)
        own = self._providers.get(self.transcribe_provider.value)
        if need_provider and default is not None and own is not None:
            problems += [
                f"{variable} is required because TRANSCRIBE_PROVIDER is {default.name}"
                for variable in default.missing(own)
            ]
        for spec in specs():
            problems += self._webhook_problems(spec)
        return problems

    def _oauth_problems(self) -> list[str]:
        problems = []
        if (self.slack_client_id is None) != (self.slack_client_secret is None):
            given, missing = (
                ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET")
                if self.slack_client_id is not None
                else ("SLACK_CLIENT_SECRET", "SLACK_CLIENT_ID")
            )
            problems.append(
                f"{missing} is required with {given} (both are on the app's Basic Information page)"
            )
        if self.slack_install_path == self.slack_redirect_path:
            problems.append(
                "SLACK_INSTALL_PATH and SLACK_REDIRECT_PATH must differ (both are "
                f"{self.slack_install_path})"
            )
        return problems

    @property
    def multi_workspace(self) -> bool:
        """Installed in many workspaces through OAuth, each with its own bot token: the app's
        Client ID and Secret are set and no ``SLACK_BOT_TOKEN`` (which means one workspace)."""
        return self.slack_bot_token is None and self.oauth_configured

    @property
    def oauth_configured(self) -> bool:
        """The app's Client ID and Secret are set: it can install itself in workspaces through
        OAuth and refresh rotating tokens."""
        return self.slack_client_id is not None and self.slack_client_secret is not None

    def _webhook_problems(self, spec: ProviderSpec) -> list[str]:
        webhook, route = self.webhook_target(spec), spec.webhook
        if webhook is None or route is None or route.max_url_length is None:
            return []
        if not self.provider_configured(spec.name) or len(webhook.url) <= route.max_url_length:
            return []
        # Caught here, not by the provider: it would refuse every transcription for it.
        longest = route.max_url_length - len(route.path)
        return [
            f"PUBLIC_URL is too long: {spec.label} takes a webhook URL of at most "
            f"{route.max_url_length} characters, and PUBLIC_URL{route.path} has "
            f"{len(webhook.url)}; use a base URL of at most {longest} characters"
        ]


def setting_names() -> list[str]:
    """Every variable the app reads, its own and each registered provider's."""
    return [name.upper() for name in Settings.model_fields] + [
        variable for spec in specs() for variable in spec.variables
    ]


def _provider_field(name: str) -> tuple[ProviderSpec, str] | None:
    """The provider and field that ``<provider>_api_key`` names; None for the app's own
    settings."""
    for spec in specs():
        field_name = name.removeprefix(spec.prefix)
        if name.startswith(spec.prefix) and field_name in spec.settings.model_fields:
            return spec, field_name
    return None


def _default(name: str) -> Any:
    found = _provider_field(name)
    if found is not None:
        spec, field_name = found
        return spec.settings.model_fields[field_name].default
    return Settings.model_fields[name].default


def _renamed(exc: ValidationError, prefix: str) -> list[InitErrorDetails]:
    """``exc``'s errors, each setting named with ``prefix`` (``<provider>_`` + ``api_key``)."""
    renamed = []
    for error in exc.errors():
        loc = error["loc"]
        detail = InitErrorDetails(
            type=error["type"],
            loc=(f"{prefix}{loc[0]}", *loc[1:]) if loc else loc,
            input=error["input"],
        )
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        renamed.append(detail)
    return renamed


def _describe(error: ErrorDetails) -> str:
    name = str(error["loc"][0]).upper() if error["loc"] else "configuration"
    if error["type"] == "missing":
        return f"{name} is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}: {message}"


def load_settings(
    *, need_slack: bool = True, need_provider: bool = True, **overrides: Any
) -> Settings:
    """Read the settings, or raise :class:`ConfigError` naming every problem at once.

    ``need_slack=False`` is for commands that never talk to Slack (``transcribe``), and
    ``need_provider=False`` for those that never call a provider either (``migrate``).
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        problems = [_describe(error) for error in errors]
        # The other checks too, with each invalid setting taken as unset: every problem is
        # named in one go, not one more after each fix.
        invalid = {str(error["loc"][0]) for error in errors if error["loc"]}
        defaults = {name: _default(name) for name in invalid}
        try:
            partial = Settings(**{**overrides, **defaults})
        except ValidationError:
            raise ConfigError(problems) from None
        named = {name.upper() for name in invalid}
        problems += [
            problem
            for problem in partial.cross_field_problems(
                need_slack=need_slack, need_provider=need_provider
            )
            if problem.split(" ", 1)[0] not in named
        ]
        raise ConfigError(problems) from None
    problems = settings.cross_field_problems(need_slack=need_slack, need_provider=need_provider)
    if problems:
        raise ConfigError(problems)
    return settings
