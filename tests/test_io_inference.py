from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import smooth_image
from deepdenoise.errors import InputError, OutputError
from deepdenoise.inference.api import denoise, denoise_with_info
from deepdenoise.inference.tiling import denoise_tensor
from deepdenoise.io import ImageData, read_image, write_image
from deepdenoise.models import create_model


@pytest.mark.parametrize("name,overrides", [("dncnn_tiny", {}), ("unet_tiny", {}),
                                            ("dncnn_tiny", {"unshuffle": 2}), ("unet_tiny", {"unshuffle": 2}),
                                            ("unet", {"features": (4, 8, 8), "blocks": (0, 1, 2)})])
def test_tiled_equals_whole_image(name: str, overrides: dict) -> None:
    """Exact receptive radius: tiles with that much margin reproduce the whole-image result."""
    torch.manual_seed(0)
    model = create_model(name, **overrides).eval()
    x = torch.rand(1, 1, 101, 77)
    whole = denoise_tensor(model, x, tile=None)
    tiled = denoise_tensor(model, x, tile=24)
    assert (whole - tiled).abs().max() < 1e-5
    for tile in (24, 8):  # in place, band by band; 8 < the margin: context spans earlier bands
        buf = x.clone()
        denoise_tensor(model, buf, tile=tile, out=buf)
        assert (whole - buf).abs().max() < 1e-5


def test_api_overwrites_only_what_it_owns() -> None:
    """uint8 input is converted (a private copy, denoised in place); a caller's float array is
    left alone unless overwrite_input=True, and either way the result is the same."""
    noisy = np.clip(smooth_image(90, 130, channels=3) + np.random.default_rng(0).normal(0, 0.1, (90, 130, 3)), 0, 1)
    f32 = noisy.astype(np.float32)
    keep = f32.copy()
    a = denoise(f32, sigma=25, model="default_color", tile=48)
    assert np.array_equal(f32, keep)
    b = denoise(f32, sigma=25, model="default_color", tile=48, overwrite_input=True)
    assert np.abs(a - b).max() < 1e-6 and np.shares_memory(b, f32)


def test_api_dtypes_shapes_and_tensors() -> None:
    img = smooth_image(37, 31)
    u8 = (img * 255).astype(np.uint8)
    u16 = (img * 65535).astype(np.uint16)
    assert denoise(u8, sigma=25, model="dncnn_s_sigma25").dtype == np.uint8
    assert denoise(u16, sigma=25, model="dncnn_s_sigma25").dtype == np.uint16
    out64 = denoise(img.astype(np.float64), sigma=25, model="dncnn_s_sigma25")
    assert out64.dtype == np.float64 and out64.shape == (37, 31)
    rgb = smooth_image(37, 31, channels=3)
    assert denoise(rgb, sigma=25).shape == (37, 31, 3)
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # [1, 3, H, W]
    assert denoise(t, sigma=25).shape == t.shape
    with pytest.raises(InputError):
        denoise(np.full((5, 5), np.nan, dtype=np.float32))
    with pytest.raises(InputError):
        denoise(img, sigma=-3)


def test_colour_image_gets_the_colour_sibling() -> None:
    """A shipped gray model with a colour sibling (default -> default_color, fast -> fast_color) hands colour images to
    it; a gray image, a model without a sibling and a module are taken as given."""
    from deepdenoise.inference.api import resolve_model_name

    assert resolve_model_name("default", color=True) == "default_color"
    assert resolve_model_name("default", color=False) == "default"
    assert resolve_model_name("fast", color=True) == "fast_color"
    assert resolve_model_name("dncnn_s_sigma25", color=True) == "dncnn_s_sigma25"
    assert resolve_model_name(None, color=True) == "default_color"
    rgb = smooth_image(37, 31, channels=3)
    res = denoise_with_info(rgb, sigma=25, model="default", backend="eager")
    _, info = res.image, res.info
    assert info["model"] == "default_color"
    res = denoise_with_info(rgb[:, :, 0], sigma=25, model="default", backend="eager")
    _, info = res.image, res.info
    assert info["model"] == "default"


def test_noise_above_the_trained_range_is_noted() -> None:
    """The models run at any sigma, but say so when it is well above what they were trained on."""
    img = smooth_image(37, 31)
    res = denoise_with_info(img, sigma=200, model="default", backend="eager")
    _, info = res.image, res.info
    assert len(info["notes"]) == 1 and "above the 75" in info["notes"][0]
    res = denoise_with_info(img, sigma=50, model="dncnn_s_sigma25", backend="eager")
    _, info = res.image, res.info
    assert "above the 25" in info["notes"][0]
    res = denoise_with_info(img, sigma=70, model="default", backend="eager")
    _, info = res.image, res.info
    assert info["notes"] == []
    res = denoise_with_info(img, sigma=200, model=create_model("unet_tiny").eval())
    _, info = res.image, res.info
    assert info["notes"] == []  # a bare module: nothing known about its training


def test_png16_rgba_and_tiff_float_roundtrip(tmp_path: Path) -> None:
    g16 = (smooth_image(23, 19) * 65535).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    d = read_image(tmp_path / "g16.png")
    assert d.bit_depth == 16 and np.allclose(d.pixels * 65535, g16, atol=0.5)
    write_image(tmp_path / "o16.png", d)
    assert read_image(tmp_path / "o16.png").bit_depth == 16
    rgba = (np.random.default_rng(0).random((11, 13, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    d = read_image(tmp_path / "a.png")
    assert d.alpha is not None and d.pixels.shape == (11, 13, 3)
    write_image(tmp_path / "b.png", d)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), rgba)
    f = ImageData(smooth_image(9, 7, channels=3), bit_depth=32, format="TIFF")
    write_image(tmp_path / "f.tif", f)
    back = read_image(tmp_path / "f.tif")
    assert back.bit_depth == 32 and np.array_equal(back.pixels, f.pixels)
    with pytest.raises(OutputError):
        write_image(tmp_path / "f.tif", f)


def test_working_tile_is_at_least_four_margins() -> None:
    from deepdenoise.inference.api import get_model
    from deepdenoise.inference.tiling import margin_for, working_tile

    fast, _ = get_model("fast")
    default, _ = get_model("default")
    assert margin_for(fast) == 224 and working_tile(fast, 512) == 896 and working_tile(fast, 2000) == 2000
    assert working_tile(default, 512) == 512 and working_tile(default, 100) == 192
    assert working_tile(fast, None) is None
