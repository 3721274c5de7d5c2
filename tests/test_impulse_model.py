"""A network trained for impulses: the detector's mask beside the image (unshuffled with it in the
fast U-Nets, so the trunk knows which sub-pixel is corrupted), the filled image as input, trained on
salt-and-pepper, random-valued impulses and bit errors, and used by noise='impulse' in one pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import smooth_image
from deepdenoise import denoise, denoise_with_info
from deepdenoise.errors import DeepDenoiseError, InputError
from deepdenoise.models import create_model
from deepdenoise.noise.impulse import fill_torch, impulse_training_batch, salt_and_pepper
from deepdenoise.training.config import TrainConfig
from deepdenoise.training.trainer import train
from deepdenoise.weights.format import load_weights


@pytest.mark.parametrize("name", ["unet_tiny", "unet_tiny_rgb", "unet_fast_rgb"])
def test_mask_model_contract(name: str) -> None:
    m = create_model(name, mask_input=True).eval()
    assert m.takes_mask and m.input_channels == 2 * m.in_channels
    x = torch.rand(2, m.input_channels, 37, 31)
    with torch.inference_mode():
        assert m(x).shape == (2, m.in_channels, 37, 31)


def test_fill_replaces_only_flagged_samples_from_their_neighbours() -> None:
    x = torch.full((1, 3, 20, 24), 0.3)
    mask = torch.zeros_like(x)
    mask[:, :, 5:9, 6:10] = 1
    x[mask.bool()] = 1.0  # impulses inside a flat region
    out = fill_torch(x, mask)
    torch.testing.assert_close(out, torch.full_like(x, 0.3))
    assert torch.equal(fill_torch(x, torch.ones_like(x)), torch.full_like(x, 0.5))  # nothing trusted


def test_training_batch_marks_the_corruption() -> None:
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(32, 3, 32, 32)
    target, inp = impulse_training_batch(clean, g, 32, lambda t: t)
    assert torch.equal(target, clean) and inp.shape == (32, 6, 32, 32)
    mask = inp[:, 3:]
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and 0.01 < float(mask.mean()) < 0.6
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(impulse_training_batch(clean, g2, 32, lambda t: t)[1], inp)  # a pure function of the seed


def test_config_pairs_impulse_noise_with_a_mask_model() -> None:
    with pytest.raises(DeepDenoiseError, match="mask"):
        TrainConfig(noise="impulse")
    with pytest.raises(DeepDenoiseError, match="mask"):
        TrainConfig(model="unet_tiny", model_overrides={"mask_input": True})


def test_train_resume_and_restore_with_a_tiny_mask_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for k in range(3):
        Image.fromarray((smooth_image(48, 56, 3, seed=k) * 255).astype(np.uint8)).save(images / f"{k}.png")
    crops = np.stack([(smooth_image(32, 32, 3, seed=10 + k) * 255).astype(np.uint8) for k in range(4)])
    np.save(tmp_path / "val.npy", crops)

    def cfg(epochs: int) -> TrainConfig:
        return TrainConfig(model="unet_tiny_rgb", model_overrides={"mask_input": True}, noise="impulse",
                           data_mode="images", image_dirs=[str(images)], color=True, patch_size=32,
                           batch_size=4, epochs=epochs, steps_per_epoch=3, sigma=0.0, val=str(tmp_path / "val.npy"),
                           lr=1e-3, loss="l1", amp=False, device="cpu", out=str(tmp_path / "run"))

    train(cfg(1), progress=False)
    summary = train(cfg(2), resume=True, progress=False)
    assert summary["steps"] == 6 and summary["best_val_psnr"] is not None
    model, _ = load_weights(tmp_path / "run" / "best.safetensors")
    assert model.takes_mask
    clean = smooth_image(37, 31, 3)
    noisy, _ = salt_and_pepper(clean, 0.3, seed=1)
    res = denoise_with_info(noisy, model=model, noise="impulse", tile=None)
    assert res.image.shape == clean.shape and res.extra["restoration"] == "mask model"
    assert 0.2 < res.extra["impulse_density"] < 0.4
    np.testing.assert_array_equal(denoise(noisy, model=model, tile=None), res.image)  # named, it names the noise
    with pytest.raises(InputError, match="noise='impulse'"):
        denoise(noisy, model=model, noise="gaussian")
    from deepdenoise.cli import main

    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(tmp_path / "n.png")
    weights = str(tmp_path / "run" / "best.safetensors")
    assert main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"), "--model", weights,
                 "--sigma", "10"]) == 0  # the network names the noise; the report says sigma was not used
    assert "a given sigma is not used" in capsys.readouterr().err


def test_a_gray_mask_model_restores_colour_channel_by_channel() -> None:
    """Impulses strike one sample, so a gray mask network serves colour one channel at a time: the
    same result as each channel restored as a gray image (salt-and-pepper is detected per channel)."""
    torch.manual_seed(0)
    model = create_model("unet_tiny", mask_input=True).eval()
    clean = smooth_image(37, 31, 3)
    noisy, _ = salt_and_pepper(clean, 0.2, seed=3)
    res = denoise_with_info(noisy, model=model, noise="impulse", density=0.2, tile=None)
    assert res.image.shape == clean.shape and res.extra["restoration"] == "mask model, channel by channel"
    for c in range(3):
        alone = denoise(np.ascontiguousarray(noisy[:, :, c]), model=model, noise="impulse", density=0.2, tile=None)
        np.testing.assert_allclose(res.image[:, :, c], alone, atol=1e-6)
