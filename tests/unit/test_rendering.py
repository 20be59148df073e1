from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.rendering import (
    MAX_BLOCKS,
    MAX_INLINE_CHARS,
    NO_SPEECH,
    Speakers,
    language_line,
    render_reply,
)
from bot.transcript import Segment, Transcript, to_plain_text
from storage.models import Job, JobKind, JobState

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def job(name: str, state: JobState = JobState.COMPLETED, **fields: Any) -> Job:
    values: dict[str, Any] = dict(
        id=name, batch_id="b", position=0, kind=JobKind.SLACK_FILE, provider="soniox",
        filename=name, slack_file_id=None, url=None, download_url=None, mimetype=None,
        size_bytes=None, needs_file_info=False, state=state, attempts=0, next_attempt_at=None,
        error=None, error_detail=None, spool_path=None, provider_file_id=None,
        provider_upload_id=None, provider_job_id=None, provider_eta_at=None, transcript=None,
        raw_result=None, attachment_uploaded=False, cleaned_up=False, created_at=NOW,
        updated_at=NOW, finished_at=None,
    )  # fmt: skip
    values.update(fields)
    return Job(**values)


def text_transcript(text: str) -> dict[str, Any]:
    return Transcript(text=text).model_dump()


def test_speaker_turns_are_lines_with_timestamps() -> None:
    transcript = Transcript(
        text="Hi there. Hello. Bye.",
        segments=[
            Segment(text="Hi", speaker="1", start_ms=0, end_ms=500),
            Segment(text="there.", speaker="1", start_ms=500, end_ms=900),
            Segment(text="Hello.", speaker="2", start_ms=72_000, end_ms=73_000),
            Segment(text="Bye.", speaker="1", start_ms=3_725_000, end_ms=3_726_000),
        ],
    )
    assert to_plain_text(transcript) == (
        "Speaker 1 [00:00]: Hi there.\nSpeaker 2 [01:12]: Hello.\nSpeaker 1 [1:02:05]: Bye."
    )


def test_short_transcripts_are_inline_and_markup_is_escaped() -> None:
    reply = render_reply([job("a.wav", transcript=text_transcript("1 < 2 & <@U123>"))])
    assert reply.attachments == []
    assert "1 &lt; 2 &amp; &lt;@U123&gt;" in str(reply.blocks)
    assert reply.text.startswith("Transcript of a.wav")
    assert not reply.any_failed


def test_a_long_transcript_goes_to_a_file_with_a_preview() -> None:
    long = "word " * (MAX_INLINE_CHARS // 5 + 50)
    reply = render_reply([job("talk.mp3", transcript=text_transcript(long))])
    (attachment,) = reply.attachments
    assert attachment.filename == "talk-transcript.txt"
    assert attachment.content.strip() == long.strip()
    assert all(len(b["text"]["text"]) <= MAX_INLINE_CHARS for b in reply.blocks)


def test_many_medium_transcripts_stay_under_the_message_budget() -> None:
    medium = "x" * 2900
    jobs = [job(f"f{i}.wav", transcript=text_transcript(medium)) for i in range(6)]
    reply = render_reply(jobs)
    inline = [b for b in reply.blocks if b["text"]["text"] == medium]
    assert sum(len(b["text"]["text"]) for b in inline) <= 12_000
    assert len(inline) == 4
    assert len(reply.attachments) == 2


def test_failures_empty_files_and_skipped_ones() -> None:
    reply = render_reply(
        [
            job("ok.wav", transcript=text_transcript("fine")),
            job("quiet.wav", transcript=text_transcript("  ")),
            job("bad.wav", JobState.FAILED, error="Soniox could not transcribe this file."),
            job("doc.pdf", JobState.SKIPPED),
        ]
    )
    body = str(reply.blocks)
    assert NO_SPEECH in body
    assert "bad.wav*: Soniox could not transcribe this file." in body
    assert "doc.pdf" not in body
    assert reply.any_failed
    assert reply.text.startswith("Transcribed 2 of 3 files")


def test_block_count_stays_within_slack_limit() -> None:
    jobs = [job(f"f{i}.wav", transcript=text_transcript("hi")) for i in range(40)]
    assert len(render_reply(jobs).blocks) <= MAX_BLOCKS


def test_only_skipped_jobs_render_nothing() -> None:
    assert render_reply([job("doc.pdf", JobState.SKIPPED)]).blocks == []


def test_speaker_turns_are_paragraphs_with_bold_speakers() -> None:
    segments = [
        Segment(text="Shall we start?", speaker="1", start_ms=0),
        Segment(text="Yes, go <ahead>.", speaker="2", start_ms=12_000),
    ]
    transcript = Transcript(text="Shall we start? Yes, go <ahead>.", segments=segments)
    reply = render_reply([job("panel.wav", transcript=transcript.model_dump())])
    assert reply.blocks[1]["text"]["text"] == (
        "*Speaker 1* [00:00]  Shall we start?\n\n*Speaker 2* [00:12]  Yes, go &lt;ahead&gt;."
    )


def test_long_text_is_split_at_paragraphs_and_words_never_cut() -> None:
    from bot.rendering import MAX_INLINE_CHARS, _chunks

    paragraphs = [f"Paragraph {i} " + "word " * 150 for i in range(8)] + ["x" * 10 + " y" * 2000]
    text = "\n\n".join(paragraphs)
    chunks = _chunks(text)
    assert all(len(chunk) <= MAX_INLINE_CHARS for chunk in chunks)
    assert " ".join(" ".join(chunks).split()) == " ".join(text.split()), "nothing lost"
    assert all(chunk.startswith(("Paragraph", "x", "y")) for chunk in chunks)


def test_language_line_names_languages_and_escapes_codes_it_does_not_know() -> None:
    assert language_line(Transcript(text="x")) is None
    one = language_line(Transcript(text="x", language="de"))
    assert one == {"type": "context", "elements": [{"type": "mrkdwn", "text": "Language: German"}]}
    hostile = language_line(Transcript(text="x", languages=["en", "<!channel>", "EN-us"]))
    assert hostile is not None
    assert hostile["elements"][0]["text"] == "Languages: English, &lt;!channel&gt;"
    many = language_line(Transcript(text="x", languages=["en", "hi", "de", "fr", "es", "it", "ja"]))
    assert many is not None
    assert many["elements"][0]["text"] == (
        "Languages: English, Hindi, German, French, Spanish and 2 more"
    )


def test_each_transcript_is_followed_by_its_language_line() -> None:
    reply = render_reply(
        [
            job("a.wav", transcript=Transcript(text="Hola.", languages=["es"]).model_dump()),
            job("b.wav", transcript=text_transcript("No language known.")),
            job("c.wav", transcript=Transcript(text="", languages=["en"]).model_dump()),
        ]
    )
    kinds = [(block["type"], str(block)) for block in reply.blocks]
    contexts = [text for kind, text in kinds if kind == "context"]
    assert len(contexts) == 1 and "Language: Spanish" in contexts[0]
    assert kinds.index(("context", contexts[0])) == 2, "right after a.wav's transcript"


def test_doubtful_words_are_marked_in_the_message_only() -> None:
    scores = [0.9, 0.2, 0.9, 0.49, 0.5]
    segments = [
        Segment(text="Ship <it> to Priya, today.", speaker="1", word_confidence=scores),
        Segment(text="Sure.", speaker="2", word_confidence=[0.1]),
    ]
    transcript = Transcript(text="Ship <it> to Priya, today. Sure.", segments=segments)
    marked = render_reply([job("a.wav", transcript=transcript.model_dump())], doubtful_below=0.5)
    # Below the threshold only; punctuation stays upright, outside text escaped all the same.
    assert marked.blocks[1]["text"]["text"] == (
        "*Speaker 1*  Ship &lt;_it_&gt; to _Priya_, today.\n\n*Speaker 2*  _Sure_."
    )
    assert "_" not in marked.text, "the notification text stays plain"
    unmarked = render_reply([job("a.wav", transcript=transcript.model_dump())])
    assert "_" not in unmarked.blocks[1]["text"]["text"]
    assert to_plain_text(transcript) == "Speaker 1: Ship <it> to Priya, today.\nSpeaker 2: Sure."


def test_each_turn_is_followed_by_its_translation() -> None:
    segments = [
        Segment(text="Good morning.", speaker="1", start_ms=0, translation="Buenos días.",
                translation_language="es"),
        Segment(text="Hola <amigo>.", speaker="2", start_ms=2000, translation="Hi <friend>.",
                translation_language="en"),
    ]  # fmt: skip
    transcript = Transcript(text="Good morning. Hola <amigo>.", segments=segments)
    reply = render_reply([job("a.wav", transcript=transcript.model_dump())])
    assert reply.blocks[1]["text"]["text"] == (
        "*Speaker 1* [00:00]  Good morning.\n&gt; Spanish: Buenos días.\n\n"
        "*Speaker 2* [00:02]  Hola &lt;amigo&gt;.\n&gt; English: Hi &lt;friend&gt;."
    )
    assert to_plain_text(transcript) == (
        "Speaker 1 [00:00]: Good morning.\n    → Spanish: Buenos días.\n"
        "Speaker 2 [00:02]: Hola <amigo>.\n    → English: Hi <friend>."
    )
    # Without speakers, each part is still followed by its translation.
    unnamed = Transcript(
        text="Good morning.",
        segments=[Segment(text="Good morning.", translation="Guten Morgen.",
                          translation_language="de")],
    )  # fmt: skip
    assert to_plain_text(unnamed) == "Good morning.\n    → German: Guten Morgen."


def two_speakers(first: str = "Hi there.", second: str = "Hello.") -> dict[str, Any]:
    return Transcript(
        text=f"{first} {second}",
        segments=[
            Segment(text=first, speaker="1", start_ms=0, end_ms=500),
            Segment(text=second, speaker="2", start_ms=1_000, end_ms=1_500),
        ],
    ).model_dump()


def test_a_reply_with_more_than_one_speaker_ends_with_the_name_speakers_button() -> None:
    reply = render_reply([job("a.wav", transcript=two_speakers())], batch_id="b-1")
    assert reply.blocks[-1] == {
        "type": "actions",
        "block_id": "speakers",
        "elements": [
            {
                "type": "button",
                "action_id": "name_speakers",
                "text": {"type": "plain_text", "text": "Name speakers", "emoji": True},
                "value": "b-1",
            }
        ],
    }
    one = Transcript(text="Hi.", segments=[Segment(text="Hi.", speaker="1")]).model_dump()
    for without in (
        render_reply([job("a.wav", transcript=two_speakers())]),
        render_reply([job("a.wav", transcript=one)], batch_id="b-1"),
        render_reply([job("a.wav", transcript=text_transcript("Hi."))], batch_id="b-1"),
    ):
        assert all(block["type"] != "actions" for block in without.blocks)
    several = render_reply(
        [job("a.wav", transcript=one), job("b.wav", transcript=one)], batch_id="b-1"
    )
    assert several.blocks[-1]["type"] == "actions", "speaker 1 of two files: two people"


def test_named_speakers_are_mentions_in_the_message_and_names_in_the_text() -> None:
    speakers = Speakers(
        names={"a.wav": {"1": "U0ALICE", "2": "not-a-user-id"}},
        display_names={"U0ALICE": "Alice <3"},
    )
    reply = render_reply([job("a.wav", transcript=two_speakers())], speakers=speakers)
    shown = str(reply.blocks)
    assert "*<@U0ALICE>* [00:00]  Hi there." in shown
    assert "*not-a-user-id* [00:01]  Hello." in shown, "only a user id becomes a mention"
    assert "Alice &lt;3 [00:00]: Hi there." in reply.text
    assert "Speaker 2 [00:01]: Hello." in reply.text, "no name known: the number"


def test_names_never_move_a_transcript_into_a_file_or_out_of_one() -> None:
    # Just under the limit as posted first; longer than it once the names are in.
    said = "word " * ((MAX_INLINE_CHARS - 60) // 5)
    transcript = two_speakers(said, "Yes.")
    speakers = Speakers({"a.wav": {"1": "U1", "2": "U2"}}, {"U1": "A" * 50, "U2": "B" * 50})
    assert render_reply([job("a.wav", transcript=transcript)]).attachments == []
    named = render_reply([job("a.wav", transcript=transcript)], speakers=speakers)
    assert named.attachments == []
    assert all(len(b["text"]["text"]) <= MAX_INLINE_CHARS for b in named.blocks if "text" in b)


def test_a_note_goes_above_the_button_within_the_block_limit() -> None:
    jobs = [job(f"{n}.wav", transcript=two_speakers()) for n in range(30)]
    reply = render_reply(jobs, batch_id="b-1")
    assert len(reply.blocks) == MAX_BLOCKS
    reply.add_note({"type": "context", "elements": []})  # type: ignore[arg-type]
    assert len(reply.blocks) == MAX_BLOCKS
    assert [b["type"] for b in reply.blocks[-2:]] == ["context", "actions"]
