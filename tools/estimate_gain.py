"""Choose a camera model's ``estimate_gain`` (and ``keep_mean``) on real pairs; check on the others.

A model trained on simulated camera noise is told the level estimated from a photo times a gain:
the estimator reads demosaiced, JPEG-compressed noise lower than it is, and the simulation is not
the camera. The gain is chosen on a calibration split (one camera) and reported on the held-out
pairs (the other cameras), then stored in the model's metadata with where it came from, so
``deepdenoise denoise photo.jpg`` applies it to the estimate (never to a ``--sigma`` given).
``--keep-mean`` sweeps the model's ``keep_mean`` with it (the input's local mean kept at that
scale: a model trained towards a noise-free rendering shifts colours a little on real photos).

    python tools/estimate_gain.py camera --pairs ../shared/data/PolyU-Canon \\
        --calibrate "Canon5D2*_real.JPG" --gains 1 1.25 1.5 2 --keep-mean 0 8 16 32 \\
        [--model runs/x/best.safetensors] [--write]

Without ``--write`` it only prints; ``--model`` scores a candidate's weights under NAME's metadata
rules (the gain is then written to NAME only with ``--write``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import fnmatch
import json
from pathlib import Path
from typing import Any

from deepdenoise.evaluation.realpairs import load_pairs, score_pairs
from deepdenoise.fsutil import atomic_write_text
from deepdenoise.inference.api import denoise
from deepdenoise.weights.shipped import WEIGHTS_DIR, load_model

Setting = tuple[float, int]  # (estimate gain, keep_mean sigma in pixels; 0 = off)


def sweep(model: str, data: list[Any], settings: list[Setting], backend: str) -> dict[Setting, float]:
    """Mean PSNR on ``data`` for each (gain, keep_mean): the estimate times the gain (no stored gain
    applied), the model's local mean kept at that scale."""
    net, _ = load_model(model)
    out = {}
    for gain, keep in settings:
        variant = copy.deepcopy(net)
        variant.config = dataclasses.replace(variant.config, keep_mean=keep)  # type: ignore[type-var]
        out[(gain, keep)] = score_pairs(lambda y, v=variant, g=gain: denoise(
            y, model=v, noise="gaussian", sigma=None, backend=backend, noise_scale=g), data, with_ssim=False)["psnr"]
    return out


def _name(s: Setting) -> str:
    return f"{s[0]:g}x" + (f" mean {s[1]}" if s[1] else "")


def choose_gain(model: str, pairs: str, calibrate: str, gains: list[float], keeps: list[int] | None = None,
                backend: str = "folded") -> tuple[Setting, str]:
    """((gain, keep_mean) with the best mean PSNR on the ``calibrate`` pairs, a sentence saying how
    it was chosen and what it gives on the other pairs)."""
    every = load_pairs(pairs)
    calib = [d for d in every if fnmatch.fnmatch(d[0], calibrate)]
    held = [d for d in every if not fnmatch.fnmatch(d[0], calibrate)]
    if not calib or not held:
        raise SystemExit(f"--calibrate {calibrate!r} must pick some of the {len(every)} pairs, not all or none")
    grid = [(g, k) for k in (keeps or [0]) for g in gains]
    on_calib = sweep(model, calib, grid, backend)
    best = max(on_calib, key=lambda s: on_calib[s])
    plain = (1.0, 0)
    on_held = sweep(model, held, list(dict.fromkeys([plain, best])), backend)
    noisy = score_pairs(lambda y: y, held, with_ssim=False)["psnr"]
    source = (f"chosen on the {len(calib)} pairs {calibrate} of {Path(pairs).name}: mean PSNR "
              + ", ".join(f"{v:.2f} dB at {_name(s)}" for s, v in on_calib.items())
              + f" (gain times the estimate; mean N: the local mean kept at N px); on the other {len(held)} "
              + f"pairs, held out: {on_held[plain]:.2f} dB at {_name(plain)}, {on_held[best]:.2f} at {_name(best)} "
              + f"(noisy {noisy:.2f}); {backend} backend. The model never saw these pairs in training.")
    return best, source


def write_gain(name: str, setting: Setting, source: str, weights_dir: Path = WEIGHTS_DIR) -> None:
    """Store the gain, the kept local mean and their source in a shipped model's metadata."""
    path = weights_dir / f"{name}.json"
    meta = json.loads(path.read_text())
    meta.update(estimate_gain=setting[0], estimate_gain_source=source)
    meta["config"] = {**meta["config"], "keep_mean": setting[1]}
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="shipped model whose metadata gets the gain")
    ap.add_argument("--pairs", required=True, help="folder of real noisy/clean pairs")
    ap.add_argument("--calibrate", required=True, help="glob of the noisy files the gain is chosen on")
    ap.add_argument("--gains", type=float, nargs="+", default=[1.0, 1.25, 1.5, 2.0, 2.5])
    ap.add_argument("--keep-mean", type=int, nargs="+", default=[0],
                    help="local-mean scales to try with each gain (px; 0 = off): the input's local mean is kept")
    ap.add_argument("--model", help="weights to score (default: the shipped NAME)")
    ap.add_argument("--backend", default="folded", help="inference path (default: fp32 folded, the same on any CPU)")
    ap.add_argument("--write", action="store_true", help="store the chosen gain in NAME's metadata")
    a = ap.parse_args()
    best, source = choose_gain(a.model or a.name, a.pairs, a.calibrate, a.gains, a.keep_mean, a.backend)
    print(json.dumps({"estimate_gain": best[0], "keep_mean": best[1], "estimate_gain_source": source}, indent=2))
    if a.write:
        write_gain(a.name, best, source)
        from manifest import write_manifest

        write_manifest()


if __name__ == "__main__":
    main()
