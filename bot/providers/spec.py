"""What a provider module declares so the app can use it: one :class:`ProviderSpec`.

A spec ties together what the rest of the app needs to know about a provider without importing
it by name:

* its **name** (stored on every batch and job, and the prefix of its settings), its **label** (how
  people read it in answers) and its **limits** (the largest file, the longest recording): the
  class attributes of its :class:`~bot.providers.base.Provider` subclass, where the pipeline reads
  them. Limits that depend on the account (jobs in flight, files and bytes stored) are set on
  each instance by the factory, from the provider's settings;
* its **settings**: a :class:`ProviderSettings` model. Field ``api_key`` of provider ``soniox`` is
  the variable ``SONIOX_API_KEY``; the :class:`~pydantic.SecretStr` fields are its secrets, masked
  in logs; ``required`` names the fields it cannot work without;
* its **factory**: the settings model's :meth:`ProviderSettings.build`, which gets the settings
  typed as the provider declared them;
* its **webhook route**, if it reports finished work by calling the app back.

:mod:`bot.providers.registry` lists the specs; config, the CLI, ``/transcribe provider``, log
masking and the HTTP routes read that list.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.providers.base import Provider

#: The header carrying the token that proves a webhook call comes from the provider we told.
WEBHOOK_HEADER = "X-Threadscribe-Webhook-Token"

_NAME = re.compile(r"[a-z][a-z0-9]*")


@dataclass(frozen=True)
class WebhookTarget:
    """Where a provider should report finished work, and the header proving the call is ours."""

    url: str
    header_name: str
    header_value: str = field(repr=False)


@dataclass(frozen=True)
class WebhookRoute:
    """The route a provider calls back on (below ``PUBLIC_URL``) when work ends.

    The call only wakes the poll for that work: it is checked against the header token, and the
    poll that follows fetches the outcome, so a notice is never trusted with more than that.
    """

    path: str
    #: The provider's id of the finished work, read from the call's JSON body; raises
    #: ``ValueError``, ``KeyError`` or ``TypeError`` on a body that is not a notice.
    finished_id: Callable[[Any], str]
    #: What the 400 answer to a malformed body says it expected.
    expected_body: str
    #: The longest webhook URL the provider accepts, when it has a limit.
    max_url_length: int | None = None
    header_name: str = WEBHOOK_HEADER


@dataclass(frozen=True)
class ProviderContext:
    """What every provider is built with besides its own settings."""

    #: The app's one HTTP client, shared by every provider and Slack file downloads.
    http: httpx.AsyncClient
    #: Where to report finished work; None when the app takes no webhooks (Socket Mode, no
    #: ``PUBLIC_URL``) or the provider declares no route.
    webhook: WebhookTarget | None = None


class ProviderSettings(BaseSettings):
    """One provider's own settings, read from variables prefixed with its name.

    The registry gives the prefix (``SONIOX_``), so a model names its fields plainly
    (``api_key``). Defaults and checks are the model's own, as for any pydantic model.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    @abstractmethod
    def build(self, context: ProviderContext) -> Provider:
        """The provider these settings describe; called only when every required field is set."""

    def secret_values(self) -> list[str]:
        """The values of every secret field that is set, for log masking."""
        return [value.get_secret_value() for _, value in self if isinstance(value, SecretStr)]


@dataclass(frozen=True)
class ProviderSpec:
    """One provider as the app knows it: its class (name, label, limits), its settings, which of
    them it needs, and its webhook route."""

    provider: type[Provider]
    settings: type[ProviderSettings]
    #: The fields of ``settings`` that must be set for the provider to count as configured.
    required: tuple[str, ...] = ()
    webhook: WebhookRoute | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"provider name {self.name!r} must be a lower-case word")
        unknown = set(self.required) - set(self.settings.model_fields)
        if unknown:
            raise ValueError(f"{self.name}: required settings {sorted(unknown)} are not fields")

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def label(self) -> str:
        return self.provider.display_name

    @property
    def prefix(self) -> str:
        """What the names of its settings start with: ``soniox_`` (``SONIOX_`` in the
        environment)."""
        return f"{self.name}_"

    def variable(self, field_name: str) -> str:
        """The environment variable of one of its settings: ``api_key`` → ``SONIOX_API_KEY``."""
        return f"{self.prefix}{field_name}".upper()

    @property
    def variables(self) -> list[str]:
        return [self.variable(name) for name in self.settings.model_fields]

    def missing(self, settings: ProviderSettings) -> list[str]:
        """The variables of required settings that are not set."""
        return [self.variable(name) for name in self.required if getattr(settings, name) is None]

    def build(self, settings: ProviderSettings, context: ProviderContext) -> Provider:
        if not isinstance(settings, self.settings):
            raise TypeError(f"{self.name} is built from {self.settings.__name__}")
        return settings.build(context)


class ConfiguredProviders(Protocol):
    """What building the providers needs from the app's settings (:class:`bot.config.Settings`)."""

    def provider_settings(self, name: str) -> ProviderSettings | None: ...

    def webhook_target(self, spec: ProviderSpec) -> WebhookTarget | None: ...
