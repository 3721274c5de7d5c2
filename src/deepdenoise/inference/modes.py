"""One strategy per noise kind, each turning a float image into a denoised one with a
:class:`~deepdenoise.inference.predictor.Predictor`:

- ``gaussian``: additive white noise; the model is given a level (``sigma``, or the photo's
  estimated noise-level function, brightness by brightness and channel by channel);
- ``camera``: a camera photo's noise, made spatially correlated by demosaicing and JPEG: a
  camera-noise model directly, or a white-noise model through pixel-shuffle down-sampling;
- ``poisson``: photon-limited, signal-dependent noise, stabilised by the generalized Anscombe
  transform (:mod:`deepdenoise.noise.poisson`);
- ``impulse``: salt-and-pepper, random-valued impulses, bit errors, hot/dead pixels: the corrupted
  samples are found and only they are restored (:mod:`deepdenoise.noise.impulse`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepdenoise.inference.predictor import Predictor
from deepdenoise.models import Denoiser
from deepdenoise.noise import estimate_sigma
from deepdenoise.noise.level import NoiseLevel, estimate_noise_level

Progress = Callable[[int, int], None]
Level = float | NoiseLevel


@dataclass
class Job:
    """What every mode needs: the prepared model, its metadata, and the user's level settings."""

    predictor: Predictor
    meta: dict[str, Any]
    sigma: float | None  # the level the user gave (0-255), None: estimate
    noise_scale: float = 1.0
    progress: Progress | None = None
    inplace: bool = False  # the image array is ours to overwrite
    estimate: NoiseLevel | None = None  # the image's noise-level function, when already measured


@dataclass
class ModeResult:
    image: np.ndarray
    sigma: float  # the typical level the model was given (0-255; poisson: the stabilised level)
    extra: dict[str, Any] = field(default_factory=dict)


def noise_level_for(net: Denoiser, x: np.ndarray, sigma: float | None, scale: float = 1.0,
                    pd_stride: int = 1, estimate: NoiseLevel | None = None) -> Level:
    """The level ``net`` is given for image x: a noise-map model gets ``sigma`` (one level, every
    channel) or the image's estimated noise-level function, times ``scale``; a blind model takes
    no level, which is then only reported (the finest-band estimate, on the PD sub-image)."""
    channels = x.shape[2] if x.ndim == 3 else 1
    if net.noise_input:
        level = NoiseLevel.constant(sigma, channels) if sigma is not None else estimate or estimate_noise_level(x)
        return level.scaled(scale) if scale != 1 else level
    if sigma is not None:
        return float(sigma) * scale
    return estimate_sigma(x[::pd_stride, ::pd_stride]) * scale


def estimate_gain(meta: dict[str, Any], sigma: float | None) -> float:
    """What a model's estimated level is multiplied by (1 when the user gave ``sigma``): a model
    trained on simulated noise may want a higher level than the estimate reads on real photos,
    measured on held-out real pairs and recorded in its metadata as ``estimate_gain``."""
    gain = meta.get("estimate_gain", 1.0) if sigma is None else 1.0
    return float(gain) if isinstance(gain, (int, float)) and 0.1 <= gain <= 10 else 1.0


def training_noise(meta: dict[str, Any]) -> str:
    """The noise a shipped model was trained on: 'gaussian', or 'camera' (simulated camera noise)."""
    training = meta.get("training")
    cfg = training.get("config", {}) if isinstance(training, dict) else {}
    return str(cfg.get("noise", "gaussian"))


def typical_level(level: Level) -> float:
    return level.typical() if isinstance(level, NoiseLevel) else float(level)


def level_info(level: Level) -> dict[str, Any]:
    """What the result reports of a noise-level function (its table), for the CLI, page and headers."""
    return {"noise_level": level.to_dict()} if isinstance(level, NoiseLevel) and not level.is_constant else {}


class GaussianMode:
    name = "gaussian"

    def run(self, job: Job, x: np.ndarray) -> ModeResult:
        net = job.predictor.model
        level = noise_level_for(net, x, job.sigma, job.noise_scale * estimate_gain(job.meta, job.sigma),
                                estimate=job.estimate)
        den = job.predictor(x, level, job.progress, inplace=job.inplace)
        return ModeResult(den, typical_level(level), level_info(level))


@dataclass
class CameraMode:
    """Camera noise: a model trained on it runs directly; a white-noise model runs on the polyphase
    sub-images (stride ``pd_stride``), where the noise is nearly white, then refines (1 + stride^2
    passes, :mod:`deepdenoise.inference.pd`)."""

    pd_stride: int = 2
    name = "camera"

    def run(self, job: Job, x: np.ndarray) -> ModeResult:
        from deepdenoise.inference.pd import pd_denoise

        stride = 1 if training_noise(job.meta) == "camera" else self.pd_stride
        net = job.predictor.model
        level = noise_level_for(net, x, job.sigma, job.noise_scale * estimate_gain(job.meta, job.sigma), stride)
        den = pd_denoise(lambda im, tick: job.predictor(im, level, tick, inplace=True), x, stride,
                         progress=job.progress)
        return ModeResult(den, typical_level(level), {"pd_stride": stride, **level_info(level)})


@dataclass
class PoissonMode:
    """Photon counts: ``peak`` photons at full scale and ``sigma`` the Gaussian read noise (0-255);
    whichever is omitted is estimated from the image."""

    peak: float | None = None
    name = "poisson"

    def run(self, job: Job, x: np.ndarray) -> ModeResult:
        from deepdenoise.noise.poisson import NoiseModel, denoise_stabilised, estimate_noise_model

        nm = estimate_noise_model(x) if self.peak is None else NoiseModel.from_peak(self.peak, job.sigma or 0.0)
        if self.peak is None and job.sigma is not None:
            nm = NoiseModel(nm.a, (job.sigma / 255.0) ** 2)  # the read noise as given
        # the stabilised image is a new array: the predictor may overwrite it
        den, used = denoise_stabilised(x, nm, lambda img, s: job.predictor(img, s, job.progress, inplace=True))
        return ModeResult(den, float(used), {"peak": nm.peak, "read_sigma": nm.sigma,
                                             "sigma_estimated": self.peak is None})


@dataclass
class ImpulseMode:
    """Impulses: ``density`` is their expected fraction (estimated when None); Gaussian noise mixed
    in (``sigma``, or measured on the trusted samples) is removed in the same call."""

    density: float | None = None
    name = "impulse"

    def run(self, job: Job, x: np.ndarray) -> ModeResult:
        from deepdenoise.noise.impulse import restore_impulses

        if job.predictor.model.takes_mask:
            return self._learned(job, x)

        def gaussian(img: np.ndarray, s: float) -> np.ndarray:  # only ever arrays restore_impulses made
            return job.predictor(img, s * job.noise_scale, job.progress, inplace=True)

        res = restore_impulses(x, gaussian, self.density, sigma=job.sigma)
        return ModeResult(res.image, float(res.sigma), {"impulse_density": res.density,
                                                        "density_estimated": self.density is None,
                                                        "restoration": "plug-and-play"})

    def _learned(self, job: Job, x: np.ndarray) -> ModeResult:
        """A network trained for impulses: the detected samples filled, the mask beside the image,
        one pass (Gaussian noise mixed in is removed in the same pass). A gray network restores a
        colour image channel by channel: impulses strike one sample, not a pixel, so each channel's
        mask stands on its own."""
        from deepdenoise.noise.gaussian import estimate_sigma
        from deepdenoise.noise.impulse import detect_impulses, fill

        found = detect_impulses(x, self.density)
        planes = x[:, :, None] if x.ndim == 2 else x  # [H, W, C]
        masks = found.reshape(planes.shape)
        if job.predictor.model.config.channels == 1 and planes.shape[2] > 1:
            den = np.stack([_mask_pass(job, planes[:, :, c:c + 1], masks[:, :, c:c + 1])
                            for c in range(planes.shape[2])], axis=2)  # [H, W, C]
            how = "mask model, channel by channel"
        else:
            den, how = _mask_pass(job, planes, masks), "mask model"
        # every sample comes from the network, flagged or not: it also removes the impulses the
        # detector missed (putting the unflagged samples back lost 0.02-0.6 dB on BSD68). The
        # Gaussian part is measured for the report only: the network reads it from the image.
        gaussian = float(estimate_sigma(fill(x, found)))
        return ModeResult(np.clip(den.reshape(x.shape), 0.0, 1.0), gaussian,
                          {"impulse_density": float(found.mean()), "density_estimated": self.density is None,
                           "restoration": how})


def _mask_pass(job: Job, planes: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """One pass of a mask model: planes and masks [H, W, C] -> the restored [H, W, C]."""
    import torch

    from deepdenoise.noise.impulse import fill_torch

    img = torch.from_numpy(np.ascontiguousarray(planes)).permute(2, 0, 1)[None]  # [1, C, H, W]
    mask = torch.from_numpy(np.ascontiguousarray(masks)).permute(2, 0, 1)[None].float()  # [1, C, H, W]
    filled = fill_torch(img, mask)
    inp = torch.cat([filled, mask], dim=1)[0].permute(1, 2, 0).contiguous().numpy()  # [H, W, 2C]
    den = job.predictor(inp, None, job.progress)
    return np.asarray(den).reshape(planes.shape)


Mode = GaussianMode | CameraMode | PoissonMode | ImpulseMode


def make_mode(noise: str, peak: float | None = None, pd_stride: int = 2, density: float | None = None) -> Mode:
    """The strategy for a noise kind ('real' is the older name of 'camera')."""
    if noise in ("camera", "real"):
        return CameraMode(pd_stride)
    if noise == "poisson":
        return PoissonMode(peak)
    if noise == "impulse":
        return ImpulseMode(density)
    return GaussianMode()
