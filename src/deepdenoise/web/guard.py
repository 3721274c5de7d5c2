"""Limits that must hold before the application sees a request.

``RequestGuard`` is ASGI middleware: it stops reading an upload at the byte limit (413, from the
``Content-Length`` header when there is one, else while the body streams in), gives the whole
body a deadline (408: a client dribbling bytes cannot hold a connection), and applies the
cross-origin policy (same origin only unless origins are allowed; a disallowed origin gets 403
before any work, preflights included).

``GuardedH11Protocol`` is the HTTP/1.1 protocol the service runs under uvicorn with: a deadline for
the request line and headers (408, then the connection is closed), 431 for headers beyond the
size limit, and a cap on open connections where a new client pushes out the one that has waited
longest without sending a whole request, so slow-header floods cannot take the file descriptors
that ``/healthz`` and real users need.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class GuardLimits:
    max_body_bytes: int  # the upload limit plus room for the form's other fields
    body_timeout: float = 120.0  # seconds for a whole request body
    cors_origins: tuple[str, ...] = ()  # allowed cross-origin callers ('*': any)


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _send_json(send: Any, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: body size cap and deadline, and the cross-origin policy."""

    def __init__(self, app: Any, limits: GuardLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        cors = self._cors_headers(scope, origin)
        if cors is None:
            await _send_json(send, 403, f"cross-origin requests from {origin} are not allowed")
            return
        if scope["method"] == "OPTIONS" and origin is not None:  # an allowed preflight
            await self._preflight(scope, send, cors)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limits.max_body_bytes:
            await _send_json(send, 413, f"upload larger than {self.limits.max_body_bytes} bytes")
            return
        await self._guarded(scope, receive, send, cors)

    def _cors_headers(self, scope: Scope, origin: str | None) -> list[tuple[bytes, bytes]] | None:
        """Headers for an allowed response, [] for a same-origin one, None for a refused one."""
        if origin is None or urlsplit(origin).netloc == (_header(scope, b"host") or ""):
            return []
        if "*" in self.limits.cors_origins or origin in self.limits.cors_origins:
            return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
                    (b"access-control-expose-headers", b"*")]
        return None

    async def _preflight(self, scope: Scope, send: Any, cors: list[tuple[bytes, bytes]]) -> None:
        asked = _header(scope, b"access-control-request-headers") or ""
        headers = [*cors, (b"access-control-allow-methods", b"GET, HEAD, POST"),
                   (b"access-control-allow-headers", asked.encode("latin-1")),
                   (b"access-control-max-age", b"600"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _guarded(self, scope: Scope, receive: Any, send: Any, cors: list[tuple[bytes, bytes]]) -> None:
        """Run the app with a receive that counts bytes against the cap and the deadline, and a send
        that adds the CORS headers; a refusal found mid-body replaces whatever the app answers."""
        deadline = time.monotonic() + self.limits.body_timeout
        state: dict[str, Any] = {"read": 0, "refused": None, "started": False}

        def refuse(status: int, detail: str) -> _Refused:
            refused = _Refused(status, detail)
            state["refused"] = refused
            return refused

        async def guarded_receive() -> Message:
            if state["refused"] is not None:
                raise refuse(state["refused"].status, state["refused"].detail)
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise refuse(408, f"request body not received within {self.limits.body_timeout:g} s") from None
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > self.limits.max_body_bytes:
                    raise refuse(413, f"upload larger than {self.limits.max_body_bytes} bytes")
                if not message.get("more_body", False):
                    deadline_off()
            return message

        def deadline_off() -> None:  # the body is in: the denoising itself has no deadline here
            nonlocal deadline
            deadline = float("inf")

        async def guarded_send(message: Message) -> None:
            if state["refused"] is not None:  # the app's answer to a broken body: ours instead
                return
            if message["type"] == "http.response.start":
                state["started"] = True
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _Refused:
            pass
        refused = state["refused"]
        if refused is not None and not state["started"]:
            log.info("refused %s %s: %s", scope["method"], scope["path"], refused.detail)
            await _send_json(send, refused.status, refused.detail, cors)
