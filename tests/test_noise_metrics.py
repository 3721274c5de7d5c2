import numpy as np
import pytest
import torch

from deepdenoise.metrics import psnr, ssim
from deepdenoise.noise import add_gaussian_noise, add_noise_numpy, estimate_sigma


def test_noise_is_seeded_unclipped_and_has_the_right_std() -> None:
    x = torch.full((1, 1, 200, 200), 0.99)
    a = add_gaussian_noise(x, 25, seed=3)
    b = add_gaussian_noise(x, 25, seed=3)
    c = add_gaussian_noise(x, 25, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.max() > 1.0  # not clipped
    assert abs(float((a - x).std()) * 255 - 25) < 0.5


def test_per_sample_sigma() -> None:
    x = torch.zeros(2, 1, 100, 100)
    y = add_gaussian_noise(x, torch.tensor([5.0, 50.0]), seed=0)
    s = y.flatten(1).std(dim=1) * 255
    assert abs(float(s[0]) - 5) < 0.3 and abs(float(s[1]) - 50) < 2


def test_psnr_known_values_and_clipping() -> None:
    clean = np.zeros((10, 10))
    assert psnr(clean + 0.1, clean) == pytest.approx(20.0)
    assert psnr(clean - 5.0, clean) == float("inf")  # output clipped to [0, 1] first
    assert ssim(clean + 0.5, clean + 0.5) == pytest.approx(1.0)


@pytest.mark.parametrize("sigma", [10, 25, 50])
def test_estimate_sigma(camera: np.ndarray, sigma: float) -> None:
    noisy = add_noise_numpy(camera, sigma, seed=1)
    assert abs(estimate_sigma(noisy) - sigma) < 0.1 * sigma + 1.5


def test_haar_sigma_reads_white_noise_and_estimated_maps_replace_the_picked_patches() -> None:
    import torch

    from deepdenoise.noise import haar_sigma
    from deepdenoise.training.config import TrainConfig
    from deepdenoise.training.trainer import _estimated_levels

    g = torch.Generator().manual_seed(0)
    clean = torch.full((6, 3, 64, 64), 0.5)
    true = torch.tensor([5.0, 10, 20, 30, 40, 50]).reshape(-1, 1, 1, 1)
    noisy = clean + torch.randn(clean.shape, generator=g) * true / 255
    est = haar_sigma(noisy)  # [6, 3]
    assert est.shape == (6, 3)
    torch.testing.assert_close(est, true.reshape(-1, 1).expand(6, 3), rtol=0.08, atol=0.5)
    target = clean.clone()
    target[0] += 0.01  # a patch that keeps part of its noise is never told an estimate
    cfg = TrainConfig(batch_size=6, map_estimated=1.0)
    maps = _estimated_levels(clean, target, noisy, true.reshape(-1), cfg, g, lambda t: t)
    assert maps.shape == (6, 3, 64, 64)
    assert torch.all(maps[0] == 5.0)
    torch.testing.assert_close(maps[1:, :, 0, 0], est[1:])


def test_map_over_tells_some_clean_target_patches_more_than_their_noise() -> None:
    import torch

    from deepdenoise.training.config import TrainConfig
    from deepdenoise.training.trainer import _over_levels

    g = torch.Generator().manual_seed(1)
    clean = torch.full((64, 1, 8, 8), 0.5)
    target = clean.clone()
    target[:8] += 0.01  # patches that keep part of their noise are told exactly their level
    true = torch.linspace(5, 50, 64)
    cfg = TrainConfig(batch_size=64, map_over=0.5)
    told = _over_levels(clean, target, true, cfg, g, lambda t: t).reshape(-1)
    ratio = told / true
    assert torch.all(ratio[:8] == 1.0)
    assert torch.all((ratio >= 1.0) & (ratio < 2.0))
    assert 10 <= int((ratio[8:] > 1.0).sum()) <= 46  # about half of the 56 clean-target patches
    with pytest.raises(Exception, match="map_over"):
        TrainConfig(map_over=1.5)
