"""Photon-limited (Poisson-Gaussian) noise: simulation, the variance-stabilising transform and its
unbiased inverse, the noise-model estimator, and denoising through the API, CLI and service."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from deepdenoise import denoise, denoise_with_info
from deepdenoise.cli import main
from deepdenoise.errors import InputError
from deepdenoise.metrics import psnr
from deepdenoise.noise.poisson import (
    NoiseModel,
    add_poisson_noise,
    denoise_stabilised,
    estimate_noise_model,
    gat,
    inverse_gat,
)


def test_simulation_statistics_and_seed() -> None:
    x = np.full((200, 200), 0.4, np.float32)
    y = add_poisson_noise(x, peak=20, sigma=10, seed=3)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, add_poisson_noise(x, 20, 10, seed=3))
    assert not np.array_equal(y, add_poisson_noise(x, 20, 10, seed=4))
    assert abs(y.mean() - 0.4) < 0.005
    expected = 0.4 / 20 + (10 / 255) ** 2  # a x + b
    assert abs(y.var() / expected - 1) < 0.05
    counts = add_poisson_noise(x, peak=20, seed=0) * 20  # pure Poisson: whole photon counts
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)
    with pytest.raises(InputError):
        add_poisson_noise(x - 1, 20)
    with pytest.raises(InputError):
        add_poisson_noise(x, 0)


@pytest.mark.parametrize("peak,read", [(20, 0), (100, 0), (20, 15)])
def test_gat_stabilises_variance_and_inverse_is_unbiased(peak: float, read: float) -> None:
    nm = NoiseModel.from_peak(peak, read)
    for level in (0.25, 0.5, 1.0):  # 5 to 100 expected photons
        y = add_poisson_noise(np.full((300, 300), level, np.float32), peak, read, seed=1)
        z = gat(y, nm)
        assert abs(z.std() - 1) < 0.08, (level, z.std())
        # a perfect denoiser returns E[f(y)]; the unbiased inverse maps it back to the intensity
        back = float(inverse_gat(np.array([z.mean()]), nm)[0])
        assert abs(back / level - 1) < 0.02, (level, back)


def test_unbiased_inverse_beats_algebraic_at_low_counts() -> None:
    nm = NoiseModel.from_peak(2.0)
    y = add_poisson_noise(np.full((400, 400), 0.5, np.float32), 2.0, seed=0)  # 1 photon on average
    ez = np.array([gat(y, nm).mean()])
    algebraic = ((ez / 2) ** 2 - 0.375) * nm.a
    unbiased = inverse_gat(ez, nm)
    assert abs(unbiased[0] - 0.5) < 0.03 < abs(algebraic[0] - 0.5)


def test_inverse_is_monotone_and_nonnegative() -> None:
    nm = NoiseModel.from_peak(10.0, 5.0)
    d = np.linspace(-1, 30, 500)
    out = inverse_gat(d, nm)
    assert (out >= 0).all() and (np.diff(out) >= -1e-7).all()


@pytest.mark.parametrize("peak,read", [(5, 0), (30, 0), (30, 10)])
def test_estimate_noise_model(peak: float, read: float) -> None:
    x = smooth_image(256, 256, seed=2)
    est = estimate_noise_model(add_poisson_noise(x, peak, read, seed=0))
    assert abs(np.log(est.peak / peak)) < 0.2, est
    assert abs(est.sigma - read) < 6, est
    color = np.stack([x, x[::-1], x[:, ::-1]], -1)
    est = estimate_noise_model(add_poisson_noise(color, peak, read, seed=0))
    assert abs(np.log(est.peak / peak)) < 0.2, est
    with pytest.raises(InputError):
        estimate_noise_model(x[:4, :4])


def test_estimate_ignores_clipped_highlights() -> None:
    x = np.clip(smooth_image(256, 256, seed=1) * 1.4, 0, 1)  # a bright image: noise clipped at full scale
    y = np.clip(add_poisson_noise(x, 10, seed=0), 0, 1)
    assert abs(np.log(estimate_noise_model(y).peak / 10)) < 0.25


def test_denoise_stabilised_with_oracle_denoiser() -> None:
    """With a denoiser that returns the transformed clean image, the round trip recovers the image
    (the noise level it is told is 255 / range of the transformed image)."""
    x = smooth_image(64, 64, seed=0) * 0.8 + 0.1
    nm = NoiseModel.from_peak(50)
    y = add_poisson_noise(x, 50, seed=0)
    levels = []

    def oracle(z: np.ndarray, level: float) -> np.ndarray:
        levels.append(level)
        lo, scale = 2 * np.sqrt(0.375), level / 255
        return (2 * np.sqrt(x / nm.a + 0.375) - lo) * scale  # E[f(y)] ~ f(x) at these counts
    out, level = denoise_stabilised(y, nm, oracle)
    assert levels == [level] and 0 < level < 255
    assert psnr(out, x) > 40


def test_api_poisson_beats_gaussian_and_keeps_dtype(camera: np.ndarray) -> None:
    y = add_poisson_noise(camera, 10, seed=0)
    plain = psnr(np.clip(denoise(y), 0, 1), camera)
    res = denoise_with_info(y, noise="poisson")
    out, info = res.image, res.info
    assert psnr(np.clip(out, 0, 1), camera) > plain + 2
    assert info["noise"] == "poisson" and info["sigma_estimated"] and abs(np.log(info["peak"] / 10)) < 0.2
    res = denoise_with_info(y, noise="poisson", peak=10)
    given, info = res.image, res.info
    assert not info["sigma_estimated"] and info["peak"] == 10 and info["read_sigma"] == 0
    assert psnr(np.clip(given, 0, 1), camera) > plain + 2
    u16 = np.round(np.clip(y, 0, 1) * 65535).astype(np.uint16)
    out16 = denoise(u16, noise="poisson", peak=10)
    assert out16.dtype == np.uint16 and out16.shape == u16.shape
    rgb = np.stack([y, y, y], -1)
    assert denoise(rgb, noise="poisson", peak=10).shape == rgb.shape


@pytest.mark.parametrize("kwargs", [dict(noise="salt"), dict(peak=10), dict(noise="poisson", peak=-1),
                                    dict(noise="poisson", peak=float("nan"))])
def test_api_rejects_bad_noise_arguments(kwargs: dict) -> None:
    with pytest.raises(InputError):
        denoise(np.zeros((16, 16), np.float32), **kwargs)


def save(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(path)


def exit_code(args: list[str]) -> int:
    """The CLI's exit status, whether argparse or the command refused the arguments."""
    try:
        return main(args)
    except SystemExit as e:
        return int(e.code or 0)


def test_cli_denoise_poisson(tmp_path: Path, camera: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    save(tmp_path / "n.png", add_poisson_noise(camera[:96, :96], 20, seed=0))
    assert main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "c.png"), "--noise", "poisson"]) == 0
    assert "Poisson peak" in capsys.readouterr().err
    assert (tmp_path / "c.png").exists()
    for bad in (["--peak", "5"], ["--noise", "poisson", "--peak", "-5"], ["--noise", "poisson", "--peak", "x"]):
        assert exit_code(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "d.png"), *bad]) == 2
    assert not (tmp_path / "d.png").exists()


def test_cli_evaluate_poisson_json(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    for i in range(2):
        save(tmp_path / "ds" / f"{i}.png", smooth_image(37, 31, seed=i))
    out = tmp_path / "r.json"
    assert main(["evaluate", "--model", "fast", "--dataset", str(tmp_path / "ds"), "--noise", "poisson",
                 "--peak", "5", "30", "--sigma", "0", "10", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["results"]
    assert [(r["peak"], r["sigma"]) for r in res] == [(5, 0), (5, 10), (30, 0), (30, 10)]
    assert all(r["noise"] == "poisson" and r["psnr_denoised"] > r["psnr_noisy"] for r in res)
    assert exit_code(["evaluate", "--dataset", str(tmp_path / "ds"), "--noise", "poisson"]) == 2  # no --peak


def test_transforms_in_blocks_match_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import deepdenoise.noise.poisson as P

    y = add_poisson_noise(smooth_image(37, 31, seed=0), 10, 5, seed=0)
    nm = NoiseModel.from_peak(10, 5)
    whole_f, whole_i = gat(y, nm), inverse_gat(gat(y, nm), nm)
    monkeypatch.setattr(P, "BAND", 7)  # blocks that do not divide the image
    np.testing.assert_array_equal(gat(y, nm), whole_f)
    np.testing.assert_array_equal(inverse_gat(whole_f, nm), whole_i)
    assert whole_f.dtype == np.float32 and whole_f.shape == y.shape
