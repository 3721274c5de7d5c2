"""deepdenoise: remove noise from photos and scientific images with deep CNNs."""

from deepdenoise.api import denoise
from deepdenoise.hub import load_model, save_weights, shipped_models
from deepdenoise.metrics import psnr, ssim
from deepdenoise.models import create_model
from deepdenoise.noise import add_gaussian_noise, add_noise_numpy, estimate_sigma

__version__ = "0.1.0"
__all__ = ["denoise", "create_model", "load_model", "save_weights", "shipped_models", "psnr", "ssim",
           "add_gaussian_noise", "add_noise_numpy", "estimate_sigma", "__version__"]
