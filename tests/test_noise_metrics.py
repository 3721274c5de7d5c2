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
