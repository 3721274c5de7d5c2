"""The server's connection protocol: uvicorn's h11 protocol hardened against slow and oversized
requests (a deadline for the request line and headers, 431 for oversized headers, and a cap on
open connections that drops the longest-stalled one rather than refusing new clients)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, 431 for oversized headers and a connection
    cap that evicts the longest-stalled connection; :func:`guarded_protocol` sets the limits."""

    header_timeout = 10.0
    max_header_bytes = 16 * 1024
    max_connections = 256

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._waiting_since = time.monotonic()
        self._header_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout, self._too_slow)
        if len(self.connections) > self.max_connections:
            self._evict_stalled()

    def _stalled(self) -> bool:
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def _evict_stalled(self) -> None:
        stalled: list[Any] = [c for c in self.connections
                              if c is not self and getattr(c, "_stalled", lambda: False)()]
        if stalled:
            oldest = min(stalled, key=lambda c: c._waiting_since)
            oldest.transport.close()
            oldest._stop_timer()
            self.connections.discard(oldest)  # closing: no longer counted against the cap

    def _stop_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self._stalled() and not self.transport.is_closing():
            self._refuse(408, b"Request Timeout", b"request headers not received in time")

    def _refuse(self, status: int, reason: bytes, body: bytes) -> None:
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
                % (status, reason, len(body)))
        self.transport.write(head + body)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._headers_too_large(data):
            self._stop_timer()
            self._refuse(431, b"Request Header Fields Too Large", b"request headers too large")
            return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a whole request line and headers arrived
            self._stop_timer()

    def _headers_too_large(self, data: bytes) -> bool:
        """Whether the request line and headers (not the body that may follow them in the same
        packet) go beyond the limit."""
        head = (bytes(self.conn.trailing_data[0]) + data[:self.max_header_bytes + 4])[:self.max_header_bytes + 4]
        return len(head) > self.max_header_bytes and b"\r\n\r\n" not in head

    def on_response_complete(self) -> None:
        if self.conn.their_state not in (h11.DONE, h11.IDLE):  # answered before the body was in
            self._stop_timer()  # (refused, or a broken form): do not wait for the rest of it
            self.transport.close()
            return
        super().on_response_complete()
        if not self.transport.is_closing():  # keep-alive: the next request gets its own deadline
            self._waiting_since = time.monotonic()
            self._stop_timer()
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)


def guarded_protocol(header_timeout: float, max_header_bytes: int, max_connections: int) -> type:
    """The protocol class for uvicorn's ``http=`` with these limits."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {
        "header_timeout": header_timeout, "max_header_bytes": max_header_bytes, "max_connections": max_connections})
