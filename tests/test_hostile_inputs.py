"""Hostile files and uploads: limits are checked on the header before decoding, folders are walked
without opening what is not a regular file, uploads are capped while they stream, slow or
cross-origin clients are refused, and abandoned jobs stop."""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deepdenoise.cli import main
from deepdenoise.errors import Cancelled, InputError
from deepdenoise.io import read_header, read_image


def _chunk(tag: bytes, data: bytes) -> bytes:
    body = tag + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def _png(w: int, h: int, bits: int, idat: bytes) -> bytes:
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, 0, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def test_truncated_png_declaring_a_huge_image_is_refused_before_decoding(tmp_path: Path) -> None:
    (tmp_path / "t.png").write_bytes(_png(14000, 14000, 8, zlib.compress(b"\0" * 1000)))
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_image(tmp_path / "t.png", max_pixels=None)


def test_one_bit_png_bomb_is_refused_on_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = h = 15000
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(b"\0" * (1 + (w + 7) // 8)) for _ in range(h)) + comp.flush()
    (tmp_path / "b.png").write_bytes(_png(w, h, 1, idat))  # ~27 KB on disk, 225 MP declared
    assert os.path.getsize(tmp_path / "b.png") < 40_000
    monkeypatch.setattr("deepdenoise.io.images._read_pil", lambda *a: pytest.fail("decoded despite the limit"))
    with pytest.raises(InputError, match="225000000 pixels"):
        read_image(tmp_path / "b.png")  # the default limit


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "bmp", "gif", "tif"])
def test_every_format_is_checked_on_its_header(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"a.{fmt}"
    Image.fromarray(np.zeros((50, 70, 3), np.uint8)).save(path)
    header = read_header(path)
    assert (header.width, header.height, header.frames) == (70, 50, 1)
    assert main(["denoise", str(path), "-o", str(tmp_path / "o.png"), "--max-pixels", "3499"]) == 3
    assert "3500 pixels" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_tiff_stack_counts_every_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "s.tif", np.zeros((40, 30, 30), np.uint8), compression="zlib")
    assert read_header(tmp_path / "s.tif").pixels == 40 * 30 * 30
    assert main(["denoise", str(tmp_path / "s.tif"), "-o", str(tmp_path / "o.tif"), "--max-pixels", "10000"]) == 3
    assert "in 40 frames" in capsys.readouterr().err


def test_folder_mode_skips_hidden_fifos_and_unknown_files_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    (src / ".cache").mkdir(parents=True)
    Image.fromarray(np.full((31, 37), 128, np.uint8)).save(src / "a.png")
    Image.fromarray(np.full((31, 37), 128, np.uint8)).save(src / ".cache" / "b.png")
    Image.fromarray(np.full((31, 37), 128, np.uint8)).save(src / ".hidden.png")
    os.mkfifo(src / "pipe.png")  # opening it would block the batch forever
    with open(src / "big.bin", "wb") as f:  # sparse: large on paper, sniffed with a bounded read
        f.truncate(3 * 1024**3)
    assert main(["denoise", str(src), "-o", str(tmp_path / "out"), "--sigma", "10"]) == 0
    err = capsys.readouterr().err
    assert (tmp_path / "out" / "a.png").exists() and not (tmp_path / "out" / ".cache").exists()
    for why in ("hidden folder", "hidden file", "FIFO, not a regular file", "big.bin: skipped, not an image"):
        assert why in err
    assert "denoised 1 files, 0 failed, 4 skipped" in err
    assert main(["denoise", str(src), "-o", str(tmp_path / "out2"), "--sigma", "10", "--hidden"]) == 0
    assert (tmp_path / "out2" / ".cache" / "b.png").exists()


def test_cancelled_job_stops_and_writes_nothing(tmp_path: Path) -> None:
    from deepdenoise.pipeline.files import DenoiseOptions, denoise_file

    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(tmp_path / "a.png")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        denoise_file(tmp_path / "a.png", tmp_path / "o.png", DenoiseOptions(sigma=10.0), cancel=cancel)
    assert list(tmp_path.iterdir()) == [tmp_path / "a.png"]


# -- the ASGI guard, driven directly: what it reads and what it answers ------------------------------

def _run_guard(limits: Any, chunks: list[bytes], headers: list[tuple[bytes, bytes]], method: str = "POST",
               delay: float = 0.0) -> tuple[int, dict[bytes, bytes], int, bool]:
    """(status, headers, chunks the client had to send, whether the app ran) for one request."""
    from deepdenoise.web.guard import RequestGuard

    sent: list[dict[str, Any]] = []
    pulled = 0
    ran = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal ran
        ran = True
        while True:
            msg = await receive()
            if not msg.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        await asyncio.sleep(delay)
        pulled += 1
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": method, "path": "/api/denoise", "headers": headers}
    asyncio.run(RequestGuard(app, limits)(scope, receive, send))
    start = sent[0]
    return start["status"], dict(start["headers"]), pulled, ran


def test_upload_cap_stops_reading_at_the_limit() -> None:
    from deepdenoise.web.guard import GuardLimits

    chunks = [b"x" * 1000] * 400  # 400 KB offered, 10 KB allowed, no Content-Length (chunked)
    status, _, pulled, _ = _run_guard(GuardLimits(10_000), chunks, [(b"host", b"h")])
    assert status == 413 and pulled == 11  # stopped one chunk past the limit, not at the end
    status, _, pulled, ran = _run_guard(GuardLimits(10_000), chunks, [(b"host", b"h"), (b"content-length", b"400000")])
    assert status == 413 and pulled == 0 and not ran  # refused on the declared length alone


def test_slow_body_gets_408() -> None:
    from deepdenoise.web.guard import GuardLimits

    status, _, pulled, _ = _run_guard(GuardLimits(10_000, body_timeout=0.2), [b"x"] * 50, [(b"host", b"h")],
                                      delay=0.05)
    assert status == 408 and pulled < 10


def test_cross_origin_policy() -> None:
    from deepdenoise.web.guard import GuardLimits

    same = [(b"host", b"example.org:8000"), (b"origin", b"http://example.org:8000")]
    other = [(b"host", b"example.org:8000"), (b"origin", b"https://evil.test")]
    assert _run_guard(GuardLimits(10_000), [b"a"], same)[0] == 200
    status, _, pulled, ran = _run_guard(GuardLimits(10_000), [b"a"], other)
    assert status == 403 and not ran and pulled == 0  # refused before reading, not processed
    assert _run_guard(GuardLimits(10_000), [b""], other, method="OPTIONS")[0] == 403
    allowed = GuardLimits(10_000, cors_origins=("https://evil.test",))
    status, headers, _, _ = _run_guard(allowed, [b""], other + [(b"access-control-request-headers", b"x-a")],
                                       method="OPTIONS")
    assert status == 204 and headers[b"access-control-allow-origin"] == b"https://evil.test"
    status, headers, _, _ = _run_guard(allowed, [b"a"], other)
    assert status == 200 and headers[b"access-control-allow-origin"] == b"https://evil.test"


def test_upload_errors_name_the_upload_not_the_server(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from deepdenoise.web.app import ServeConfig, create_app

    client = TestClient(create_app(ServeConfig(max_pixels=1000)))
    bomb = _png(14000, 14000, 8, zlib.compress(b"\0" * 1000))
    for name, data in (("bomb.png", bomb), ("x.tif", b"II*\0garbage" * 10), ("big.png", _png(100, 100, 1, zlib.compress(
            b"\0" * 1400)))):
        r = client.post("/api/denoise", files={"image": (name, data)})
        detail = r.json()["detail"]
        assert r.status_code == 400 and detail.startswith(name), detail
        assert "/tmp" not in detail and "deepdenoise-" not in detail and "Error" not in detail
