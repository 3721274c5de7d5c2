"""Noise-level maps: the model input, the noise-level function estimate, tiling, training batches,
the prepared-forward cache, and the estimate command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import smooth_image
from deepdenoise.cli import main
from deepdenoise.inference.api import denoise, denoise_with_info
from deepdenoise.inference.levels import sigma_input
from deepdenoise.inference.tiling import apply_model
from deepdenoise.models import create_model
from deepdenoise.noise.level import NoiseLevel, estimate_noise_level


def map_model(channels: int = 1, unshuffle: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    name = "unet_tiny_rgb" if channels == 3 else "unet_tiny"
    model = create_model(name, noise_map=True, map_channels=channels, unshuffle=unshuffle).eval()
    with torch.no_grad():
        model.head.weight[:, -channels:] += 0.3  # an untrained map weight is tiny: make the map matter
    return model


@pytest.mark.parametrize("channels,unshuffle", [(1, 1), (3, 1), (3, 2)])
def test_map_forms_agree(channels: int, unshuffle: int) -> None:
    """A number, [B], [B, M] and a constant per-pixel map give the same output on an odd size."""
    model = map_model(channels, unshuffle)
    x = torch.rand(1, channels, 37, 31)
    with torch.no_grad():
        ref = model(x, 20.0)
        assert torch.allclose(model(x, torch.tensor([20.0])), ref, atol=1e-5)
        assert torch.allclose(model(x, torch.full((1, channels), 20.0)), ref, atol=1e-5)
        assert torch.allclose(model(x, torch.full((1, channels, 37, 31), 20.0)), ref, atol=1e-5)
        assert not torch.allclose(model(x, 40.0), ref, atol=1e-3)
        half = torch.full((1, channels, 37, 31), 20.0)
        half[:, :, :, 16:] = 40.0  # a level that changes across the image changes the output there
        varied = model(x, half)
        assert not torch.allclose(varied[..., 24:], ref[..., 24:], atol=1e-3)


def test_noise_level_map_follows_brightness_and_channels() -> None:
    nlf = NoiseLevel(((10.0, 30.0), (20.0, 20.0), (5.0, 5.0)))
    x = torch.zeros(1, 3, 20, 20)
    x[:, :, :, 10:] = 1.0
    m = nlf.map_for(x, 3)  # [1, 3, 20, 20]
    assert m.shape == (1, 3, 20, 20)
    assert m[0, 0, 5, 0] == pytest.approx(10.0) and m[0, 0, 5, 19] == pytest.approx(30.0)
    assert torch.all(m[0, 1] == 20.0) and torch.all(m[0, 2] == 5.0)
    assert nlf.map_for(x, 1).shape == (1, 1, 20, 20)  # one map for a one-channel model: the mean
    assert NoiseLevel.constant(7.0, 3).map_for(x, 3).unique().tolist() == [7.0]
    assert nlf.scaled(2.0).levels[0] == (20.0, 60.0) and nlf.channel(2).levels == ((5.0, 5.0),)
    blind = create_model("unet_tiny")
    assert sigma_input(blind, x, nlf) is None  # a blind model gets nothing made for it


def test_estimator_white_noise_and_brightness_dependence() -> None:
    rng = np.random.default_rng(0)
    clean = smooth_image(256, 256, channels=3, seed=1)
    for sigma in (10.0, 30.0):
        est = estimate_noise_level(clean + rng.standard_normal(clean.shape).astype(np.float32) * sigma / 255)
        assert est.typical() == pytest.approx(sigma, rel=0.12)
        assert est.correlated < 0.5  # white noise: the finest band judges the level
    ramp = np.tile(np.linspace(0.05, 0.95, 256, dtype=np.float32), (256, 1))
    het = ramp + rng.standard_normal(ramp.shape).astype(np.float32) * (2 + 40 * ramp) / 255  # grows with light
    levels = np.asarray(estimate_noise_level(het).levels[0])
    assert levels[-1] > 2.5 * levels[0]
    assert np.all(np.diff(levels) > -2.0)  # nearly monotone


def test_estimator_sees_correlated_noise() -> None:
    """Demosaiced-looking noise (white noise blurred over 2x2) is flagged as correlated and its
    pointwise level is found, where the finest wavelet band reads about half of it."""
    from deepdenoise.noise import estimate_sigma

    rng = np.random.default_rng(3)
    clean = smooth_image(256, 256, channels=3, seed=2)
    n = rng.standard_normal((257, 257, 3)).astype(np.float32)
    blurred = (n[:-1, :-1] + n[1:, :-1] + n[:-1, 1:] + n[1:, 1:]) / 2  # std 1, correlated
    noisy = clean + blurred * 20 / 255
    est = estimate_noise_level(noisy)
    assert est.correlated >= 0.5
    assert est.typical() == pytest.approx(20, rel=0.2)
    assert estimate_sigma(noisy) < 14


def test_tiled_equals_whole_with_a_noise_level_function() -> None:
    """The map is made per tile from the tile's own pixels; the margin covers its reach."""
    model = map_model(3, 2)
    img = smooth_image(90, 70, channels=3, seed=4)
    img = img + np.random.default_rng(0).standard_normal(img.shape).astype(np.float32) * 0.08
    nlf = NoiseLevel(((10.0, 30.0, 25.0),) * 3, (0.3, 0.4, 0.3))
    whole = apply_model(model, img, nlf, tile=None)
    tiled = apply_model(model, img, nlf, tile=24)
    assert np.abs(whole - tiled).max() < 1e-4


def test_gray_map_model_on_colour_uses_each_channels_level() -> None:
    model = map_model(1)
    img = smooth_image(33, 29, channels=3)
    nlf = NoiseLevel(((5.0,), (30.0,), (60.0,)))
    out = apply_model(model, img, nlf, tile=None)
    for k, s in enumerate((5.0, 30.0, 60.0)):
        assert np.allclose(out[:, :, k], apply_model(model, img[:, :, k], s, tile=None), atol=1e-5)


def test_fresh_modules_never_share_a_prepared_forward() -> None:
    """The prepared-forward cache is keyed by the weights, not by id(): a freed module's id goes
    to the next one, which must not get the old module's forward."""
    img = smooth_image(37, 31, seed=5)
    for k in range(30):
        torch.manual_seed(k)
        m = create_model("unet_tiny").eval()
        with torch.no_grad():
            want = m(torch.from_numpy(img)[None, None])[0, 0].numpy()
        got = denoise(img, model=m, backend="folded")
        assert np.abs(got - want).max() < 1e-5, k
        del m


def test_noise_map_model_follows_sigma_and_scale() -> None:
    model = map_model(3)
    img = smooth_image(40, 36, channels=3, seed=6)
    noisy = (img + np.random.default_rng(1).standard_normal(img.shape).astype(np.float32) * 0.1)
    res = denoise_with_info(noisy, sigma=5, model=model)
    a, info = res.image, res.info
    b = denoise(noisy, sigma=50, model=model)
    assert info["sigma"] == pytest.approx(5.0) and not np.allclose(a, b, atol=1e-3)
    res = denoise_with_info(noisy, model=model, backend="eager")
    est, info = res.image, res.info
    res = denoise_with_info(noisy, model=model, noise_scale=2.0, backend="eager")
    scaled, info2 = res.image, res.info
    assert info2["sigma"] == pytest.approx(2 * info["sigma"], rel=1e-3) and not np.allclose(est, scaled, atol=1e-3)
    with pytest.raises(Exception, match="noise_scale"):
        denoise(noisy, model=model, noise_scale=0)


def test_training_batches_with_maps_are_sharded_and_partial() -> None:
    from deepdenoise.data.sources import PatchSource
    from deepdenoise.training.config import TrainConfig
    from deepdenoise.training.distributed import DistInfo
    from deepdenoise.training.trainer import noisy_batch

    patches = (np.random.default_rng(0).random((32, 24, 24, 3)) * 255).astype(np.uint8)
    cfg = TrainConfig.from_dict(dict(color=True, batch_size=8, sigma=0, sigma_max=60, noise_maps="varying",
                                     map_partial=0.5, patch_size=24))
    src = PatchSource(patches, 8, 0)
    full = noisy_batch(src, cfg, 3, DistInfo(), torch.device("cpu"))
    halves = [noisy_batch(src, cfg, 3, DistInfo(rank=r, world=2), torch.device("cpu")) for r in (0, 1)]
    for k in range(3):
        assert torch.allclose(torch.cat([h[k] for h in halves]), full[k])  # any world size: the same data
    target, noisy, told = full
    assert told.shape == noisy.shape == target.shape == (8, 3, 24, 24)
    resid = ((noisy - target) * 255).flatten(1).std(1)
    assert torch.allclose(resid, told.flatten(1).mean(1), rtol=0.35, atol=1.5)  # what is left to remove


def test_estimate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = smooth_image(96, 80, channels=3)
    noisy = img + np.random.default_rng(0).standard_normal(img.shape).astype(np.float32) * 12 / 255
    src = tmp_path / "n.png"
    Image.fromarray(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(src)
    assert main(["estimate", str(src), "--plot", str(tmp_path / "nlf.png")]) == 0
    out = capsys.readouterr().out
    assert "typical noise level" in out and "brightness" in out and (tmp_path / "nlf.png").stat().st_size > 5000
    assert main(["estimate", str(src), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["levels"]) == 3 and d["typical"] == pytest.approx(12, rel=0.25)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert main(["estimate", str(tmp_path / "bad.png")]) == 3


def test_blind_model_honours_a_lower_level_and_says_so_for_a_higher_one() -> None:
    torch.manual_seed(0)
    blind = create_model("unet_tiny").eval()
    img = smooth_image(48, 40, seed=8)
    noisy = img + np.random.default_rng(2).standard_normal(img.shape).astype(np.float32) * 20 / 255
    full = denoise(noisy, model=blind)
    low = denoise(noisy, model=blind, sigma=5)
    assert np.abs(low - noisy).mean() < np.abs(full - noisy).mean()  # removes less: keeps the rest
    res = denoise_with_info(noisy, model=blind, sigma=60)
    high, info = res.image, res.info
    assert np.allclose(high, full) and info["blind_estimate"] == pytest.approx(20, rel=0.2)


def test_recorded_estimate_gain_scales_only_the_estimate(tmp_path: Path) -> None:
    from deepdenoise.weights.format import save_weights

    model = map_model(3)
    save_weights(model, tmp_path / "plain", {})
    save_weights(model, tmp_path / "gained", {"estimate_gain": 2.0})
    img = smooth_image(40, 36, channels=3, seed=9)
    noisy = img + np.random.default_rng(4).standard_normal(img.shape).astype(np.float32) * 0.06
    res = denoise_with_info(noisy, model=str(tmp_path / "plain.safetensors"))
    _, plain = res.image, res.info
    res = denoise_with_info(noisy, model=str(tmp_path / "gained.safetensors"))
    _, gained = res.image, res.info
    assert gained["sigma"] == pytest.approx(2 * plain["sigma"], rel=1e-3)
    res = denoise_with_info(noisy, model=str(tmp_path / "gained.safetensors"), sigma=10)
    _, told = res.image, res.info
    assert told["sigma"] == pytest.approx(10.0)  # a level the user gives is used as it is
