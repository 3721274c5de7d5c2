"""Evaluation with the standard protocol.

Noise: float Gaussian, not clipped, seeded per image (seed + image index) so every method sees the
same noisy images. Scores: PSNR of the output clipped to [0, 1] against the clean image, averaged
over images; SSIM from scikit-image. RGB datasets are evaluated in colour (PSNR over 3 channels).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepdenoise.errors import InputError
from deepdenoise.io import list_images, load_gray_or_color
from deepdenoise.metrics import batch_psnr, psnr, ssim
from deepdenoise.models import Denoiser
from deepdenoise.noise import add_noise_numpy


def dataset_is_color(files: list[Path]) -> bool:
    from PIL import Image

    with Image.open(files[0]) as im:
        return im.mode not in ("L", "I;16", "I", "F", "1", "LA")


def load_dataset(
    path: str | Path, limit: int | None = None, color: bool | None = None
) -> tuple[list[np.ndarray], list[str], bool]:
    files = list_images(path)
    if not files:
        raise InputError(f"{path}: no images found")
    files = files[:limit] if limit else files
    is_color = dataset_is_color(files) if color is None else color
    return [load_gray_or_color(f, is_color) for f in files], [f.name for f in files], is_color


@dataclass
class ImageScore:
    name: str
    psnr_noisy: float
    psnr_denoised: float
    ssim_noisy: float
    ssim_denoised: float


def evaluate_images(
    denoiser: Callable[[np.ndarray, float], np.ndarray], images: list[np.ndarray], names: list[str],
    sigma: float, seed: int = 0, with_ssim: bool = True,
    corrupt: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> list[ImageScore]:
    """Scores of ``denoiser(noisy, sigma)`` per image; the noise is Gaussian at ``sigma`` unless
    ``corrupt(clean, seed)`` makes it (Poisson rows)."""
    scores = []
    for i, (clean, name) in enumerate(zip(images, names)):
        noisy = corrupt(clean, seed + i) if corrupt else add_noise_numpy(clean, sigma, seed + i)
        out = denoiser(noisy, sigma)
        scores.append(ImageScore(
            name, psnr(noisy, clean), psnr(out, clean),
            ssim(noisy, clean) if with_ssim else float("nan"),
            ssim(out, clean) if with_ssim else float("nan")))
    return scores


def model_denoiser(model: Denoiser, blind_sigma: bool = False, backend: str = "eager",
                   device: str = "cpu") -> Callable[[np.ndarray, float], np.ndarray]:
    """Wrap a model as f(noisy, sigma) on an inference ``backend``; ``blind_sigma`` hides the true
    sigma from the model: a noise-map model then gets the estimate from the noisy image, as
    ``denoise`` without --sigma does. Backends other than eager let the same protocol check
    their parity on whole datasets (``evaluate --backend int8``)."""
    from deepdenoise.inference.predictor import Predictor
    from deepdenoise.noise.level import NoiseLevel, estimate_noise_level

    predictor = Predictor(model, backend, tile=None, device=device)

    def run(noisy: np.ndarray, sigma: float) -> np.ndarray:
        told: float | NoiseLevel | None = sigma
        if blind_sigma:  # a noise-map model gets the image's estimated noise-level function
            told = None if not model.noise_input else estimate_noise_level(noisy)
        return predictor(noisy, told)
    return run


def evaluate_dataset(
    model: Denoiser, dataset: str | Path, sigmas: list[float], seed: int = 0,
    limit: int | None = None, with_ssim: bool = True, blind_sigma: bool = False, backend: str = "eager",
    device: str = "cpu",
) -> list[dict[str, Any]]:
    images, names, color = load_dataset(dataset, limit)
    den = model_denoiser(model, blind_sigma, backend, device)
    results = []
    for sigma in sigmas:
        scores = evaluate_images(den, images, names, sigma, seed, with_ssim)
        results.append({"dataset": Path(dataset).name, "sigma": sigma, "color": color, "backend": backend,
                        **summarize(scores)})
    return results


def summarize(scores: list[ImageScore]) -> dict[str, Any]:
    return {
        "images": len(scores),
        "psnr_noisy": float(np.mean([s.psnr_noisy for s in scores])),
        "psnr_denoised": float(np.mean([s.psnr_denoised for s in scores])),
        "ssim_noisy": float(np.mean([s.ssim_noisy for s in scores])),
        "ssim_denoised": float(np.mean([s.ssim_denoised for s in scores])),
        "per_image": [s.__dict__ for s in scores],
    }


def evaluate_poisson(
    model: Denoiser, dataset: str | Path, peaks: list[float], read_sigmas: list[float], seed: int = 0,
    limit: int | None = None, with_ssim: bool = True, estimate: bool = False, backend: str = "eager",
    vst: bool = True, device: str = "cpu",
) -> list[dict[str, Any]]:
    """Photon-limited protocol: Poisson noise at ``peak`` photons per 1.0 plus Gaussian read noise
    (seed + image index, unclipped), PSNR of the output clipped to [0, 1]. The denoiser is told the
    noise model, or estimates it from each noisy image (``estimate``); ``vst=False`` is the baseline
    that feeds the noisy image to the model directly (blind, or with its estimated Gaussian level)."""
    from deepdenoise.noise.poisson import NoiseModel, add_poisson_noise, denoise_stabilised, estimate_noise_model

    images, names, color = load_dataset(dataset, limit)
    gaussian = model_denoiser(model, False, backend, device)
    direct = model_denoiser(model, True, backend, device)
    results = []
    for peak in peaks:
        for read in read_sigmas:
            def run(noisy: np.ndarray, _: float, peak: float = peak, read: float = read) -> np.ndarray:
                if not vst:
                    return direct(noisy, 0.0)
                nm = estimate_noise_model(noisy) if estimate else NoiseModel.from_peak(peak, read)
                return denoise_stabilised(noisy, nm, gaussian)[0]

            def corrupt(clean: np.ndarray, s: int, peak: float = peak, read: float = read) -> np.ndarray:
                return add_poisson_noise(clean, peak, read, s)

            scores = evaluate_images(run, images, names, read, seed, with_ssim, corrupt)
            results.append({"dataset": Path(dataset).name, "noise": "poisson", "peak": peak, "sigma": read,
                            "color": color, "backend": backend, "vst": vst, "estimated": estimate,
                            **summarize(scores)})
    return results


def evaluate_camera(
    model: Denoiser, dataset: str | Path, cameras: list[Any], strides: list[int], seed: int = 0,
    limit: int | None = None, with_ssim: bool = True, backend: str = "eager", device: str = "cpu",
) -> list[dict[str, Any]]:
    """Camera-noise protocol: each clean colour image goes through
    :func:`deepdenoise.noise.camera.simulate_camera` (seed + image index) and is scored against the
    same pipeline without noise. The model runs as on a real photo, blind, through
    ``denoise(noise='camera', pd_stride=stride)``; stride 1 is the model applied directly."""
    from deepdenoise.inference.api import denoise
    from deepdenoise.noise.camera import simulate_camera

    images, names, color = load_dataset(dataset, limit)
    if not color:
        raise InputError(f"{dataset}: camera noise needs a colour dataset (a Bayer sensor's noise)")
    results = []
    for cam in cameras:
        pairs: list[tuple[np.ndarray, np.ndarray]] = []  # (noisy, reference), [H, W, 3] each
        for i, clean in enumerate(images):
            y, r = simulate_camera(torch.from_numpy(clean).permute(2, 0, 1)[None], cam, seed + i)
            pairs.append((y[0].permute(1, 2, 0).numpy(), r[0].permute(1, 2, 0).numpy()))
        for stride in strides:
            scores = []
            for (noisy, ref), name in zip(pairs, names):
                out = denoise(noisy, model=model, tile=None, backend=backend, noise="camera", pd_stride=stride,
                              device=device)
                scores.append(ImageScore(name, psnr(noisy, ref), psnr(out, ref),
                                         ssim(noisy, ref) if with_ssim else float("nan"),
                                         ssim(out, ref) if with_ssim else float("nan")))
            results.append({"dataset": Path(dataset).name, "noise": "camera", "shot": cam.shot, "read": cam.read,
                            "jpeg": cam.jpeg, "pd_stride": stride, "sigma": float("nan"), "color": color,
                            "backend": backend, **summarize(scores)})
    return results


@torch.no_grad()
def evaluate_patches(model: Denoiser, patches_file: str | Path, sigmas: list[float], seed: int = 12345,
                     limit: int | None = None, batch: int = 512) -> list[dict[str, Any]]:
    """PSNR on the test patch set (as the training log reports it, but in fp32)."""
    from deepdenoise.noise import add_gaussian_noise

    p = Path(patches_file)
    if not p.exists():
        raise InputError(f"{p}: missing; run 'deepdenoise prepare' first")
    arr = np.load(p, allow_pickle=False)[:limit]
    arr = arr[:, None] if arr.ndim == 3 else np.moveaxis(arr, -1, 1)
    clean = torch.from_numpy(np.ascontiguousarray(arr)).float() / 255.0  # [N, C, P, P]
    results = []
    for sigma in sigmas:
        noisy = add_gaussian_noise(clean, sigma, seed)
        outs = [model(noisy[i:i + batch], sigma) for i in range(0, len(clean), batch)]
        out = torch.cat(outs)
        results.append({"dataset": f"{p.parent.name}/{p.name}", "sigma": sigma, "images": len(clean),
                        "psnr_noisy": float(batch_psnr(noisy, clean).mean()),
                        "psnr_denoised": float(batch_psnr(out, clean).mean()),
                        "ssim_noisy": float("nan"), "ssim_denoised": float("nan")})
    return results


def format_table(results: list[dict[str, Any]]) -> str:
    head = (f"{'dataset':<22} {'noise':>18} {'n':>5} {'PSNR noisy':>11} {'PSNR out':>9} "
            f"{'SSIM noisy':>11} {'SSIM out':>9}")
    lines = [head, "-" * len(head)]
    for r in results:
        level = f"{r['sigma']:g}"
        if r.get("noise") == "poisson":  # peak photons, plus the read noise
            level = f"peak {r['peak']:g}" + (f"+{r['sigma']:g}" if r["sigma"] else "")
        elif r.get("noise") == "camera":  # shot/read, JPEG quality, PD stride
            level = f"{r['shot']:g}/{r['read']:g}" + (f" q{r['jpeg']}" if r["jpeg"] else "") + f" PD{r['pd_stride']}"
        lines.append(f"{r['dataset']:<22} {level:>18} {r['images']:>5d} {r['psnr_noisy']:>11.2f} "
                     f"{r['psnr_denoised']:>9.2f} {r['ssim_noisy']:>11.4f} {r['ssim_denoised']:>9.4f}")
    return "\n".join(lines)


def format_estimator_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'dataset':<12} {'sigma':>5} {'n':>4} {'estimate':>9} {'bias':>7} {'mean |err|':>10} {'max |err|':>9}"]
    for r in rows:
        lines.append(f"{r['dataset']:<12} {r['sigma']:>5g} {r['images']:>4d} {r['mean_estimate']:>9.2f} "
                     f"{r['mean_error']:>7.2f} {r['mean_abs_error']:>10.2f} {r['max_abs_error']:>9.2f}")
    return "\n".join(lines)


def write_json(path: str | Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    from deepdenoise.fsutil import atomic_write_text

    atomic_write_text(Path(path), json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


def evaluate_estimator(dataset: str | Path, sigmas: list[float], seed: int = 0,
                       limit: int | None = None) -> list[dict[str, Any]]:
    """Error of :func:`deepdenoise.noise.estimate_sigma` on a dataset at known noise levels."""
    from deepdenoise.noise import estimate_sigma

    images, _, _ = load_dataset(dataset, limit)
    rows = []
    for sigma in sigmas:
        est = np.array([estimate_sigma(add_noise_numpy(im, sigma, seed + i)) for i, im in enumerate(images)])
        err = est - sigma
        rows.append({"dataset": Path(dataset).name, "sigma": sigma, "images": len(images),
                     "mean_estimate": float(est.mean()), "mean_error": float(err.mean()),
                     "mean_abs_error": float(np.abs(err).mean()), "max_abs_error": float(np.abs(err).max())})
    return rows
