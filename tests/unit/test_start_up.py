"""A start that fails part-way leaves nothing open behind it: not the database, and on SQLite
not its process lock, which would keep the next start (or ``check``'s lock test) from working."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from pydantic import SecretStr

from bot.app import build_runtime, running_bot
from bot.errors import PermanentError
from bot.providers import registry
from bot.providers.base import Progress, Provider, ProviderJob, Submitted, Uploaded
from bot.providers.spec import ProviderContext, ProviderSettings, ProviderSpec
from storage.sqlite import SQLiteStore
from storage.sqlite.lock import ProcessLock
from tests.conftest import SettingsFactory


class RegionalProvider(Provider):
    """Never built: its settings refuse the region they are given."""

    name = "regional"
    display_name = "Regional"

    async def check_credentials(self) -> None:
        raise NotImplementedError

    async def upload(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded | PermanentError]:
        raise NotImplementedError

    async def submit(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted | PermanentError]:
        raise NotImplementedError

    async def poll(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Progress]:
        raise NotImplementedError

    async def clean_up(self, jobs: Sequence[ProviderJob]) -> None:
        raise NotImplementedError


class RegionalSettings(ProviderSettings):
    token: SecretStr | None = None
    region: str = "mars"

    def build(self, context: ProviderContext) -> Provider:
        raise ValueError(f"no service in region {self.region}")


@pytest.fixture(autouse=True)
def regional_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ProviderSpec(provider=RegionalProvider, settings=RegionalSettings, required=("token",))
    monkeypatch.setattr(registry, "PROVIDERS", (*registry.PROVIDERS, spec))


async def test_a_start_that_fails_after_opening_the_database_closes_it(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(regional_token="t0ken-regional")
    for start in (lambda: build_runtime(settings), lambda: running_bot(settings).__aenter__()):
        with pytest.raises(ValueError, match="no service in region mars"):
            await start()
        assert not ProcessLock.is_held(settings.database_path), "the lock went with the store"
    store = await SQLiteStore.open(settings.database_path)  # the next start
    await store.close()
