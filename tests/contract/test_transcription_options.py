"""What a channel asks of its transcripts besides their languages (a vocabulary, a sentence of
context, a translation, doubtful words marked): kept with the channel's settings, and recorded
on each batch at creation, where the work reads it."""

from __future__ import annotations

import dataclasses

from storage.models import ChannelSettings, TranscriptionOptions
from storage.store import Store
from tests.contract.backends import Backend
from tests.contract.builders import NOW, new_batch, new_link, next_ts
from tests.contract.test_outside_text import HOSTILE, same
from tests.workspaces import T1

ASKED = TranscriptionOptions(
    terms=("Kubernetes", "Priya Raman"),
    context="Weekly platform stand-up.",
    translation=("en", "es"),
    mark_doubtful=True,
)


async def test_a_channel_keeps_its_vocabulary_context_translation_and_marks(
    store: Store,
) -> None:
    default = await store.channel_settings(T1, "C1")
    assert (default.vocabulary, default.context, default.translation) == ([], None, ())
    assert default.mark_doubtful is False
    assert default.transcription_options() == TranscriptionOptions()

    chosen = ChannelSettings(
        channel_id="C1",
        language_hints=["en"],
        vocabulary=["Kubernetes", "Priya Raman"],
        context="Weekly platform stand-up.",
        translation=("de",),
        mark_doubtful=True,
    )
    await store.save_channel_settings(T1, chosen, NOW)
    assert await store.channel_settings(T1, "C1") == chosen

    # Saving changes the whole of them at once, and what a caller holds is its own until saved.
    held = await store.channel_settings(T1, "C1")
    held.vocabulary.append("Anthropic")
    assert (await store.channel_settings(T1, "C1")).vocabulary == ["Kubernetes", "Priya Raman"]
    cleared = dataclasses.replace(
        chosen, vocabulary=[], context=None, translation=(), mark_doubtful=False
    )
    await store.save_channel_settings(T1, cleared, NOW)
    assert await store.channel_settings(T1, "C1") == cleared


async def test_hostile_words_are_kept_as_typed(store: Store) -> None:
    settings = ChannelSettings(channel_id="C1", vocabulary=[HOSTILE, "ok"], context=HOSTILE)
    await store.save_channel_settings(T1, settings, NOW)
    read = await store.channel_settings(T1, "C1")
    assert same(read.vocabulary, [HOSTILE, "ok"]) and same(read.context, HOSTILE)

    asked = dataclasses.replace(new_batch(next_ts()), options=settings.transcription_options())
    batch = await store.create_batch(asked, [new_link("https://x/a")], NOW)
    assert batch is not None
    options = (await store.transcription_options_of([batch.id]))[batch.id]
    assert same(list(options.terms), [HOSTILE, "ok"]) and same(options.context, HOSTILE)


async def test_a_batch_keeps_the_options_it_was_created_with(store: Store) -> None:
    plain = await store.create_batch(new_batch(next_ts()), [new_link("https://x/a")], NOW)
    asked = await store.create_batch(
        dataclasses.replace(new_batch(next_ts()), options=ASKED), [new_link("https://x/b")], NOW
    )
    one_way = TranscriptionOptions(translation=("de",))
    translated = await store.create_batch(
        dataclasses.replace(new_batch(next_ts()), options=one_way), [new_link("https://x/c")], NOW
    )
    marked = TranscriptionOptions(mark_doubtful=True)
    doubtful = await store.create_batch(
        dataclasses.replace(new_batch(next_ts()), options=marked), [new_link("https://x/d")], NOW
    )
    assert plain and asked and translated and doubtful

    found = await store.transcription_options_of(
        [asked.id, plain.id, asked.id, translated.id, doubtful.id, "b-missing"]
    )
    assert found == {
        plain.id: TranscriptionOptions(),
        asked.id: ASKED,
        translated.id: one_way,
        doubtful.id: marked,
    }
    in_use = {asked.id: ASKED, translated.id: one_way, doubtful.id: marked}
    every = [plain.id, asked.id, translated.id, doubtful.id, "b-missing"]
    assert await store.transcription_options_in_use(every) == in_use
    some = await store.transcription_options_in_use([plain.id, doubtful.id])
    assert some == {doubtful.id: marked}, "only the batches asked about"
    await store.cancel_batch(asked.id, NOW)
    del in_use[asked.id]
    assert await store.transcription_options_in_use(every) == in_use, "only open batches"
    assert (await store.transcription_options_of([asked.id]))[asked.id] == ASKED, "kept"
    assert await store.transcription_options_of([]) == {}


async def test_the_options_survive_a_restart(backend: Backend) -> None:
    first = await backend.open()
    settings = ChannelSettings(channel_id="C1", vocabulary=["Kubernetes"], translation=("de",))
    await first.save_channel_settings(T1, settings, NOW)
    batch = await first.create_batch(
        dataclasses.replace(new_batch(next_ts()), options=ASKED), [new_link("https://x/a")], NOW
    )
    await first.close()

    second = await backend.open()
    try:
        assert await second.channel_settings(T1, "C1") == settings
        assert batch is not None
        assert await second.transcription_options_of([batch.id]) == {batch.id: ASKED}
    finally:
        await second.close()
