"""Speech-to-text providers. :mod:`bot.providers.base` holds the interface."""

from __future__ import annotations

import httpx

from bot.config import ProviderName, Settings
from bot.providers.base import Provider
from bot.providers.soket import SoketProvider
from bot.providers.soniox import SonioxProvider


def build_providers(settings: Settings, client: httpx.AsyncClient) -> dict[str, Provider]:
    """Every provider that has credentials, by name."""
    providers: dict[str, Provider] = {}
    if settings.soniox_api_key is not None:
        providers[ProviderName.SONIOX.value] = SonioxProvider(
            client,
            api_url=str(settings.soniox_api_url),
            api_key=settings.soniox_api_key.get_secret_value(),
            model=settings.soniox_model,
            max_pending=settings.soniox_max_pending,
            max_files=settings.soniox_max_files,
            max_storage_bytes=settings.soniox_max_storage_mb * 1024 * 1024,
            webhook=settings.soniox_webhook,
        )
    if settings.soket_api_token is not None:
        providers[ProviderName.SOKET.value] = SoketProvider(
            client,
            api_url=str(settings.soket_api_url),
            api_token=settings.soket_api_token.get_secret_value(),
        )
    return providers
