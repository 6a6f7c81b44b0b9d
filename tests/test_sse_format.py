"""The event-stream format (tokenward._sse): the WHATWG interpretation rules the clients rely
on to resume a stream, and the server's encoding read back by the same parser."""

from __future__ import annotations

import pytest
from tokenward._sse import EventParser, ServerEvent


def parse(*chunks: bytes, last_event_id: str = "") -> list[ServerEvent]:
    return list(EventParser(last_event_id).feed_all(chunks))


def test_fields_comments_and_the_optional_space() -> None:
    events = parse(b": a comment\nevent: tick\ndata: one\ndata:two\nid: 7\n\n")
    assert events == [ServerEvent(data="one\ntwo", event="tick", id="7")]


def test_every_line_ending_and_breaks_split_across_chunks() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"
    whole = parse(stream)
    assert [e.data for e in whole] == ["a\nb\nc", "d"]
    # Byte by byte: a CR at the end of one chunk and its LF in the next are one line break,
    # and a UTF-8 character cut in two is put back together.
    assert parse(*(stream[i : i + 1] for i in range(len(stream)))) == whole
    snowman = "data: \u2603\n\n".encode()
    assert [e.data for e in parse(snowman[:7], snowman[7:])] == ["\u2603"]


def test_the_last_event_id_is_kept_across_events_and_nul_is_ignored() -> None:
    parser = EventParser(last_event_id="3")
    events = list(parser.feed(b"data: x\n\nid: 4\ndata: y\n\nid: bad\0id\ndata: z\n\n"))
    assert [e.id for e in events] == ["3", "4", "4"]
    assert parser.last_event_id == "4"
    # An id alone (no data) dispatches nothing but still moves the last event ID.
    assert list(parser.feed(b"id: 9\n\n")) == []
    assert parser.last_event_id == "9"


def test_no_data_no_event_and_an_unterminated_block_is_dropped() -> None:
    assert parse(b"event: lonely\n\n") == []
    assert parse(b"data\n\n") == [ServerEvent(data="")]
    assert parse(b"data: half") == []


def test_retry_only_when_all_digits_unknown_fields_ignored_and_a_bom_dropped() -> None:
    parser = EventParser()
    events = list(
        parser.feed(b"\xef\xbb\xbfretry: 1500\nfoo: bar\ndata: a\n\nretry: 2s\ndata: b\n\n")
    )
    assert [(e.data, e.retry) for e in events] == [("a", 1500), ("b", None)]
    assert parser.reconnection_time == 1500


def test_encode_round_trips_and_refuses_a_field_that_would_split() -> None:
    sent = [
        ServerEvent(data="line 1\nline 2", event="update", id="41"),
        ServerEvent(data="", id="42", retry=250),
        ServerEvent(data="plain"),
    ]
    read = parse(b"".join(e.encode() for e in sent))
    assert read == [sent[0], sent[1], ServerEvent(data="plain", id="42")]
    assert ServerEvent(data="a\r\nb").encode() == b"data: a\ndata: b\n\n"
    for bad in (ServerEvent(data="x", id="1\n"), ServerEvent(data="x", event="a\rb")):
        with pytest.raises(ValueError):
            bad.encode()
    with pytest.raises(ValueError):
        ServerEvent(data="x", retry=-1).encode()
