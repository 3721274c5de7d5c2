"""Attack a live ``deepdenoise serve`` (and the CLI) with hostile inputs; print a table.

Every case states what must happen (a 4xx, a one-line exit 2-5, a fast /healthz) and is measured:
the HTTP status or exit code, the time, and the peak resident memory of the process that handled
it (the server's VmHWM, reset before each case through /proc/PID/clear_refs; a CLI run's own
maximum RSS). The server runs with a 256 open-file limit and its own temp folder, checked empty
at the end. ``--training`` adds SIGKILLs at random points of a training run and corruptions of its
newest checkpoint, each resumed and compared with an uninterrupted run.

    python tools/attack_check.py [--markdown docs/reliability.md] [--training]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROWS: list[dict[str, str]] = []
LIMIT_MB = 8  # the server's --max-upload-mb


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    tmp: Path

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def peak_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def record(case: str, expected: str, outcome: str, ok: bool, seconds: float, peak_mb: float | None) -> None:
    ROWS.append({"case": case, "expected": expected, "outcome": outcome, "ok": "yes" if ok else "**NO**",
                 "seconds": f"{seconds:.2f}", "peak RSS MB": "-" if peak_mb is None else f"{peak_mb:.0f}"})
    print(f"{'ok ' if ok else 'BAD'} {case}: {outcome} ({seconds:.2f} s, {peak_mb or 0:.0f} MB)", flush=True)


# -- hostile files -----------------------------------------------------------------------------------

def _chunk(tag: bytes, data: bytes) -> bytes:
    body = tag + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png(w: int, h: int, bits: int, rows: bool = True) -> bytes:
    comp = zlib.compressobj(9)
    if rows:
        idat = b"".join(comp.compress(b"\0" * (1 + (w * bits + 7) // 8)) for _ in range(h)) + comp.flush()
    else:  # truncated: a few bytes where the pixels should be
        idat = zlib.compress(b"\0" * 100)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bits, 0, 0, 0, 0))
            + _chunk(b"IDAT", idat) + (_chunk(b"IEND", b"") if rows else b""))


def tiff_bomb(side: int) -> bytes:
    """A zlib TIFF of side x side zeros, written tile by tile (small on disk, huge decoded)."""
    import tifffile

    tile = np.zeros((1024, 1024), np.uint8)
    n = (side + 1023) // 1024
    buf = io.BytesIO()
    tifffile.imwrite(buf, (tile for _ in range(n * n)), shape=(side, side), dtype=np.uint8, tile=(1024, 1024),
                     compression="zlib")
    return buf.getvalue()


def tiff_stack(frames: int, side: int) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((frames, side, side), np.uint8), compression="zlib")
    return buf.getvalue()


def photo(side: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    img = np.clip(128 + 40 * rng.standard_normal((side, side, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


# -- HTTP by hand (full control over what is sent and when) -----------------------------------------

def multipart(name: str, data: bytes, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    boundary = "deepdenoiseattack"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (fields or {}).items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
            timeout: float = 120.0) -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    for k, v in {**({"Content-Length": str(len(body))} if body or method == "POST" else {}), **(headers or {})}.items():
        head += f"{k}: {v}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.sendall(head.encode() + b"\r\n" + body)
        return _read_response(c)


def _read_response(c: socket.socket) -> tuple[int, bytes]:
    data = b""
    try:
        while chunk := c.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    if not data.startswith(b"HTTP/"):
        return 0, data
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(data.split(b" ", 2)[1])
    if 200 <= status < 300:  # an image: show what the headers say of it, not its bytes
        keep = [ln for ln in head.split(b"\r\n")[1:] if ln.lower().startswith((b"content-type", b"x-sigma:"))]
        return status, b", ".join(keep)
    return status, body


def post_file(srv: Server, name: str, data: bytes, fields: dict[str, str] | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    body, ctype = multipart(name, data, fields)
    return request(srv.port, "POST", "/api/denoise", body, {"Content-Type": ctype, **(headers or {})})


def timed(srv: Server, case: str, expected: str, fn: Callable[[], tuple[int, bytes]],
          accept: Callable[[int, bytes], bool]) -> None:
    srv.reset_peak()
    t0 = time.monotonic()
    status, body = fn()
    dt = time.monotonic() - t0
    detail = body[:90].decode("utf-8", "replace").replace("\n", " ").replace("|", "/")
    record(case, expected, f"{status} {detail}", accept(status, body), dt, srv.peak_mb())


def healthz_ms(port: int) -> float:
    t0 = time.monotonic()
    status, _ = request(port, "GET", "/healthz", timeout=5)
    return (time.monotonic() - t0) * 1000 if status == 200 else float("inf")


# -- server cases ------------------------------------------------------------------------------------

def upload_cases(srv: Server) -> None:
    four = lambda s, b: 400 <= s < 500  # noqa: E731
    no_leak = lambda s, b: 400 <= s < 500 and b"/tmp" not in b and b"Error" not in b  # noqa: E731
    cases = [
        ("truncated PNG declaring 14000x14000 (216 B)", "400 before decoding", lambda: png(14000, 14000, 8, False)),
        ("1-bit PNG 15000x15000 (27 KB)", "400 on the header", lambda: png(15000, 15000, 1)),
        ("zlib TIFF 20000x20000", "400 on the header", lambda: tiff_bomb(20000)),
        ("zlib TIFF 30000x30000", "400 on the header", lambda: tiff_bomb(30000)),
        ("TIFF stack 600 x 300x300 (54 MP in all)", "400: frames counted", lambda: tiff_stack(600, 300)),
        ("garbage named .tif", "400, no path or class name", lambda: b"II*\0" + os.urandom(3000)),
        ("garbage named .png", "400, no path or class name", lambda: b"\x89PNG\r\n\x1a\n" + os.urandom(3000)),
    ]
    for case, expected, make in cases:
        data = make()
        name = "upload.tif" if "TIFF" in case or ".tif" in case else "upload.png"
        timed(srv, f"{case}, {len(data) // 1024} KB", expected, lambda n=name, d=data: post_file(srv, n, d), no_leak)
    timed(srv, "peak=1e-300 with noise=poisson", "422", lambda: post_file(
        srv, "a.png", photo(64), {"noise": "poisson", "peak": "1e-300"}),
        lambda s, b: s == 422)
    timed(srv, "model name ../../etc/passwd", "404", lambda: post_file(
        srv, "a.png", photo(64), {"model": "../../etc/passwd"}), lambda s, b: s == 404)
    timed(srv, "sigma=-0", "200, X-Sigma 0.00", lambda: post_file(srv, "a.png", photo(64), {"sigma": "-0"}),
          lambda s, b: s == 200)
    timed(srv, "malformed multipart", "4xx", lambda: request(
        srv.port, "POST", "/api/denoise", b"--x\r\nnonsense", {"Content-Type": "multipart/form-data; boundary=x"}),
        four)


def size_cases(srv: Server, limit_mb: int) -> None:
    big = 400 * 1024 * 1024
    timed(srv, f"Content-Length 400 MB (limit {limit_mb} MB)", "413 before the body", lambda: request(
        srv.port, "POST", "/api/denoise", b"", {"Content-Length": str(big), "Content-Type": "multipart/form-data; "
                                                "boundary=x"}), lambda s, b: s == 413)
    timed(srv, f"chunked upload of 400 MB (limit {limit_mb} MB)", f"413 after ~{limit_mb} MB, nothing spooled",
          lambda: _stream_chunked(srv, big), lambda s, b: s == 413)
    timed(srv, "1 MB request header", "431", lambda: request(
        srv.port, "GET", "/healthz", headers={"X-Big": "a" * (1 << 20)}), lambda s, b: s == 431)


def _stream_chunked(srv: Server, total: int) -> tuple[int, bytes]:
    """Send a chunked multipart body until the server answers; also checks its temp folder."""
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    c.sendall(f"POST /api/denoise HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nTransfer-Encoding: chunked\r\n"
              "Content-Type: multipart/form-data; boundary=x\r\nConnection: close\r\n\r\n".encode())
    block = b"\0" * (256 * 1024)
    head = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    sent, spooled = 0, 0
    try:
        c.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        while sent < total:
            c.sendall(b"%x\r\n%s\r\n" % (len(block), block))
            sent += len(block)
            spooled = max(spooled, _folder_bytes(srv.tmp))
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, body = _read_response(c)
    c.close()
    return status, body + f" (client sent {sent >> 20} MB, temp folder peak {spooled >> 20} MB)".encode()


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def slow_cases(srv: Server) -> None:
    srv.reset_peak()
    t0 = time.monotonic()
    socks, worst = [], 0.0
    for i in range(300):  # each dribbles one header line and then waits
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            break
        if i % 50 == 49:
            worst = max(worst, healthz_ms(srv.port))
    for _ in range(6):  # and keep dribbling for a while
        for s in socks:
            try:
                s.sendall(b"X-A: b\r\n")
            except OSError:
                pass
        worst = max(worst, healthz_ms(srv.port))
        time.sleep(0.5)
    for s in socks:
        s.close()
    record("300 slow-header connections (256 open files)", "/healthz within 1 s throughout",
           f"{len(socks)} opened, worst /healthz {worst:.0f} ms", worst < 1000, time.monotonic() - t0, srv.peak_mb())
    timed(srv, "request body dribbled (body timeout 5 s)", "408", lambda: _slow_body(srv), lambda s, b: s == 408)


def _slow_body(srv: Server) -> tuple[int, bytes]:
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    c.sendall(b"POST /api/denoise HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
              b"Content-Type: multipart/form-data; boundary=x\r\n\r\n"
              + b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n')
    try:
        for _ in range(40):  # a well-formed upload, one byte at a time
            c.sendall(b"\0")
            time.sleep(0.25)
    except OSError:
        pass
    out = _read_response(c)
    c.close()
    return out


def hangup_cases(srv: Server) -> None:
    """Three clients upload a large photo and hang up; a normal request must then be served fast."""
    data = photo(1500)
    body, ctype = multipart("big.png", data, {"sigma": "20", "model": "default_color"})
    srv.reset_peak()
    t0 = time.monotonic()
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", srv.port))
        c.sendall(f"POST /api/denoise HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nContent-Type: {ctype}"
                  "\r\n\r\n".encode() + body)
        time.sleep(1.0)
        c.close()
    t1 = time.monotonic()
    status, _ = post_file(srv, "small.png", photo(64), {"sigma": "20"})
    wait = time.monotonic() - t1
    record("3 large uploads, clients hang up after 1 s", "jobs cancelled: next request served in < 5 s",
           f"{status} after {wait:.1f} s", status == 200 and wait < 5, time.monotonic() - t0, srv.peak_mb())


def policy_cases(srv: Server) -> None:
    timed(srv, "cross-origin POST from https://evil.test", "403, not processed", lambda: post_file(
        srv, "a.png", photo(64), headers={"Origin": "https://evil.test"}), lambda s, b: s == 403)
    timed(srv, "CORS preflight from https://evil.test", "403", lambda: request(
        srv.port, "OPTIONS", "/api/denoise", headers={"Origin": "https://evil.test",
                                                      "Access-Control-Request-Method": "POST"}), lambda s, b: s == 403)
    for path in ("/", "/healthz", "/api/models"):
        timed(srv, f"HEAD {path}", "200", lambda p=path: request(srv.port, "HEAD", p, timeout=5),
              lambda s, b: s == 200)


# -- CLI cases ---------------------------------------------------------------------------------------

def cli(case: str, expected: str, args: list[str], codes: tuple[int, ...]) -> None:
    """Run one CLI case; its own peak RSS comes from wait4 on that child alone."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "deepdenoise", *args], stdout=subprocess.DEVNULL,
                                stderr=err_file)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read().decode("utf-8", "replace")
    lines = [ln for ln in err.splitlines() if ln.startswith("deepdenoise:")]
    outcome = f"exit {proc.returncode}: {(lines[-1] if lines else '')[13:100]}".replace("|", "/")
    record(case, expected, outcome, proc.returncode in codes and "Traceback" not in err, time.monotonic() - t0,
           usage.ru_maxrss / 1024)


def cli_cases(work: Path) -> None:
    (work / "bomb.tif").write_bytes(tiff_bomb(20000))
    cli("CLI: 400-megapixel zlib TIFF", "exit 3 on the header", ["denoise", str(work / "bomb.tif"), "-o",
                                                                 str(work / "o.tif")], (3,))
    (work / "stack.tif").write_bytes(tiff_stack(40, 300))
    cli("CLI: TIFF stack 40 x 300x300, --max-pixels 100000", "exit 3", ["denoise", str(work / "stack.tif"), "-o",
        str(work / "o2.tif"), "--max-pixels", "100000"], (3,))
    folder = work / "folder"
    folder.mkdir()
    (folder / "a.png").write_bytes(photo(64))
    with open(folder / "huge.bin", "wb") as f:
        f.truncate(20 * 1024**3)  # sparse 20 GB
    os.mkfifo(folder / "pipe.png")
    (folder / ".hidden").mkdir()
    cli("CLI: folder with a sparse 20 GB file, a FIFO, a hidden folder", "exit 0, each skip listed",
        ["denoise", str(folder), "-o", str(work / "out"), "--sigma", "10"], (0,))
    meta = {"format_version": 1, "architecture": "dncnn", "config": {"depth": 10_000_000, "features": 64}}
    (work / "m.json").write_text(json.dumps(meta))
    (work / "m.safetensors").write_bytes(b"\0" * 16)
    cli("CLI: metadata asking for depth 10,000,000", "exit 5", ["denoise", str(folder / "a.png"), "-o",
        str(work / "o3.png"), "--model", str(work / "m.safetensors")], (5,))
    import h5py

    with h5py.File(work / "evil.mat", "w") as f:
        f.create_group("net")["layers"] = h5py.ExternalLink("/etc/passwd", "/x")
    cli("CLI: .mat with an HDF5 external link to /etc/passwd", "exit 5, link not followed",
        ["denoise", str(folder / "a.png"), "-o", str(work / "o4.png"), "--model", str(work / "evil.mat")], (5,))
    import tifffile

    side = 8192  # 67 MP, beyond the streaming threshold: 268 MB as one float32 copy
    rng = np.random.default_rng(0)
    strip = np.clip(128 + 20 * rng.standard_normal((256, side)), 0, 255).astype(np.uint8)
    tiles = (strip[:, x:x + 256] for _ in range(side // 256) for x in range(0, side, 256))
    tifffile.imwrite(work / "huge.tif", tiles, shape=(side, side), dtype=np.uint8, tile=(256, 256), compression="zlib")
    cli(f"CLI: {side}x{side} gray TIFF, --max-pixels 0 (streamed in bands)", "exit 0",
        ["denoise", str(work / "huge.tif"), "-o", str(work / "huge_out.tif"), "--max-pixels", "0", "--model", "fast"],
        (0,))
    cli(f"CLI: the same {side}x{side} TIFF loaded whole (default limit), for comparison", "exit 0",
        ["denoise", str(work / "huge.tif"), "-o", str(work / "huge_loaded.tif"), "--model", "fast"], (0,))


# -- training: SIGKILL and damaged checkpoints -------------------------------------------------------

def training_cases(work: Path, kills: int = 20) -> None:
    from safetensors.torch import load_file

    patches = work / "patches"
    patches.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 256), ("test", 32)):
        np.save(patches / f"{name}.npy", rng.integers(0, 255, size=(n, 24, 24), dtype=np.uint8))
    base = (f"model: dncnn_tiny\ndata: {patches}\nbatch_size: 16\nepochs: 120\namp: false\ndevice: cpu\n"
            "checkpoint_minutes: 0.005\n")  # 1920 steps, a checkpoint every epoch and every 0.3 s

    def run(out: Path, resume: bool = False) -> subprocess.Popen[bytes]:
        cfg = work / f"{out.name}.yaml"
        cfg.write_text(base + f"out: {out}\n")
        args = ["train", "--resume", str(out)] if resume else ["train", "--config", str(cfg)]
        return subprocess.Popen([sys.executable, "-m", "deepdenoise", *args, "--quiet"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    def final(out: Path) -> dict[str, object]:
        name = json.loads((out / "checkpoint.json").read_text())["tensors"]
        return {k: v for k, v in load_file(str(out / name)).items() if k.startswith("model.")}

    t0 = time.monotonic()
    run(work / "clean").wait()
    ref = final(work / "clean")
    killed = work / "killed"
    rnd = random.Random(0)
    for _ in range(kills):
        p = run(killed, resume=(killed / "checkpoint.json").exists())
        time.sleep(rnd.uniform(1.5, 4.5))  # start-up takes ~1.5 s
        p.send_signal(signal.SIGKILL)
        p.wait()
    while run(killed, resume=(killed / "checkpoint.json").exists()).wait() != 0:
        pass
    same = all(np.allclose(ref[k].numpy(), v.numpy(), atol=1e-6) for k, v in final(killed).items())  # type: ignore[attr-defined]
    record(f"training: SIGKILL at {kills} random points, resumed each time", "same weights as uninterrupted",
           "identical" if same else "DIFFERENT", same, time.monotonic() - t0, None)
    corruption_cases(work, run, final, ref)


def corruption_cases(work: Path, run, final, ref) -> None:  # type: ignore[no-untyped-def]
    ok = 0
    kinds = ["truncated tensors", "zero-byte tensors", "garbage JSON", "JSON list", "path escape", "NaN weights",
             "random bytes", "missing tensors", "step as text", "zero-byte JSON"]
    t0 = time.monotonic()
    for i, kind in enumerate(kinds):
        out = work / f"corrupt{i}"
        p = run(out)
        time.sleep(2.5)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if not (out / "checkpoint-prev.json").exists():  # killed before its second checkpoint: finish it
            run(out, resume=(out / "checkpoint.json").exists()).wait()
        _corrupt(out, kind)
        code = run(out, resume=True).wait()
        if code == 0 and all(np.allclose(ref[k].numpy(), v.numpy(), atol=1e-6) for k, v in final(out).items()):
            ok += 1
    record("training: 10 corruptions of the newest checkpoint", "resumed from the previous, same weights",
           f"{ok}/10 identical", ok == 10, time.monotonic() - t0, None)


def _corrupt(out: Path, kind: str) -> None:
    meta = out / "checkpoint.json"
    tensors = out / json.loads(meta.read_text())["tensors"]
    if kind == "truncated tensors":
        tensors.write_bytes(tensors.read_bytes()[:200])
    elif kind == "zero-byte tensors":
        tensors.write_bytes(b"")
    elif kind == "garbage JSON":
        meta.write_text("{garbage")
    elif kind == "JSON list":
        meta.write_text("[]")
    elif kind == "path escape":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "tensors": "../../x.safetensors"}))
    elif kind == "NaN weights":
        from safetensors.torch import load_file, save_file

        t = load_file(str(tensors))
        t = {k: v * float("nan") if k.startswith("model.") else v for k, v in t.items()}
        save_file(t, str(tensors))
    elif kind == "random bytes":
        tensors.write_bytes(os.urandom(5000))
    elif kind == "missing tensors":
        tensors.unlink()
    elif kind == "step as text":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "step": "many"}))
    else:
        meta.write_text("")


# -- driver ------------------------------------------------------------------------------------------

def start_server(tmp: Path, limit_mb: int) -> Server:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "deepdenoise", "serve", "--port", str(port), "--max-upload-mb",
                             str(limit_mb), "--body-timeout", "5", "--header-timeout", "5"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, preexec_fn=limits)
    for _ in range(200):
        try:
            if request(port, "GET", "/healthz", timeout=1)[0] == 200:
                return Server(proc, port, tmp)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def markdown() -> str:
    keys = list(ROWS[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(r[k] for k in keys) + " |" for r in ROWS]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", help="write the table into this file between the attack-check markers")
    ap.add_argument("--training", action="store_true", help="also SIGKILL and corrupt a training run (~3 min)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="attack-"))
    srv_tmp = work / "server-tmp"
    srv_tmp.mkdir()
    srv = start_server(srv_tmp, LIMIT_MB)
    try:
        for group in (upload_cases, lambda s: size_cases(s, LIMIT_MB), slow_cases, hangup_cases, policy_cases):
            group(srv)
        left = [p.name for p in srv_tmp.iterdir()]
        record("temp files left by the server", "none", f"{len(left)} left", not left, 0.0, srv.peak_mb())
    finally:
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(10)
    cli_cases(work)
    if a.training:
        training_cases(work)
    table = markdown()
    print(table)
    if a.markdown:
        _write_table(Path(a.markdown), table)
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["ok"] == "yes" for r in ROWS) else 1


def _write_table(path: Path, table: str) -> None:
    start, end = "<!-- attack-check -->", "<!-- /attack-check -->"
    text = path.read_text() if path.exists() else f"{start}\n{end}\n"
    head, rest = text.split(start, 1)
    path.write_text(head + start + "\n" + table + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    threading.current_thread().name = "attack"
    sys.exit(main())
