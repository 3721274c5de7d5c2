"""Impulse noise: generators, the detector, restoration, and the API/CLI/web surface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from deepdenoise.cli import main
from deepdenoise.errors import InputError
from deepdenoise.evaluation.benchmark_impulse import adaptive_median, format_impulse_markdown, run_impulse_benchmark
from deepdenoise.inference.api import denoise, denoise_with_info
from deepdenoise.metrics import psnr
from deepdenoise.noise.impulse import (
    bit_errors,
    detect_impulses,
    fill,
    hot_dead_pixels,
    random_impulses,
    restore_impulses,
    salt_and_pepper,
)


@pytest.fixture
def gray() -> np.ndarray:
    return smooth_image(37, 31)


@pytest.fixture
def rgb() -> np.ndarray:
    return smooth_image(37, 31, 3)


def test_generators_are_seeded_and_hit_their_rates() -> None:
    x = np.full((200, 200), 0.5, np.float32)
    a, ma = salt_and_pepper(x, 0.3, seed=1)
    b, _ = salt_and_pepper(x, 0.3, seed=1)
    assert np.array_equal(a, b) and abs(ma.mean() - 0.3) < 0.01
    assert set(np.unique(a[ma])) <= {0.0, 1.0} and np.all(a[~ma] == 0.5)
    r, mr = random_impulses(x, 0.2, seed=2)
    assert abs(mr.mean() - 0.2) < 0.01 and np.all(r[~mr] == 0.5)
    y, my = bit_errors(x, 0.01, seed=3)
    assert abs(my.mean() - (1 - 0.99 ** 8)) < 0.005  # a sample is hit when any of its 8 bits flips
    stored, flipped = np.round(x * 255).astype(np.uint8), np.round(y * 255).astype(np.uint8)
    bits = np.unpackbits((stored ^ flipped)[..., None], axis=-1).mean()
    assert abs(bits - 0.01) < 0.001
    y16, _ = bit_errors(x, 0.01, bits=16, seed=3)
    assert np.all(np.abs(y16[~_] - 0.5) < 1e-4)
    v1, m1 = hot_dead_pixels((50, 60, 3), 0.01, seed=7)
    v2, m2 = hot_dead_pixels((50, 60, 3), 0.01, seed=7)
    assert np.array_equal(m1, m2) and np.all(m1[..., 0] == m1[..., 2])  # a sensor pixel: every channel


def test_detector_finds_salt_and_pepper_and_leaves_the_rest(gray: np.ndarray) -> None:
    y, mask = salt_and_pepper(gray, 0.3, seed=0)
    found = detect_impulses(y)
    real = mask & (np.abs(y - gray) > 0.05)  # a pepper on a black pixel changes nothing
    assert (found & real).sum() >= 0.98 * real.sum()
    assert (found & ~mask).sum() <= 0.01 * (~mask).sum()


def test_detector_finds_large_bit_errors_in_colour(rgb: np.ndarray) -> None:
    y, mask = bit_errors(rgb, 0.01, seed=0)
    found = detect_impulses(y)
    big = np.abs(y - rgb) > 0.2
    assert found.shape == rgb.shape
    assert (found & big).sum() >= 0.8 * big.sum()
    assert (found & ~mask).sum() <= 0.01 * (~mask).sum()


def test_fill_uses_only_trusted_samples() -> None:
    x = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (30, 1))
    mask = np.zeros_like(x, bool)
    mask[10:20, 10:20] = True
    y = np.where(mask, 1.0, x).astype(np.float32)
    out = fill(y, mask)
    assert np.array_equal(out[~mask], x[~mask])
    assert np.abs(out[mask] - x[mask]).max() < 0.08  # a smooth ramp continues through the hole


def test_restore_keeps_trusted_samples_and_beats_the_median(gray: np.ndarray) -> None:
    y, mask = salt_and_pepper(gray, 0.5, seed=4)
    res = restore_impulses(y, lambda img, s: img)  # whatever the denoiser does, trusted samples stay
    assert np.array_equal(res.image[~res.mask], y[~res.mask])
    assert psnr(fill(y, res.mask), gray) > psnr(adaptive_median(y), gray) - 1.0  # the fill alone
    res = restore_impulses(y, lambda img, s: denoise(img, sigma=s, model="fast", noise="gaussian"))
    assert psnr(res.image, gray) > psnr(adaptive_median(y), gray) + 1.0


def test_adaptive_median_cleans_sparse_specks_on_a_flat_image() -> None:
    x = np.full((40, 40), 0.4, np.float32)
    y, _ = salt_and_pepper(x, 0.2, seed=0)
    assert np.abs(adaptive_median(y) - x).max() < 1e-6


@pytest.mark.parametrize("color", [False, True])
def test_api_impulse_mode(color: bool) -> None:
    clean = smooth_image(37, 31, 3 if color else 0)
    noisy, _ = salt_and_pepper(clean, 0.2, seed=1)
    res = denoise_with_info(noisy, noise="impulse", model="fast_color" if color else "fast")
    out, info = res.image, res.info
    assert out.shape == clean.shape and out.dtype == np.float32
    assert psnr(out, clean) > psnr(noisy, clean) + 10
    assert 0.15 < info["impulse_density"] < 0.25 and info["density_estimated"]
    u8 = denoise((noisy * 255).astype(np.uint8), noise="impulse", density=0.2, model="fast_color" if color else "fast")
    assert u8.dtype == np.uint8
    with pytest.raises(InputError, match="density"):
        denoise(noisy, density=0.2)
    with pytest.raises(InputError, match="density"):
        denoise(noisy, noise="impulse", density=1.5)


def test_cli_and_web_impulse(tmp_path: Path, gray: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    noisy, _ = salt_and_pepper(gray, 0.2, seed=2)
    Image.fromarray((noisy * 255).astype(np.uint8)).save(tmp_path / "n.png")
    assert main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"), "--noise", "impulse",
                 "--model", "fast"]) == 0
    assert "impulses:" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "o2.png"), "--density", "0.2"]) == 2
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from deepdenoise.web.app import ServeConfig, create_app

    client = TestClient(create_app(ServeConfig()))
    data = (tmp_path / "n.png").read_bytes()
    r = client.post("/api/denoise", files={"image": ("n.png", data)}, data={"noise": "impulse", "model": "fast"})
    assert r.status_code == 200 and float(r.headers["X-Impulse-Density"]) > 0.1
    r = client.post("/api/denoise", files={"image": ("n.png", data)}, data={"density": "0.2"})
    assert r.status_code == 400


def test_benchmark_rows_and_table(tmp_path: Path, gray: np.ndarray) -> None:
    for i in range(2):
        Image.fromarray((smooth_image(37, 31, seed=i) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    rows = run_impulse_benchmark(tmp_path, "impulse", [0.3], model="fast")
    methods = [r["method"] for r in rows]
    assert methods[0] == "noisy" and methods[-1] == "deepdenoise" and "adaptive median (3-9)" in methods
    ours = next(r for r in rows if r["method"] == "deepdenoise")
    assert ours["psnr"] > max(r["psnr"] for r in rows if r["method"] != "deepdenoise")
    assert "dB over" in format_impulse_markdown(rows)
