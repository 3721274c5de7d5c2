"""TIFF stacks (z-stacks, time series, ImageJ hyperstacks) and float data outside [0, 1]: every
frame is denoised, the file comes back with the same axes, shape and type, nothing is clobbered."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import smooth_image
from deepdenoise.cli import main
from deepdenoise.metrics import psnr
from deepdenoise.noise import add_noise_numpy
from deepdenoise.noise.poisson import add_poisson_noise


def frames(n: int, h: int = 37, w: int = 31) -> np.ndarray:
    return np.stack([smooth_image(h, w, seed=i) for i in range(n)])  # [N, H, W] in [0, 1]


def test_uint16_zstack_roundtrip(tmp_path: Path) -> None:
    clean = frames(5)
    noisy = np.stack([add_noise_numpy(f, 20, seed=i) for i, f in enumerate(clean)])
    src, dst = tmp_path / "z.tif", tmp_path / "z_out.tif"
    tifffile.imwrite(src, np.round(np.clip(noisy, 0, 1) * 65535).astype(np.uint16))
    before = src.read_bytes()
    assert main(["denoise", str(src), "-o", str(dst)]) == 0
    out = tifffile.imread(dst)
    assert out.shape == (5, 37, 31) and out.dtype == np.uint16
    for i in range(5):
        assert psnr(out[i] / 65535.0, clean[i]) > psnr(np.clip(noisy[i], 0, 1), clean[i]) + 3
    assert src.read_bytes() == before
    assert main(["denoise", str(src), "-o", str(tmp_path / "z.png")]) == 4  # a stack needs TIFF
    assert not (tmp_path / "z.png").exists()


def test_imagej_hyperstack_of_photon_counts(tmp_path: Path) -> None:
    clean = frames(6, 48, 40)
    counts = np.stack([add_poisson_noise(f, 30, seed=i) for i, f in enumerate(clean)]) * 30  # photons
    src, dst = tmp_path / "h.tif", tmp_path / "h_out.tif"
    tifffile.imwrite(src, counts.astype(np.float32).reshape(2, 3, 48, 40), imagej=True, metadata={"axes": "TZYX"})
    assert main(["denoise", str(src), "-o", str(dst), "--noise", "poisson"]) == 0
    with tifffile.TiffFile(dst) as tf:
        assert tf.series[0].axes == "TZYX"
        out = tf.series[0].asarray().reshape(6, 48, 40)
    assert out.dtype == np.float32
    for i in range(6):  # back in photon units: compare against the expected counts
        assert psnr(out[i] / 30, clean[i]) > psnr(np.clip(counts[i] / 30, 0, 1), clean[i]) + 3


def test_color_stack_and_gray_option(tmp_path: Path) -> None:
    clean = np.stack([np.stack([f, f[::-1], f[:, ::-1]], -1) for f in frames(3)])  # [3, H, W, 3]
    noisy = np.clip(add_noise_numpy(clean, 15, seed=0), 0, 1)
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, np.round(noisy * 255).astype(np.uint8), photometric="rgb")
    assert main(["denoise", str(src), "-o", str(tmp_path / "c_out.tif"), "--model", "fast"]) == 0
    assert tifffile.imread(tmp_path / "c_out.tif").shape == (3, 37, 31, 3)
    assert main(["denoise", str(src), "-o", str(tmp_path / "g_out.tif"), "--gray"]) == 0
    assert tifffile.imread(tmp_path / "g_out.tif").shape == (3, 37, 31)


@pytest.mark.parametrize("offset,scale", [(0.0, 1000.0), (-50.0, 400.0)])
def test_float_image_outside_unit_range(tmp_path: Path, offset: float, scale: float) -> None:
    clean = smooth_image(40, 44, seed=3)
    noisy = add_noise_numpy(clean, 20, seed=1)
    src = tmp_path / "f.tif"
    tifffile.imwrite(src, (noisy * scale + offset).astype(np.float32))
    assert main(["denoise", str(src), "-o", str(tmp_path / "f_out.tif")]) == 0
    out = (tifffile.imread(tmp_path / "f_out.tif") - offset) / scale  # back to [0, 1] units
    assert psnr(np.clip(out, 0, 1), clean) > psnr(np.clip(noisy, 0, 1), clean) + 3
