"""``deepdenoise benchmark``: quality and speed of every method on the same noisy images.

Every method sees the same noisy images (seed + image index). Speed is megapixels per second over
the whole set, the median of ``repeats`` timed passes after one warm-up pass; peak memory is the
largest resident-set growth seen by a sampler thread from before the warm-up pass to the end
(memory the allocator kept from an earlier method can be reused unseen, so it is a lower bound). The ``reference`` is
the official DnCNN-S (per-sigma weights, fp32 eager PyTorch): every speed ratio divides by it.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.evaluation.evaluate import load_dataset
from deepdenoise.metrics import psnr, ssim
from deepdenoise.noise import add_noise_numpy

log = logging.getLogger(__name__)

Denoiser = Callable[[np.ndarray, float], np.ndarray]
CLASSIC = ("bm3d", "opencv_nlm", "skimage_nlm", "skimage_wavelet")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Largest RSS growth over the baseline while the block runs (sampled every 5 ms)."""

    def __enter__(self) -> PeakMemory:
        import torch

        self.gpu = torch.cuda.is_available()
        if self.gpu:
            torch.cuda.reset_peak_memory_stats()
            self.gpu_base = torch.cuda.memory_allocated()
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())
        if self.gpu:
            import torch

            self.gpu_mib: float | None = (torch.cuda.max_memory_allocated() - self.gpu_base) / 2**20
        else:
            self.gpu_mib = None

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def classic_denoiser(name: str) -> Denoiser:
    """The documented settings for Gaussian noise of known sigma (0-255 scale)."""
    if name == "bm3d":
        import bm3d

        return lambda y, s: np.asarray(bm3d.bm3d(y, sigma_psd=s / 255.0), dtype=np.float32)
    if name == "opencv_nlm":
        import cv2

        def nlm(y: np.ndarray, s: float) -> np.ndarray:
            u8 = np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)  # OpenCV takes 8-bit images
            return cv2.fastNlMeansDenoising(u8, None, h=float(s), templateWindowSize=7,
                                            searchWindowSize=21).astype(np.float32) / 255.0
        return nlm
    if name == "skimage_nlm":
        from skimage.restoration import denoise_nl_means

        return lambda y, s: denoise_nl_means(y, h=0.8 * s / 255.0, sigma=s / 255.0, fast_mode=True,
                                             patch_size=5, patch_distance=6).astype(np.float32)
    if name == "skimage_wavelet":
        from skimage.restoration import denoise_wavelet

        return lambda y, s: denoise_wavelet(y, sigma=s / 255.0, method="BayesShrink", mode="soft",
                                            rescale_sigma=True).astype(np.float32)
    raise ValueError(f"unknown method '{name}'")


def reference_weights(reference_dir: Path | None, sigma: float) -> Path | None:
    """The official DnCNN-S file for ``sigma`` (sigma=15/25/50.mat), if it is there."""
    mat = reference_dir / f"sigma={sigma:g}.mat" if reference_dir else None
    return mat if mat is not None and mat.exists() else None


def model_denoiser(model_name: str | None, backend: str, sigma: float, reference_dir: Path | None,
                   device: str = "cpu") -> tuple[Denoiser, str] | None:
    """The model on ``backend`` and ``device`` as a denoiser; None for int8 on a model without an
    int8 calibration, or for a backend the device cannot run."""
    from deepdenoise.hardware import pick_device
    from deepdenoise.inference.backends import make_forward
    from deepdenoise.inference.tiling import apply_model, denoise_tensor, tensor_view
    from deepdenoise.models import create_model
    from deepdenoise.weights.shipped import load_model

    if model_name is None:  # the reference
        mat = reference_weights(reference_dir, sigma)
        model = load_model(str(mat))[0] if mat else create_model("dncnn_s").eval()
    else:
        model = load_model(model_name)[0]
    if backend == "int8" and not model.int8_calibration:
        return None
    dev = pick_device(device)
    if (dev.type == "cpu") == (backend == "fp16") or (dev.type != "cpu" and backend in ("onnxruntime", "int8")):
        return None  # fp16 is for GPUs, onnxruntime and int8 for the CPU
    if backend == "eager" and dev.type == "cpu":
        return (lambda y, s: apply_model(model, y, s, tile=None)), "eager"
    fwd, used = make_forward(model, backend, sigma, dev)

    def run(y: np.ndarray, s: float) -> np.ndarray:
        src = np.ascontiguousarray(y, dtype=np.float32)
        out = np.empty_like(src)
        denoise_tensor(model, tensor_view(src), s, tile=None, forward=fwd, out=tensor_view(out))
        return out
    return run, used


def time_pass(fn: Denoiser, noisy: list[np.ndarray], sigma: float) -> float:
    """Megapixels per second of one pass over the images."""
    pixels = sum(y.shape[0] * y.shape[1] for y in noisy)
    t0 = time.perf_counter()
    for y in noisy:
        fn(y, sigma)
    return pixels / 1e6 / (time.perf_counter() - t0)


def _variants(method: str, backends: list[str], sigma: float, color: bool,
              reference_dir: Path | None, device: str = "cpu") -> list[tuple[Denoiser, str]]:
    """(denoiser, backend) pairs a method runs as on this dataset; none for a model of the wrong colour."""
    if method in CLASSIC:
        return [(classic_denoiser(method), "-")]
    if method == "reference":
        if not reference_weights(reference_dir, sigma):
            log.warning(f"no official DnCNN-S weights for sigma {sigma:g} in {reference_dir}: the reference row "
                  "times an untrained DnCNN-S (its PSNR means nothing); get them with 'deepdenoise download "
                  "dncnn-reference' or pass --reference DIR")
        return [v for v in [model_denoiser(None, "eager", sigma, reference_dir, device)] if v]
    from deepdenoise.weights.format import read_meta
    from deepdenoise.weights.shipped import shipped_models

    channels = read_meta(shipped_models()[method])["config"]["channels"] \
        if method in shipped_models() else (3 if color else 1)
    if channels != (3 if color else 1):
        return []  # a colour model on a gray set (or vice versa) is not what a user would run
    return [v for b in backends if (v := model_denoiser(method, b, sigma, None, device))]


def run_benchmark(dataset: str | Path, sigmas: list[float], methods: list[str], backends: list[str],
                  limit: int | None = None, repeats: int = 3, seed: int = 0,
                  reference_dir: Path | None = None, progress: bool = True, device: str = "cpu",
                  ) -> list[dict[str, Any]]:
    """PSNR/SSIM and speed of every (method, backend) on the same noisy images.

    Each variant first makes one warm-up pass, which gives the scored outputs and the peak memory;
    then the timed passes go round-robin over the variants (``repeats`` rounds) and each speed is
    the median of its passes. Interleaving puts a slow spell of the machine (another process, a
    clock change) into every method's timings alike, so the ratios to the reference stay fair.
    """
    images, names, color = load_dataset(dataset, limit)
    results: list[dict[str, Any]] = []
    for sigma in sigmas:
        noisy = [add_noise_numpy(im, sigma, seed + i) for i, im in enumerate(images)]
        rows: list[dict[str, Any]] = []
        fns: list[Denoiser] = []
        for method in methods:
            for fn, backend in _variants(method, backends, sigma, color, reference_dir, device):
                with PeakMemory() as mem:  # the warm-up's buffers are the working memory
                    outs = [fn(y, sigma) for y in noisy]
                weights = (str(reference_weights(reference_dir, sigma) or "untrained") if method == "reference"
                           else "-" if method in CLASSIC else method)
                rows.append({
                    "method": method, "backend": backend, "weights": weights, "sigma": sigma,
                    "dataset": Path(dataset).name,
                    "images": len(images), "psnr": float(np.mean([psnr(o, c) for o, c in zip(outs, images)])),
                    "ssim": float(np.mean([ssim(o, c) for o, c in zip(outs, images)])),
                    "mp_per_s": 0.0, "peak_mem_mib": mem.mib, "peak_gpu_mib": mem.gpu_mib})
                fns.append(fn)
                if progress:
                    log.info(f"  sigma {sigma:g} {method}/{backend}: {rows[-1]['psnr']:.2f} dB")
        speeds: list[list[float]] = [[] for _ in fns]
        for _ in range(max(1, repeats)):
            for k, fn in enumerate(fns):
                speeds[k].append(time_pass(fn, noisy, sigma))
        for row, sp in zip(rows, speeds):
            row["mp_per_s"] = statistics.median(sp)
            if progress:
                log.info(f"  sigma {sigma:g} {row['method']}/{row['backend']}: {row['mp_per_s']:.3f} MP/s")
        ref = next((float(r["mp_per_s"]) for r in rows if r["method"] == "reference"), None)
        for r in rows:
            r["speedup"] = r["mp_per_s"] / ref if ref else None
        results += rows
    return results


def machine_info(device: str = "cpu") -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    from deepdenoise.hardware import pick_device

    dev = pick_device(device)
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def format_markdown(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    machine = f"{info['cpu']}, {info['cores']} cores (torch {info['torch']}, {info['torch_threads']} threads)"
    if info.get("gpu"):
        machine += f"; network rows on {info['gpu']}"
    gpu = any(r.get("peak_gpu_mib") is not None for r in results)
    head = "| sigma | method | backend | PSNR | SSIM | MP/s | x reference | peak MiB |"
    lines = [f"Machine: {machine}", "", head + (" GPU MiB |" if gpu else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if gpu else "")]
    for r in results:
        sp = f"{r['speedup']:.2f}" if r.get("speedup") else "-"
        method = f"{r['method']} (untrained: speed only)" if r.get("weights") == "untrained" else r["method"]
        g = r.get("peak_gpu_mib")
        lines.append(f"| {r['sigma']:g} | {method} | {r['backend']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{r['mp_per_s']:.3f} | {sp} | {r['peak_mem_mib']:.0f} |" + (
                         (f" {g:.0f} |" if g is not None else " - |") if gpu else ""))
    return "\n".join(lines) + "\n"


def scatter_plot(results: list[dict[str, Any]], out: Path) -> None:
    from deepdenoise.evaluation.plots import _pyplot

    plt = _pyplot()
    sigmas = sorted({r["sigma"] for r in results})
    fig, axes = plt.subplots(1, len(sigmas), figsize=(5.5 * len(sigmas), 4.5), squeeze=False)
    for ax, s in zip(axes[0], sigmas):
        for r in (r for r in results if r["sigma"] == s):
            ax.scatter(r["mp_per_s"], r["psnr"])
            ax.annotate(f"{r['method']}/{r['backend']}", (r["mp_per_s"], r["psnr"]), fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("megapixels per second (log)")
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"sigma {s:g}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
