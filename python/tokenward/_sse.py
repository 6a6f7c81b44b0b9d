"""The `text/event-stream` format (WHATWG HTML, "Server-sent events"), both ways: `ServerEvent`,
its encoding for the server (`ServerEvent.encode`) and `EventParser` for the clients.

One place for the format, shared by the server wrapper (`tokenward._streams`) and both client
helpers (`tokenward._stream_client`), so the `id` the server writes is read back by the same
rules that resume a stream with `Last-Event-ID`. Written here rather than taken from a package:
httpx-sse serves httpx only, and the requests options either reconnect on their own
(requests-sse, which would fight the token-aware reopening) or forget the last event ID between
events (sseclient-py), which resuming depends on; see docs/streams.md.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["EventParser", "ServerEvent"]

_LINE_BREAKS = ("\r", "\n")


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One event of an event stream.

    `id` is the stream's last event ID once this event is dispatched (the spec keeps it across
    events that carry none), `event` its type ("message" when the server named none), `data`
    its data lines joined by "\\n", `retry` the reconnection time the server asked for (ms), if
    this event's block set one."""

    data: str = ""
    event: str = "message"
    id: str = ""
    retry: int | None = None

    def encode(self) -> bytes:
        """The event as the server writes it. A line break in `id` or `event` would start a
        new field (a client would read something the server never meant to send): refused."""
        lines: list[str] = []
        for name, value in (("id", self.id), ("event", self.event)):
            if any(brk in value for brk in _LINE_BREAKS) or "\0" in value:
                raise ValueError(f"an event's {name} must be one line without NUL")
        if self.id:
            lines.append(f"id: {self.id}")
        if self.event and self.event != "message":
            lines.append(f"event: {self.event}")
        if self.retry is not None:
            if self.retry < 0:
                raise ValueError("retry must not be negative")
            lines.append(f"retry: {self.retry}")
        # Every line of the data is one `data:` field; splitting on all three line endings is
        # what the parser undoes, so "a\r\nb" arrives as "a\nb" (the spec's normal form).
        lines.extend(f"data: {line}" for line in _split_lines(self.data))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def _split_lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


class EventParser:
    """Turns the bytes of an event stream into `ServerEvent`s, by the spec's interpretation
    rules: UTF-8 (a leading BOM dropped), lines ending in CRLF, LF or CR, `:` comments, one
    optional space after the colon, unknown fields ignored, `id` with NUL ignored, `retry` only
    when all ASCII digits, an event dispatched at a blank line only when it has data, and the
    last event ID kept across events. Feed chunks as they come (`feed`); a block left without
    its blank line at the end of the stream is dropped, as the spec says.

    `last_event_id` is what a reconnection sends as `Last-Event-ID`; `reconnection_time` the
    last `retry` the server sent (ms), None until it sends one."""

    def __init__(self, last_event_id: str = "") -> None:
        self.last_event_id = last_event_id
        self.reconnection_time: int | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._pending_cr = False
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> Iterator[ServerEvent]:
        """The events completed by `chunk`."""
        text = self._decoder.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._pending_cr:
            # A CR that ended the previous chunk: a following LF belongs to the same break.
            self._pending_cr = False
            text = text.removeprefix("\n")
        self._buffer += text
        while True:
            cut = _first_break(self._buffer)
            if cut < 0:
                return
            line, brk = self._buffer[:cut], self._buffer[cut]
            rest = self._buffer[cut + 1 :]
            if brk == "\r":
                if not rest:
                    self._pending_cr = True
                elif rest.startswith("\n"):
                    rest = rest[1:]
            self._buffer = rest
            event = self._line(line)
            if event is not None:
                yield event

    def feed_all(self, chunks: Iterable[bytes]) -> Iterator[ServerEvent]:
        for chunk in chunks:
            yield from self.feed(chunk)

    def _line(self, line: str) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value and value.isascii() and value.isdigit():
            self._retry = int(value)
            self.reconnection_time = self._retry
        return None

    def _dispatch(self) -> ServerEvent | None:
        data, event, retry = self._data, self._event, self._retry
        self._data, self._event, self._retry = [], "", None
        if not data:
            return None
        return ServerEvent(
            data="\n".join(data), event=event or "message", id=self.last_event_id, retry=retry
        )


def _first_break(text: str) -> int:
    cr, lf = text.find("\r"), text.find("\n")
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)
