"""Choose a camera model's ``estimate_gain`` on one set of real pairs and check it on the others.

A model trained on simulated camera noise is told the level estimated from a photo times a gain:
the estimator reads demosaiced, JPEG-compressed noise lower than it is, and the simulation is not
the camera. The gain is chosen on a calibration split (one camera) and reported on the held-out
pairs (the other cameras), then stored in the model's metadata with where it came from, so
``deepdenoise denoise photo.jpg`` applies it to the estimate (never to a ``--sigma`` given).

    python tools/estimate_gain.py camera --pairs ../shared/data/PolyU-Canon \\
        --calibrate "Canon5D2*_real.JPG" --gains 1 1.25 1.5 2 2.5 [--model runs/x/best.safetensors] [--write]

Without ``--write`` it only prints; ``--model`` scores a candidate's weights under NAME's metadata
rules (the gain is then written to NAME only with ``--write``).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path
from typing import Any

from deepdenoise.evaluation.realpairs import load_pairs, score_pairs
from deepdenoise.fsutil import atomic_write_text
from deepdenoise.inference.api import denoise
from deepdenoise.weights.shipped import WEIGHTS_DIR


def sweep(model: str, data: list[Any], gains: list[float], backend: str) -> dict[float, float]:
    """Mean PSNR on ``data`` for each gain (the estimate times the gain, no stored gain applied)."""
    return {g: score_pairs(lambda y, g=g: denoise(y, model=model, noise="gaussian", sigma=None, backend=backend,
                                                   noise_scale=g / stored_gain(model)), data,
                           with_ssim=False)["psnr"] for g in gains}


def stored_gain(model: str) -> float:
    """The gain the model's metadata already applies (1 for a weight file without one)."""
    from deepdenoise.weights.shipped import load_model

    gain = load_model(model)[1].get("estimate_gain", 1.0)
    return float(gain) if isinstance(gain, (int, float)) and 0.1 <= gain <= 10 else 1.0


def choose_gain(model: str, pairs: str, calibrate: str, gains: list[float],
                backend: str = "folded") -> tuple[float, str]:
    """(the gain with the best mean PSNR on the ``calibrate`` pairs, a sentence saying how it was
    chosen and what it gives on the other pairs)."""
    every = load_pairs(pairs)
    calib = [d for d in every if fnmatch.fnmatch(d[0], calibrate)]
    held = [d for d in every if not fnmatch.fnmatch(d[0], calibrate)]
    if not calib or not held:
        raise SystemExit(f"--calibrate {calibrate!r} must pick some of the {len(every)} pairs, not all or none")
    on_calib = sweep(model, calib, gains, backend)
    best = max(on_calib, key=lambda g: on_calib[g])
    on_held = sweep(model, held, sorted({1.0, best}), backend)
    noisy = score_pairs(lambda y: y, held, with_ssim=False)["psnr"]
    source = (f"chosen on the {len(calib)} pairs {calibrate} of {Path(pairs).name}: mean PSNR "
              + " / ".join(f"{v:.2f}" for v in on_calib.values()) + " dB at "
              + " / ".join(f"{g:g}" for g in on_calib) + " times the estimate; on the other "
              + f"{len(held)} pairs, held out: {on_held[1.0]:.2f} dB at 1x, {on_held[best]:.2f} at {best:g}x "
              + f"(noisy {noisy:.2f}); {backend} backend. The model never saw these pairs in training.")
    return best, source


def write_gain(name: str, gain: float, source: str, weights_dir: Path = WEIGHTS_DIR) -> None:
    """Store the gain and its source in a shipped model's metadata."""
    path = weights_dir / f"{name}.json"
    meta = json.loads(path.read_text())
    meta.update(estimate_gain=gain, estimate_gain_source=source)
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="shipped model whose metadata gets the gain")
    ap.add_argument("--pairs", required=True, help="folder of real noisy/clean pairs")
    ap.add_argument("--calibrate", required=True, help="glob of the noisy files the gain is chosen on")
    ap.add_argument("--gains", type=float, nargs="+", default=[1.0, 1.25, 1.5, 2.0, 2.5])
    ap.add_argument("--model", help="weights to score (default: the shipped NAME)")
    ap.add_argument("--backend", default="folded", help="inference path (default: fp32 folded, the same on any CPU)")
    ap.add_argument("--write", action="store_true", help="store the chosen gain in NAME's metadata")
    a = ap.parse_args()
    best, source = choose_gain(a.model or a.name, a.pairs, a.calibrate, a.gains, a.backend)
    print(json.dumps({"estimate_gain": best, "estimate_gain_source": source}, indent=2))
    if a.write:
        write_gain(a.name, best, source)
        from manifest import write_manifest

        write_manifest()


if __name__ == "__main__":
    main()
