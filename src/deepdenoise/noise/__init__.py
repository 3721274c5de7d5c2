"""Noise: synthesising it (Gaussian, camera pipelines, Poisson, impulses) and measuring it (a
photo's noise-level function, :mod:`.level`). Pure array functions; no models, no files."""

from __future__ import annotations

from deepdenoise.noise.gaussian import (
    add_gaussian_noise,
    add_noise_numpy,
    estimate_sigma,
    haar_sigma,
    local_std,
    make_generator,
    random_noise_maps,
)

__all__ = ["add_gaussian_noise", "add_noise_numpy", "estimate_sigma", "haar_sigma", "local_std", "make_generator",
           "random_noise_maps"]
