"""Load check for ``deepdenoise serve`` (a script, not a unit test).

Starts the server on loopback, sends N concurrent uploads of a 1-megapixel noisy image, and prints
throughput, p50/p99 latency, the server's peak memory (VmHWM) and the error count.
Usage: python tools/load_check.py [--requests 50] [--concurrency 50] [--size 1000]
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--size", type=int, default=1000, help="image side in pixels (1000: 1 MP)")
    ap.add_argument("--backend", default="eager", help="the server's inference backend")
    a = ap.parse_args()
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "deepdenoise", "serve", "--port", str(port),
                               "--queue", str(a.requests), "--backend", a.backend],
                              stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:a.size, 0:a.size] / a.size
        clean = 0.5 + 0.3 * np.sin(8 * xx) * np.cos(6 * yy)
        noisy = np.clip(clean + rng.normal(0, 25 / 255, clean.shape), 0, 1)
        buf = io.BytesIO()
        Image.fromarray((noisy * 255).astype(np.uint8)).save(buf, format="PNG")
        payload = buf.getvalue()

        def one(_: int) -> tuple[float, int]:
            t0 = time.perf_counter()
            try:
                r = httpx.post(url + "/api/denoise", files={"image": ("x.png", payload, "image/png")},
                               data={"sigma": "25"}, timeout=3600)
                return time.perf_counter() - t0, r.status_code
            except httpx.HTTPError:
                return time.perf_counter() - t0, 0

        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.concurrency) as pool:
            results = list(pool.map(one, range(a.requests)))
        wall = time.perf_counter() - t0
        peak_kb = 0
        with open(f"/proc/{server.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak_kb = int(line.split()[1])
        lat = sorted(r[0] for r in results)
        errors = sum(1 for r in results if r[1] != 200)
        p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
        print(f"backend {a.backend}; requests {a.requests}, concurrency {a.concurrency}, image {a.size}x{a.size} "
              f"({a.size * a.size / 1e6:.1f} MP, {len(payload) / 1e6:.2f} MB PNG)")
        print(f"throughput {a.requests / wall:.3f} req/s ({a.requests * a.size * a.size / 1e6 / wall:.3f} MP/s), "
              f"wall {wall:.1f} s")
        print(f"latency p50 {statistics.median(lat):.2f} s, p99 {p99:.2f} s")
        print(f"server peak memory (VmHWM) {peak_kb / 1024:.0f} MiB")
        print(f"errors {errors}")
        return 1 if errors else 0
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
