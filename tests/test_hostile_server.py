"""The service's connection-level limits under a real uvicorn server: header deadline, 431 for
oversized headers, and a connection cap that drops stalled clients so real ones get through."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    import uvicorn

    from deepdenoise.web.app import ServeConfig, create_app
    from deepdenoise.web.protocol import guarded_protocol

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    protocol = guarded_protocol(header_timeout=1.0, max_header_bytes=8192, max_connections=20)
    config = uvicorn.Config(create_app(ServeConfig()), host="127.0.0.1", port=port, http=protocol,  # type: ignore[arg-type]
                            limit_concurrency=21, log_level="warning", h11_max_incomplete_event_size=8192)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield port
    srv.should_exit = True
    thread.join(5)


def _get(port: int, path: str = "/healthz", extra: bytes = b"", timeout: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    return data


def test_healthz(server: int) -> None:
    assert _get(server).startswith(b"HTTP/1.1 200")


def test_oversized_headers_get_431(server: int) -> None:
    assert _get(server, extra=b"X-Big: " + b"a" * 20000 + b"\r\n").startswith(b"HTTP/1.1 431")


def test_slow_headers_are_cut_off(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=5) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        data = c.recv(1024)  # the socket's own 5 s timeout would raise; the deadline is 1 s
        assert data.startswith(b"HTTP/1.1 408")


def test_stalled_connections_make_room_for_real_clients(server: int) -> None:
    stalled = []
    try:
        for _ in range(40):  # twice the cap, each dribbling a header line
            c = socket.create_connection(("127.0.0.1", server), timeout=5)
            c.sendall(b"GET /healthz HTTP/1.1\r\n")
            stalled.append(c)
        assert _get(server).startswith(b"HTTP/1.1 200")  # without eviction: 503 (uvicorn's limit)
    finally:
        for c in stalled:
            c.close()
