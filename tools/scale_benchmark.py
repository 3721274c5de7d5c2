"""Time and peak memory of ``deepdenoise denoise`` against image size (a benchmark, not a test).

Makes synthetic noisy RGB photos of 1, 4, 16 and 48 megapixels, runs the CLI on each under
``/usr/bin/time -v`` and prints seconds, seconds per megapixel and peak RSS.
Usage: python tools/scale_benchmark.py [--sizes 1 4 16 48] [--backend bf16] [--model default_color]
       [--tile 512] [--noise real]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = {1: (864, 1152), 4: (1728, 2304), 16: (3456, 4608), 48: (6000, 8000)}


def make_photo(path: Path, h: int, w: int) -> None:
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    rng = np.random.default_rng(0)
    img = np.empty((h, w, 3), np.uint8)
    for c, f in enumerate((5, 7, 11)):
        base = 0.5 + 0.3 * np.sin(f * xx * 6) * np.cos(f * yy * 4)
        img[:, :, c] = np.clip((base + rng.normal(0, 20 / 255, (h, w)).astype(np.float32)) * 255, 0, 255)
    Image.fromarray(img).save(path, quality=92)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 48], choices=sorted(SHAPES))
    ap.add_argument("--backend", default="eager")
    ap.add_argument("--model", default="default_color")
    ap.add_argument("--tile", type=int, help="the CLI's --tile (default: the CLI's default)")
    ap.add_argument("--noise", default="gaussian")
    a = ap.parse_args()
    print(f"{'MP':>4} {'size':>11} {'seconds':>8} {'s/MP':>6} {'peak RSS MiB':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for mp in a.sizes:
            h, w = SHAPES[mp]
            src, dst = Path(tmp) / f"in{mp}.jpg", Path(tmp) / f"out{mp}.png"
            make_photo(src, h, w)
            t0 = time.perf_counter()
            r = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "deepdenoise", "denoise", str(src),
                                "-o", str(dst), "--model", a.model, "--backend", a.backend, "--sigma", "20",
                                "--noise", a.noise, *(["--tile", str(a.tile)] if a.tile else [])],
                               capture_output=True, text=True)
            secs = time.perf_counter() - t0
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
            rss = int(m.group(1)) / 1024 if m else float("nan")
            status = "" if r.returncode == 0 else f"  (exit {r.returncode})"
            print(f"{h * w / 1e6:>4.0f} {w:>5}x{h:<5} {secs:>8.1f} {secs / (h * w / 1e6):>6.2f} {rss:>13.0f}{status}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
