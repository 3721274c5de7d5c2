"""Simulate a sky field as a CCD FITS file, denoise it with the CLI, draw noisy / ours / truth.

    python tools/astro_figure.py --out docs/img/astro_field.png [--keep DIR]

The field (stars, galaxies, sky, Poisson + read noise; GAIN and RDNOISE in the header) is written to
``field.fits`` with its truth beside it; ``deepdenoise denoise field.fits -o clean.fits`` is run as a
user would; the figure shows the three with the same asinh stretch (the faint end visible) and a
zoom on faint galaxies.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img/astro_field.png")
    ap.add_argument("--keep", help="folder to keep field.fits, truth.fits and clean.fits in")
    ap.add_argument("--seed", type=int, default=100)
    a = ap.parse_args()
    from astropy.io import fits

    from deepdenoise.astro.field import field_header, simulate_field

    work = Path(a.keep or tempfile.mkdtemp(prefix="astro-"))
    work.mkdir(parents=True, exist_ok=True)
    field = simulate_field(a.seed, size=320, stars=70, galaxies=25)
    hdu = fits.PrimaryHDU(field.noisy)
    for key, (value, comment) in field_header(field).items():
        hdu.header[key] = (value, comment)
    hdu.writeto(work / "field.fits", overwrite=True)
    fits.PrimaryHDU(field.truth.astype(np.float32)).writeto(work / "truth.fits", overwrite=True)
    cmd = ["deepdenoise", "denoise", str(work / "field.fits"), "-o", str(work / "clean.fits"), "--overwrite"]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    clean = fits.getdata(work / "clean.fits").astype(np.float64)
    draw(field, clean, Path(a.out))
    print(a.out)
    return 0


def draw(field, clean: np.ndarray, out: Path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sky_sigma = float(np.sqrt(150.0 + 25.0) / 2.0)

    def stretch(x: np.ndarray) -> np.ndarray:  # asinh: linear near the sky, logarithmic for stars
        return np.arcsinh((x - field.sky) / (2 * sky_sigma)) / np.arcsinh(400.0)

    panels = [("noisy (Poisson + read noise)", field.noisy), ("deepdenoise", clean), ("truth", field.truth)]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4))
    for col, (title, img) in enumerate(panels):
        for row, (ys, xs) in enumerate([(slice(None), slice(None)), (slice(40, 140), slice(40, 140))]):
            ax = axes[row, col]
            ax.imshow(stretch(np.asarray(img, np.float64))[ys, xs], cmap="gray", vmin=-0.05, vmax=0.6,
                      origin="lower", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title)
    axes[1, 0].set_ylabel("zoom, 100x100 px")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
