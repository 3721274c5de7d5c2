"""The Predictor and its prepared-forward cache: keyed by the weights' content (never ``id()``, which
Python reuses for the next module), bounded, and every preset honours the Denoiser contract."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import smooth_image
from deepdenoise import denoise
from deepdenoise.inference import predictor as pred
from deepdenoise.inference.predictor import Predictor, weights_digest
from deepdenoise.models import PRESETS, Denoiser, create_model


def test_fresh_modules_each_get_their_own_prepared_forward() -> None:
    """200 models made and freed one after another (ids are reused): each output is its own eager
    forward's, through the cached folded backend."""
    img = smooth_image(37, 31)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 0.1, img.shape), 0, 1).astype(np.float32)
    ids = set()
    for k in range(200):
        torch.manual_seed(k)
        m = create_model("dncnn_tiny").eval()
        ids.add(id(m))
        with torch.inference_mode():
            want = m(torch.from_numpy(noisy)[None, None])[0, 0].numpy()
        got = denoise(noisy, sigma=25, model=m, backend="folded", tile=None)
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"model {k}")
        assert pred.cached_forwards() <= pred.PREPARED_KEEP
        del m
        gc.collect()
    assert len(ids) < 200  # the ids were reused: the case the content key exists for


def test_digest_follows_the_weights_not_the_object() -> None:
    torch.manual_seed(0)
    a = create_model("unet_tiny")
    b = create_model("unet_tiny")
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        next(b.parameters()).view(-1)[0] += 1e-3
    assert weights_digest(a) != weights_digest(b)
    b.load_state_dict(a.state_dict())
    b.int8_calibration = {"format": 1, "ranges": {}}  # another graph for int8
    assert weights_digest(a) != weights_digest(b)


def test_predictor_does_no_work_until_called_and_shares_the_cache() -> None:
    pred._PREPARED.clear()
    m = create_model("unet_tiny_rgb").eval()
    p = Predictor(m, "folded", tile=None)
    assert pred.cached_forwards() == 0  # the constructor prepares nothing
    x = smooth_image(37, 31, channels=3)
    y = p(x.copy(), 25.0)
    assert y.shape == x.shape and pred.cached_forwards() == 1
    Predictor(m, "folded", tile=None)(x.copy(), 25.0)
    assert pred.cached_forwards() == 1  # same weights and backend: the same prepared forward
    assert Predictor(m, "eager").forward is None  # the eager reference is the model itself


@pytest.mark.parametrize("name", sorted(n for n in PRESETS if "tiny" in n or n in ("unet_fast", "unet_fast_rgb")))
def test_every_preset_honours_the_contract(name: str) -> None:
    """Odd sizes in, the same size out; typed attributes agree with the network; a noise-map
    variant follows the level it is given."""
    torch.manual_seed(0)
    m = create_model(name).eval()
    assert isinstance(m, Denoiser) and not m.noise_input and m.map_channels == 0
    assert m.receptive_radius > 0 and m.multiple >= 1 and m.flops_per_pixel() > 0
    x = torch.rand(2, m.in_channels, 37, 31)
    with torch.inference_mode():
        assert m(x).shape == x.shape
    if PRESETS[name][0] == "unet":
        nm = create_model(name, noise_map=True, map_channels=m.in_channels).eval()
        assert nm.noise_input and nm.map_channels == m.in_channels
        with torch.no_grad():
            nm.head.weight[:, -nm.map_channels:] = 0.5  # the map channels' weights start at zero when grown
        with torch.inference_mode():
            low, high = nm(x, 5.0), nm(x, 50.0)
            per_pixel = nm(x, torch.full((2, nm.map_channels, 37, 31), 50.0))
        assert low.shape == x.shape and not torch.allclose(low, high)
        torch.testing.assert_close(per_pixel, high)


@pytest.mark.parametrize("channels", [1, 3])
def test_ensemble_is_the_mean_over_flips_and_rotations(channels: int) -> None:
    """ensemble=N averages the outputs on the first N of the 8 flips/rotations, each turned back;
    1 is the plain forward, and the progress counts every pass."""
    from deepdenoise.inference.predictor import _turn, _unturn

    torch.manual_seed(0)
    model = create_model("unet_tiny" if channels == 1 else "unet_tiny_rgb").eval()
    rng = np.random.default_rng(0)
    x = rng.random((37, 31) if channels == 1 else (37, 31, 3), dtype=np.float32)
    for k in range(8):
        np.testing.assert_array_equal(_unturn(_turn(x, k), k), x)
    plain = Predictor(model, "eager", tile=None)
    np.testing.assert_array_equal(Predictor(model, "eager", tile=None, ensemble=1)(x), plain(x))
    for n in (2, 8):
        want = np.mean([_unturn(plain(np.ascontiguousarray(_turn(x, k))), k) for k in range(n)], axis=0)
        np.testing.assert_allclose(Predictor(model, "eager", tile=None, ensemble=n)(x), want, atol=1e-5)
    seen: list[tuple[int, int]] = []
    big = rng.random((150, 131) if channels == 1 else (150, 131, 3), dtype=np.float32)
    tiled = Predictor(model, "eager", tile=16, ensemble=4)
    tiled(big, progress=lambda d, t: seen.append((d, t)))  # several tiles per pass
    assert seen[-1][0] == seen[-1][1] > 4 and len({t for _, t in seen}) == 1  # one bar over all passes
    assert not np.allclose(Predictor(model, "eager", tile=None, ensemble=8)(x), plain(x), atol=1e-4)
    with pytest.raises(ValueError, match="ensemble"):
        Predictor(model, "eager", ensemble=3)


def test_ensemble_setting_is_checked_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from deepdenoise import denoise_with_info
    from deepdenoise.cli import main
    from deepdenoise.errors import InputError

    x = np.random.default_rng(1).random((37, 31), dtype=np.float32)
    with pytest.raises(InputError, match="ensemble"):
        denoise_with_info(x, model="fast", ensemble=3)
    assert denoise_with_info(x, model="fast", ensemble=4).extra["ensemble"] == 4
    Image.fromarray((x * 255).astype(np.uint8)).save(tmp_path / "n.png")
    assert main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"), "--ensemble", "4"]) == 0
    assert "mean of 4 flips/rotations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "p.png"), "--ensemble", "3"])
