import numpy as np
import pytest
import torch

from deepdenoise.errors import ModelConfigError
from deepdenoise.models import create_model, list_presets, model_config

UNSHUFFLED = [("dncnn_tiny", 1, {"unshuffle": 2}), ("dncnn_tiny_rgb", 3, {"unshuffle": 2}),
              ("unet_tiny", 1, {"unshuffle": 2}), ("unet_tiny", 3, {"unshuffle": 2, "channels": 3})]


@pytest.mark.parametrize("name,channels,overrides", [("dncnn_tiny", 1, {}), ("dncnn_tiny_rgb", 3, {}),
                                                      ("unet_tiny", 1, {}), *UNSHUFFLED])
def test_forward_odd_sizes(name: str, channels: int, overrides: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, **overrides).eval()
    x = torch.rand(2, channels, 37, 31)
    y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_unet_rgb_and_noise_map() -> None:
    model = create_model("unet_tiny", channels=3, noise_map=True).eval()
    x = torch.rand(1, 3, 37, 31)
    assert model(x, 25.0).shape == x.shape
    assert not torch.allclose(model(x, 5.0), model(x, 50.0))
    with pytest.raises(ValueError):
        model(x)


def test_dncnn_is_residual() -> None:
    """With the last conv zeroed the network predicts no noise, so the output is the input."""
    model = create_model("dncnn_tiny").eval()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last.weight)
    x = torch.rand(1, 1, 37, 31)
    assert torch.equal(model(x), x)


def test_dncnn_s_preset_matches_paper() -> None:
    model = create_model("dncnn_s")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 17 and len(bns) == 15
    # first conv (with bias) + 15 x (conv without bias + BN scale/shift) + last conv
    assert sum(p.numel() for p in model.parameters()) == (9 * 64 + 64) + 15 * (9 * 64 * 64 + 128) + 9 * 64
    assert model.flops_per_pixel() == 2 * (9 * 64 + 15 * 64 * 64 * 9 + 64 * 9)


def test_registry_errors_and_listing() -> None:
    assert "dncnn_s" in list_presets()
    with pytest.raises(ValueError, match="unknown model preset"):
        create_model("nope")
    arch, cfg = model_config("dncnn_s", depth=20)
    assert arch == "dncnn" and cfg["depth"] == 20
    # a typo in a config is a model error (one CLI line, exit 5) that is still a ValueError
    with pytest.raises(ModelConfigError, match="unknown config key.*bogus"):
        create_model("dncnn_tiny", bogus=1)
    with pytest.raises(ValueError, match="one count per level"):
        create_model("unet_fast", blocks=[1, 2])


@pytest.mark.parametrize("name,channels,overrides", UNSHUFFLED)
def test_unshuffled_trunk_is_residual_and_cheaper(name: str, channels: int, overrides: dict) -> None:
    """The half-resolution trunk still predicts the noise: zero last conv, output == input."""
    model = create_model(name, **overrides).eval()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last.weight)
    if last.bias is not None:
        torch.nn.init.zeros_(last.bias)
    x = torch.rand(1, channels, 37, 31)
    assert torch.equal(model(x), x)


def test_fast_presets() -> None:
    """A trunk at half resolution costs about a quarter of the same trunk at full resolution."""
    for name in ("ffdnet_s", "unet_fast"):
        assert create_model(name).flops_per_pixel() < 0.3 * create_model(name, unshuffle=1).flops_per_pixel()
    fast, ref = create_model("unet_fast"), create_model("dncnn_s")
    assert fast.flops_per_pixel() * 8 < ref.flops_per_pixel()
    assert create_model("unet_fast_rgb").config.channels == 3
    assert create_model("ffdnet_s").multiple == 2


def test_blocks_per_level() -> None:
    """Fewer blocks at the fine levels: cheaper per pixel, smaller receptive field, same contract."""
    full = create_model("unet_fast")
    lean = create_model("unet_fast", blocks=[1, 2, 2, 2])  # a list, as YAML and JSON give it
    assert lean.config.blocks == (1, 2, 2, 2) and lean.level_blocks == (1, 2, 2, 2)
    assert len(lean.enc[0]) == 1 and len(lean.dec[-1]) == 1 and len(lean.enc[1]) == 2
    assert lean.flops_per_pixel() < full.flops_per_pixel() and lean.receptive_radius < full.receptive_radius
    assert create_model("unet_fast", blocks=2).level_blocks == full.level_blocks
    with pytest.raises(ValueError, match="one count per level"):
        create_model("unet_fast", blocks=(1, 2))
    x = torch.rand(1, 1, 37, 31)
    assert create_model("unet_tiny", blocks=(0, 1)).eval()(x).shape == x.shape


def test_padding_mirrors_and_falls_back_on_tiny_images() -> None:
    from deepdenoise.models.padding import pad_to_multiple

    x = torch.arange(5.0).reshape(1, 1, 1, 5).expand(1, 1, 5, 5).contiguous()  # columns 0..4
    p = pad_to_multiple(x, 8)
    assert p.shape == (1, 1, 8, 8)
    assert p[0, 0, 0, 5:].tolist() == [3.0, 2.0, 1.0]  # mirrored, not the edge value repeated
    tiny = torch.rand(1, 1, 1, 3)  # too small to mirror by 15: edge replication
    assert pad_to_multiple(tiny, 16).shape == (1, 1, 16, 16)
    assert pad_to_multiple(x[:, :, :4, :4], 4).shape == (1, 1, 4, 4)  # already a multiple


def test_keep_mean_keeps_the_local_brightness_and_tiles_match() -> None:
    """``keep_mean``: the predicted noise loses its local mean, so a model that would shift the
    brightness no longer can; the margin grows by 3 sigma, so tiles still equal the whole image."""
    import dataclasses

    from deepdenoise.inference.tiling import apply_model
    from deepdenoise.models.unet import local_mean

    flat = torch.full((1, 3, 37, 31), 0.4)
    torch.testing.assert_close(local_mean(flat, 4), flat)  # borders average what is there
    torch.manual_seed(0)
    plain = create_model("unet_tiny_rgb").eval()
    with torch.no_grad():
        plain.tail.weight.add_(0.05)  # a network that darkens or brightens
    kept = create_model("unet_tiny_rgb", keep_mean=4).eval()
    kept.load_state_dict(plain.state_dict())
    assert kept.receptive_radius == plain.receptive_radius + 12
    x = torch.rand(1, 3, 37, 31)
    with torch.no_grad():
        shift_plain = float((plain(x) - x).mean())
        shift_kept = float((kept(x) - x).mean())
    assert abs(shift_kept) < 0.1 * abs(shift_plain)
    img = np.random.default_rng(0).random((75, 61, 3), dtype=np.float32)
    whole = apply_model(kept, img, tile=None)
    tiled = apply_model(kept, img, tile=16)
    np.testing.assert_allclose(whole, tiled, atol=1e-5)
    assert dataclasses.asdict(kept.config)["keep_mean"] == 4
    from deepdenoise import denoise

    exported = denoise(img, model=kept, noise="gaussian", backend="onnxruntime", tile=None)  # the graph exports
    np.testing.assert_allclose(exported, whole, atol=1e-4)
