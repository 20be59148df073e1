"""Speech-to-text providers. :mod:`bot.providers.base` holds the interface,
:mod:`bot.providers.spec` what each provider declares, :mod:`bot.providers.registry` the list."""

from __future__ import annotations

import httpx

from bot.providers.base import Provider
from bot.providers.registry import specs
from bot.providers.spec import ConfiguredProviders, ProviderContext


def build_providers(
    settings: ConfiguredProviders, client: httpx.AsyncClient
) -> dict[str, Provider]:
    """Every provider that has credentials, by name."""
    providers: dict[str, Provider] = {}
    for spec in specs():
        own = settings.provider_settings(spec.name)
        if own is not None and not spec.missing(own):
            context = ProviderContext(client, webhook=settings.webhook_target(spec))
            providers[spec.name] = spec.build(own, context)
    return providers
