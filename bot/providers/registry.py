"""The providers this app can use: one line per provider module.

A new provider is a module beside these (a :class:`~bot.providers.base.Provider` subclass, its
:class:`~bot.providers.spec.ProviderSettings` and a ``SPEC``) and one line in :data:`PROVIDERS`.
Everything else (settings and their checks, ``check``, ``transcribe --provider``,
``/transcribe provider``, log masking, webhook routes, metrics) reads it from here.
"""

from __future__ import annotations

from enum import StrEnum

from bot.providers import soket, soniox
from bot.providers.spec import ProviderSpec

PROVIDERS: tuple[ProviderSpec, ...] = (
    soniox.SPEC,
    soket.SPEC,
)

#: The names of :data:`PROVIDERS` as an enum, the type of ``TRANSCRIBE_PROVIDER``. Built once, at
#: import: a spec added to :data:`PROVIDERS` later can be set up and chosen per channel, but not
#: be the default.
ProviderName = StrEnum(  # type: ignore[misc]  # the members come from PROVIDERS
    "ProviderName", {spec.name.upper(): spec.name for spec in PROVIDERS}
)


def specs() -> tuple[ProviderSpec, ...]:
    return PROVIDERS


def names() -> list[str]:
    return [spec.name for spec in PROVIDERS]


def spec_named(name: str) -> ProviderSpec | None:
    return next((spec for spec in PROVIDERS if spec.name == name), None)


def label_of(name: str) -> str:
    """How people read provider ``name``; the name itself for one no longer registered."""
    spec = spec_named(name)
    return spec.label if spec is not None else name
