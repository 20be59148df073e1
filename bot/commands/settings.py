"""A channel's settings: ``/transcribe provider``, ``auto`` and ``language``. Each shows the
setting without arguments, and changes it (for new work only) with them."""

from __future__ import annotations

from collections.abc import Sequence

from bot.commands.context import CommandContext, CommandError
from bot.commands.parsing import parse_language_setting
from bot.messages import answers
from bot.messages.words import quoted
from bot.providers import registry
from bot.slack_text import Mrkdwn
from storage.models import Workspace


async def provider(
    ctx: CommandContext, workspace: Workspace, channel: str, args: Sequence[str]
) -> Mrkdwn:
    settings = await ctx.store.channel_settings(workspace, channel)
    available = quoted(sorted(ctx.providers)) or answers.NO_PROVIDERS
    if not args:
        current = settings.provider or ctx.default_provider
        return answers.provider_shown(
            registry.label_of(current),
            chosen=bool(settings.provider),
            set_up=current in ctx.providers,
            missing=_variables_missing(current),
            available=available,
        )
    if len(args) > 1:
        raise CommandError(answers.one_provider_only(registry.names()[0]))
    name = args[0].lower()
    if registry.spec_named(name) is None:
        raise CommandError(answers.no_such_provider(args[0], available))
    if name not in ctx.providers:
        raise CommandError(
            answers.provider_not_set_up(
                registry.label_of(name), _variables_missing(name), available
            )
        )
    settings.provider = name
    await ctx.store.save_channel_settings(workspace, settings, ctx.clock())
    return answers.provider_chosen(registry.label_of(name))


async def auto(
    ctx: CommandContext, workspace: Workspace, channel: str, args: Sequence[str]
) -> Mrkdwn:
    settings = await ctx.store.channel_settings(workspace, channel)
    if args:
        if len(args) > 1 or args[0].lower() not in ("on", "off"):
            raise CommandError(answers.AUTO_TAKES_ON_OR_OFF)
        settings.auto = args[0].lower() == "on"
        await ctx.store.save_channel_settings(workspace, settings, ctx.clock())
    return answers.auto_shown(settings.auto, changed=bool(args))


async def language(
    ctx: CommandContext, workspace: Workspace, channel: str, args: Sequence[str]
) -> Mrkdwn:
    settings = await ctx.store.channel_settings(workspace, channel)
    if args:
        settings.language_hints, settings.language_hints_strict = parse_language_setting(args)
        await ctx.store.save_channel_settings(workspace, settings, ctx.clock())
    keep = [spec.label for spec in registry.specs() if spec.provider.keeps_to_language_hints]
    lean = [spec.label for spec in registry.specs() if not spec.provider.keeps_to_language_hints]
    return answers.languages_shown(
        settings.language_hints,
        settings.language_hints_strict,
        answers.who_keeps_to_hints(keep, lean),
        changed=bool(args),
    )


def _variables_missing(provider: str) -> str | None:
    """The settings ``provider`` needs, as an admin sets them (``<PROVIDER>_API_KEY``)."""
    spec = registry.spec_named(provider)
    return " and ".join(spec.variable(name) for name in spec.required) if spec else None
