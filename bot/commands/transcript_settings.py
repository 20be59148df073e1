"""What a channel asks of its transcripts besides their languages: ``/transcribe vocabulary``,
``context``, ``translate`` and ``confidence``. Each shows the setting without arguments, and
changes it (for new work only) with them.

Each needs a provider that supports it, as its class declares (``supports_context``,
``supports_translation``, ``reports_confidence``): on a channel whose provider does not, each
says so plainly, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.commands.context import CommandContext, CommandError
from bot.commands.parsing import parse_terms, parse_translation
from bot.languages import language_name
from bot.messages import answers
from bot.providers import registry
from bot.providers.base import Provider
from bot.slack_text import Mrkdwn
from storage.models import ChannelSettings, Workspace

#: The longest term of a vocabulary: a word or a name, not a paragraph.
MAX_TERM_CHARS = 100

Supports = Callable[[type[Provider]], bool]


def _takes_context(provider: type[Provider]) -> bool:
    return provider.supports_context


def _translates(provider: type[Provider]) -> bool:
    return provider.supports_translation


def _reports_confidence(provider: type[Provider]) -> bool:
    return provider.reports_confidence


async def vocabulary(
    ctx: CommandContext, workspace: Workspace, channel: str, args: Sequence[str]
) -> Mrkdwn:
    settings = await ctx.store.channel_settings(workspace, channel)
    provider, label = _provider(ctx, settings, _takes_context, answers.VOCABULARY)
    verb = args[0].lower() if args else "list"
    if verb == "list" and len(args) <= 1:
        return answers.vocabulary_shown(settings.vocabulary, label)
    if verb == "clear" and len(args) == 1:
        settings.vocabulary = []
        await ctx.store.save_channel_settings(workspace, settings, ctx.clock())
        return answers.VOCABULARY_CLEARED
    if verb not in ("add", "remove"):
        raise CommandError(answers.VOCABULARY_USAGE)
    terms = parse_terms(" ".join(args[1:]))
    if not terms:
        raise CommandError(answers.no_terms_given(verb))
    known = {term.casefold() for term in settings.vocabulary}
    if verb == "add":
        too_long = next((term for term in terms if len(term) > MAX_TERM_CHARS), None)
        if too_long is not None:
            raise CommandError(answers.term_too_long(too_long, MAX_TERM_CHARS))
        added = [term for term in terms if term.casefold() not in known]
        already = [term for term in terms if term.casefold() in known]
        grown = [*settings.vocabulary, *added]
        _check_size(provider, label, grown, settings.context)
        if added:
            settings.vocabulary = grown
            await ctx.store.save_channel_settings(workspace, settings, ctx.clock())
        return answers.vocabulary_added(added, already, len(grown))
    asked = {term.casefold() for term in terms}
    removed = [term for term in settings.vocabulary if term.casefold() in asked]
    unknown = [term for term in terms if term.casefold() not in known]
    kept = [term for term in settings.vocabulary if term.casefold() not in asked]
    if removed:
        settings.vocabulary = kept
        await ctx.store.save_channel_settings(workspace, settings, ctx.clock())
    return answers.vocabulary_removed(removed, unknown, len(kept))


async def context(
    ctx: CommandContext, workspace: Workspace, channel: str, args: Sequence[str]
) -> Mrkdwn:
    settings = await ctx.store.channel_settings(workspace, channel)
    provider, label = _provider(ctx, settings, _takes_context, answers.CONTEXT)
    if not args:
        return answers.context_shown(settings.context, label, changed=False)
    if len(args) == 1 and args[0].lower() == "clear":
        settings.context = None
    else:
        settings.context = " ".join(args)
        _check_size(provider, label, settings.vocabulary, settings.context)
    await ctx.store.save_channel_settings(workspace, settings, ctx.clock())
    return answers.context_shown(settings.context, label, changed=True)


async def translate(
    ctx: CommandContext, workspace: Workspace, channel: str, args: Sequence[str]
) -> Mrkdwn:
    settings = await ctx.store.channel_settings(workspace, channel)
    provider, label = _provider(ctx, settings, _translates, answers.TRANSLATION)
    if args:
        settings.translation = parse_translation(args, provider.translation_languages, label)
        await ctx.store.save_channel_settings(workspace, settings, ctx.clock())
    named = [(code, language_name(code) or code) for code in settings.translation]
    return answers.translation_shown(named, changed=bool(args))


async def confidence(
    ctx: CommandContext, workspace: Workspace, channel: str, args: Sequence[str]
) -> Mrkdwn:
    settings = await ctx.store.channel_settings(workspace, channel)
    _, label = _provider(ctx, settings, _reports_confidence, answers.DOUBTFUL_WORDS)
    if args:
        if len(args) > 1 or args[0].lower() not in ("on", "off"):
            raise CommandError(answers.CONFIDENCE_TAKES_ON_OR_OFF)
        settings.mark_doubtful = args[0].lower() == "on"
        await ctx.store.save_channel_settings(workspace, settings, ctx.clock())
    return answers.confidence_shown(
        settings.mark_doubtful, ctx.confidence_threshold, label, changed=bool(args)
    )


def status_lines(ctx: CommandContext, settings: ChannelSettings) -> list[Mrkdwn]:
    """What ``status`` shows of these settings: those the channel set, each marked when its
    provider does not use it."""
    spec = registry.spec_named(settings.provider or ctx.default_provider)
    provider = spec.provider if spec is not None else None
    label = registry.label_of(settings.provider or ctx.default_provider)
    shown: list[tuple[Mrkdwn, Supports]] = []
    if settings.vocabulary:
        shown.append((answers.vocabulary_for_new_work(settings.vocabulary), _takes_context))
    if settings.context:
        shown.append((answers.context_for_new_work(settings.context), _takes_context))
    if settings.translation:
        names = [language_name(code) or code for code in settings.translation]
        shown.append((answers.translation_for_new_work(names), _translates))
    if settings.mark_doubtful:
        shown.append((answers.DOUBTFUL_WORDS_MARKED, _reports_confidence))
    return [
        line if provider is not None and supports(provider) else answers.unused_by(line, label)
        for line, supports in shown
    ]


def customizing_labels() -> list[str]:
    """The providers that support all of these, as people read them."""
    every = (_takes_context, _translates, _reports_confidence)
    return [
        spec.label
        for spec in registry.specs()
        if all(supports(spec.provider) for supports in every)
    ]


def _provider(
    ctx: CommandContext, settings: ChannelSettings, supports: Supports, feature: str
) -> tuple[type[Provider], str]:
    """The channel's provider and its label, when it ``supports`` the ``feature`` asked for."""
    name = settings.provider or ctx.default_provider
    spec = registry.spec_named(name)
    label = registry.label_of(name)
    if spec is None or not supports(spec.provider):
        others = [
            (other.name, other.label)
            for other in registry.specs()
            if supports(other.provider) and other.name in ctx.providers
        ]
        raise CommandError(answers.not_supported(feature, label, others))
    return spec.provider, label


def _check_size(
    provider: type[Provider], label: str, terms: Sequence[str], text: str | None
) -> None:
    """Refuse a vocabulary and context longer, together, than the provider takes."""
    size = sum(len(term) for term in terms) + len(text or "")
    if size > provider.max_context_chars:
        raise CommandError(answers.context_too_long(size, provider.max_context_chars, label))
