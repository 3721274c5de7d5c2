"""Command-line interface: each subcommand is a thin call into the library.

User errors print one line (``deepdenoise: error: ...``) and exit with a documented code:
2 usage/config, 3 bad input, 4 output problem, 5 model problem, 1 some files of a folder failed.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from deepdenoise.cli.commands import (
    cmd_benchmark,
    cmd_calibrate,
    cmd_denoise,
    cmd_download,
    cmd_estimate,
    cmd_evaluate,
    cmd_export,
    cmd_figures,
    cmd_models,
    cmd_prepare,
    cmd_serve,
    cmd_train,
)
from deepdenoise.defaults import BACKENDS, DEFAULT_BACKEND, MAX_PIXELS, NOISE_KINDS
from deepdenoise.errors import DeepDenoiseError


def _sigma(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sigma must be a number, got '{value}'") from None
    if not 0 <= s <= 255:
        raise argparse.ArgumentTypeError(f"sigma must be between 0 and 255, got {value}")
    return s


def _bounded_float(name: str, lo: float, hi: float, open_lo: bool = False, open_hi: bool = False):  # type: ignore[no-untyped-def]
    """An argparse type: a finite number in [lo, hi] (ends excluded where asked), else a one-line
    usage error (exit 2)."""
    def parse(value: str) -> float:
        try:
            v = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got '{value}'") from None
        if not math.isfinite(v) or v < lo or v > hi or (open_lo and v == lo) or (open_hi and v == hi):
            span = f"{'above' if open_lo else 'from'} {lo:g} {'and below' if open_hi else 'to'} {hi:g}"
            raise argparse.ArgumentTypeError(f"{name} must be a number {span}, got '{value}'")
        return v
    return parse


_strength = _bounded_float("strength", 0.0, 1.0)
_scale = _bounded_float("noise scale", 0.05, 20.0)
_fraction = _bounded_float("the fraction", 0.0, 1.0, open_lo=True, open_hi=True)


def _bounded_int(name: str, lo: int, hi: int):  # type: ignore[no-untyped-def]
    """An argparse type: an integer in [lo, hi], else a one-line usage error (exit 2)."""
    def parse(value: str) -> int:
        try:
            v = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got '{value}'") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be from {lo} to {hi}, got {v}")
        return v
    return parse


def _stride(value: str) -> int:
    if value not in ("1", "2", "3", "4"):
        raise argparse.ArgumentTypeError(f"stride must be 1, 2, 3 or 4, got '{value}'")
    return int(value)


def _camera(value: str) -> object:
    from deepdenoise.noise.camera import CameraNoise

    parts = value.split(",")
    try:
        shot, read = float(parts[0]), float(parts[1])
        jpeg = int(parts[2]) if len(parts) == 3 else None
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected SHOT,READ[,JPEG] (e.g. 0.04,0.01,90), got '{value}'") from None
    if len(parts) > 3 or not (0 <= shot <= 1 and 0 <= read <= 1) or not (jpeg is None or 1 <= jpeg <= 100):
        raise argparse.ArgumentTypeError(f"shot and read must be in [0, 1], JPEG quality in 1-100: '{value}'")
    return CameraNoise(shot, read, jpeg)


def _peak(value: str) -> float:
    try:
        p = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"peak must be a number of photons, got '{value}'") from None
    if not (1e-3 <= p <= 1e9):
        raise argparse.ArgumentTypeError(f"peak must be a number of photons from 0.001 to 1e9, got {value}")
    return p


def _prepare_parser(sub: Any) -> None:
    s = sub.add_parser("prepare", help="extract the DnCNN paper's 40x40 patch sets from BSDS500")
    s.add_argument("root", help="BSDS500 folder with {train,val,test}/*.jpg")
    s.add_argument("--out", default="data/patches")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--color", action="store_true", help="RGB patches (train_color.npy, test_color.npy)")
    s.add_argument("--force", action="store_true", help="rebuild even if the cache matches")
    s.set_defaults(func=cmd_prepare)


def _download_parser(sub: Any) -> None:
    s = sub.add_parser("download", help="download BSDS500 or the official DnCNN weights, checksum-verified")
    s.add_argument("name", choices=["bsds500", "dncnn-reference"])
    s.add_argument("--out", help="default: data/BSDS500, or ~/.cache/deepdenoise/reference-weights "
                                 "($DEEPDENOISE_REFERENCE) for the DnCNN weights")
    s.add_argument("--url", default=None)
    s.add_argument("--sha256", default=None, help="expected archive SHA-256 (optional)")
    s.set_defaults(func=cmd_download)


def _train_parser(sub: Any) -> None:
    s = sub.add_parser("train", help="train a model (the DnCNN-S recipe by default)")
    s.add_argument("--config", help="YAML recipe (configs/*.yaml)")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    from deepdenoise.training.config import config_flags

    for flag, spec in config_flags():  # every TrainConfig field, typed from its annotation
        s.add_argument(flag, **spec)
    s.add_argument("--precise-bn", dest="precise_bn_batches", type=int, help=argparse.SUPPRESS)  # older name
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)


def _evaluate_parser(sub: Any) -> None:
    s = sub.add_parser("evaluate", help="PSNR/SSIM of a model on datasets at given noise levels")
    s.add_argument("--model", help="shipped name, .safetensors path, run folder, or official .mat")
    s.add_argument("--dataset", nargs="+", help="folder(s) of clean images, e.g. ../shared/data/BSD68")
    s.add_argument("--patches", help="test patches .npy (from prepare)")
    s.add_argument("--sigma", type=_sigma, nargs="+")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--limit", type=int)
    s.add_argument("--blind", action="store_true", help="do not tell the model the true sigma (or noise model)")
    s.add_argument("--noise", choices=["gaussian", "poisson", "camera", "real", "impulse", "random", "biterror"],
                   default="gaussian",
                   help="poisson: Poisson noise at --peak photons, --sigma is the read noise (default 0); "
                   "real: simulated camera noise (--camera), denoised blind through pixel-shuffle down-sampling; "
                   "impulse: salt-and-pepper at --density; random: random-valued impulses at --density; "
                   "biterror: each bit of each 8-bit sample flipped with probability --ber")
    s.add_argument("--density", type=_fraction, nargs="+", help="--noise impulse/random: corrupted fractions")
    s.add_argument("--ber", type=_fraction, nargs="+", help="--noise biterror: bit error rates")
    s.add_argument("--peak", type=_peak, nargs="+", help="photons at 1.0 (--noise poisson)")
    s.add_argument("--camera", type=_camera, nargs="+", metavar="SHOT,READ[,JPEG]",
                   help="--noise camera: sensor noise in linear light (variance shot*L + read^2), "
                   "optional JPEG quality")
    s.add_argument("--pd-stride", type=_stride, nargs="+", default=[1, 2],
                   help="--noise camera: strides to compare (1: the model directly; default 1 2)")
    s.add_argument("--no-vst", dest="no_vst", action="store_true",
                   help="--noise poisson baseline: no variance stabilisation, the noisy image as it is")
    s.add_argument("--estimator", action="store_true", help="measure the noise-level estimator instead")
    s.add_argument("--backend", default="eager", choices=list(BACKENDS),
                   help="inference path (default eager fp32, the protocol's); others show their parity")
    s.add_argument("--device", default="auto", help="where the network runs: auto (CUDA, then MPS, then the CPU), "
                   "cpu, cuda, cuda:N or mps")
    s.add_argument("--pairs", help="folder of real noisy/clean pairs: score the model on them, as a user runs it")
    s.add_argument("--pairs-glob", dest="pairs_glob", help="with --pairs: glob picking the noisy files")
    s.add_argument("--noise-scale", dest="noise_scale", type=_scale, default=1.0,
                   help="with --pairs: multiply the estimated noise level")
    s.add_argument("--ensemble", type=int, choices=[1, 2, 4, 8], default=1,
                   help="with --pairs: average the result over this many flips/rotations")
    s.add_argument("--synthetic", choices=["astro"], help="astro: simulated sky fields (stars, galaxies, sky, "
                   "Poisson + read noise): PSNR, aperture photometry and 5-sigma detections against the truth")
    s.add_argument("--fields", type=_bounded_int("fields", 1, 1000), default=4, help="--synthetic: how many fields")
    s.add_argument("--field-size", dest="field_size", type=_bounded_int("field-size", 64, 4096), default=256,
                   help="--synthetic: field side in pixels")
    s.add_argument("--json")
    s.set_defaults(func=cmd_evaluate)


def _denoise_parser(sub: Any) -> None:
    s = sub.add_parser("denoise", help="denoise an image file (or a folder)")
    s.add_argument("input")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--sigma", type=_sigma, help="noise level (0-255; with --noise poisson the read noise); "
                   "estimated when omitted")
    s.add_argument("--noise", choices=[*NOISE_KINDS, "real"], default="auto",
                   help="auto (default): white noise, or a camera's correlated grain (then the camera model); "
                   "gaussian: white noise with the model you name; poisson: photon-limited images (microscopy, "
                   "astronomy, low light), stabilised first; real: pixel-shuffle down-sampling, 5x the time; "
                   "impulse: salt-and-pepper, bit errors, hot/dead pixels (found, then only they are restored)")
    s.add_argument("--peak", type=_peak, help="with --noise poisson: photons at full scale; estimated when omitted")
    s.add_argument("--density", type=_fraction, help="with --noise impulse: the fraction of corrupted samples "
                   "(estimated when omitted)")
    s.add_argument("--pd-stride", type=_stride, default=2,
                   help="with --noise camera: sub-image stride (2; 3 for heavily compressed JPEGs)")
    s.add_argument("--strength", type=_strength, default=1.0,
                   help="fraction of the luminance noise removed, 0-1 (default 1); below 1 a little grain is "
                   "kept for a natural look. Colour noise is always removed")
    s.add_argument("--noise-scale", dest="noise_scale", type=_scale, default=1.0,
                   help="multiply the noise level the model is given (estimated or --sigma): 1.5 removes "
                   "more, 0.7 keeps more detail (default 1)")
    s.add_argument("--ensemble", type=int, choices=[1, 2, 4, 8], default=1,
                   help="average the result over this many flips/rotations of the image: a little cleaner "
                   "(+0.1 dB on real camera photos at 4), that many times slower (default 1)")
    s.add_argument("--model")
    s.add_argument("--gray", action="store_true", help="process colour images as luminance")
    s.add_argument("--tile", type=int, default=512,
                   help="tile size in pixels (bounded memory; at least 4x the model's context margin)")
    s.add_argument("--jobs", type=int, default=1, help="images processed in parallel (folders)")
    s.add_argument("--backend", default=DEFAULT_BACKEND, choices=list(BACKENDS),
                   help="inference backend (all within 0.02 dB of eager fp32)")
    s.add_argument("--device", default="auto", help="where the network runs: auto (CUDA, then MPS, then the CPU), "
                   "cpu, cuda, cuda:N or mps")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--max-pixels", dest="max_pixels", type=_bounded_int("max-pixels", 0, 10**12), default=MAX_PIXELS,
                   help=f"refuse images beyond this many pixels, all frames of a stack together, checked on the "
                   f"header before decoding (default {MAX_PIXELS:,}; 0: no limit - memory then grows with the image)")
    s.add_argument("--hidden", action="store_true", help="folders: also denoise hidden files and folders")
    s.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="folders: ray runs them on a Ray cluster (pip install 'deepdenoise[ray]'), skipping "
                   "outputs already there, so a killed job resumes")
    s.add_argument("--address", help="--engine ray: the cluster to join (default: start a local one)")
    s.add_argument("--hdu", help="FITS: denoise only this HDU (index or EXTNAME); default every image HDU")
    s.add_argument("--gain", type=_bounded_float("gain", 0.0, 1e9, open_lo=True),
                   help="FITS: electrons per data unit (default: GAIN in the header); with it the noise is "
                   "modelled as Poisson + read noise")
    s.add_argument("--read-noise", dest="read_noise", type=_bounded_float("read-noise", 0.0, 1e9),
                   help="FITS: read noise in electrons (default: RDNOISE in the header, else 0)")
    s.set_defaults(func=cmd_denoise)


def _estimate_parser(sub: Any) -> None:
    s = sub.add_parser("estimate", help="the noise level of images: per channel, against brightness")
    s.add_argument("images", nargs="+")
    s.add_argument("--plot", help="draw the noise-level functions into this PNG")
    s.add_argument("--json", action="store_true", help="one JSON object per image")
    s.set_defaults(func=cmd_estimate)


def _figures_parser(sub: Any) -> None:
    s = sub.add_parser("figures", help="write the DnCNN experiment's three figures (PNG)")
    s.add_argument("--out", default="figs")
    s.add_argument("--model", default="dncnn_s_sigma25")
    s.add_argument("--dataset", required=True, help="folder of clean test images (BSD68 for the paper's figures)")
    s.add_argument("--patches", default="data/patches/test.npy")
    s.add_argument("--sigma", type=_sigma, default=25.0)
    s.add_argument("--limit", type=int, default=10, help="images for the PSNR-vs-sigma curve")
    s.set_defaults(func=cmd_figures)


def _export_parser(sub: Any) -> None:
    s = sub.add_parser("export", help="export a model (ONNX, dynamic height/width)")
    s.add_argument("--format", choices=["onnx"], default="onnx")
    s.add_argument("--model", default="default")
    s.add_argument("-o", "--output")
    s.add_argument("--int8", action="store_true", help="the int8 network (needs 'deepdenoise calibrate' first)")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_export)


def _calibrate_parser(sub: Any) -> None:
    s = sub.add_parser("calibrate", help="int8 activation ranges for a U-Net, saved with a copy of its weights")
    s.add_argument("--model", default="fast")
    s.add_argument("--data", nargs="+", default=["data/BSDS500/train", "data/BSDS500/test"],
                   help="training image folders (never the test set)")
    s.add_argument("-o", "--output", required=True, help="new weight file (.safetensors + .json)")
    s.add_argument("--batches", type=int, default=32, help="batches of 8 noisy 128x128 crops")
    s.add_argument("--sigma-max", dest="sigma_max", type=float, default=75.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_calibrate)


def _benchmark_parser(sub: Any) -> None:
    s = sub.add_parser("benchmark", help="PSNR, SSIM, speed and memory of every method on the same images")
    s.add_argument("--dataset", help="folder of clean test images (synthetic noise added), e.g. BSD68")
    s.add_argument("--sigma", type=_sigma, nargs="+", default=[25.0])
    s.add_argument("--methods", help="comma list: reference,bm3d,opencv_nlm,skimage_nlm,skimage_wavelet,"
                                     "and shipped model names (default: all)")
    s.add_argument("--backend", default="eager,folded,bf16,onnxruntime,int8",
                   help="comma list of backends for our models (int8: models with an int8 calibration)")
    s.add_argument("--device", default="auto", help="where the network runs: auto (CUDA, then MPS, then the CPU), "
                   "cpu, cuda, cuda:N or mps")
    s.add_argument("--reference", help="folder with the official sigma=N.mat (default: where 'deepdenoise "
                   "download dncnn-reference' put them; else an untrained DnCNN-S times the speed)")
    s.add_argument("--limit", type=int)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--noise", choices=["gaussian", "impulse", "random", "biterror"], default="gaussian",
                   help="impulse/random/biterror: our impulse mode against median filters (OpenCV 3x3 and "
                   "5x5, scikit-image, adaptive median) at each --density or --ber; --methods MODEL picks the "
                   "denoiser it refines with")
    s.add_argument("--density", type=_fraction, nargs="+", help="--noise impulse/random: corrupted fractions")
    s.add_argument("--ber", type=_fraction, nargs="+", help="--noise biterror: bit error rates")
    s.add_argument("--pairs", help="folder of real noisy/clean pairs (e.g. ../shared/data/PolyU-Canon): "
                   "our modes against OpenCV NL-means, CBM3D (best setting, an oracle) and DnCNN-S per channel")
    s.add_argument("--pairs-glob", dest="pairs_glob", help="with --pairs: glob picking the noisy files")
    s.add_argument("--reuse", help="with --pairs: take the rows of methods already measured on the same pairs "
                   "from this earlier --json result (the CBM3D sweep takes half an hour)")
    s.add_argument("--json")
    s.add_argument("--markdown")
    s.add_argument("--plot")
    s.set_defaults(func=cmd_benchmark)


def _serve_parser(sub: Any) -> None:
    s = sub.add_parser("serve", help="start the web page and REST service")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_bounded_int("port", 0, 65535), default=8000)
    s.add_argument("--max-upload-mb", dest="max_upload_mb", type=_bounded_int("max-upload-mb", 1, 100_000),
                   default=50)
    s.add_argument("--max-pixels", dest="max_pixels", type=_bounded_int("max-pixels", 1, 10**12),
                   default=50_000_000)
    s.add_argument("--workers", type=_bounded_int("workers", 1, 256), default=1,
                   help="images denoised at the same time")
    s.add_argument("--queue", type=_bounded_int("queue", 0, 100_000), default=64,
                   help="requests that may wait; more get 503")
    s.add_argument("--backend", default=DEFAULT_BACKEND, choices=list(BACKENDS))
    s.add_argument("--device", default="auto", help="where the network runs: auto (CUDA, then MPS, then the CPU), "
                   "cpu, cuda, cuda:N or mps")
    s.add_argument("--cors-origin", dest="cors_origin", action="append", default=[],
                   help="allow browser calls from this origin (e.g. https://example.org; '*': any); repeatable. "
                   "Default: same origin only, other origins get 403")
    s.add_argument("--limit-concurrency", dest="limit_concurrency", type=_bounded_int("limit-concurrency", 8, 100_000),
                   default=256, help="open connections at most (also bounded by the open-file limit); beyond it the "
                   "connection that has waited longest without sending a request is closed")
    s.add_argument("--header-timeout", dest="header_timeout", type=_bounded_int("header-timeout", 1, 3600),
                   default=10, help="seconds a client has to send its request headers (408 after)")
    s.add_argument("--body-timeout", dest="body_timeout", type=_bounded_int("body-timeout", 1, 86_400),
                   default=120, help="seconds a client has to send a whole upload (408 after)")
    s.set_defaults(func=cmd_serve)


def _models_parser(sub: Any) -> None:
    s = sub.add_parser("models", help="list the shipped models with their metadata and measured PSNR")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_models)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepdenoise", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True)

    _prepare_parser(sub)
    _download_parser(sub)
    _train_parser(sub)
    _evaluate_parser(sub)
    _denoise_parser(sub)
    _estimate_parser(sub)
    _figures_parser(sub)
    _export_parser(sub)
    _calibrate_parser(sub)
    _benchmark_parser(sub)
    _serve_parser(sub)
    _models_parser(sub)
    return p


def _show_library_log() -> None:
    """The library logs; the command line shows its notes and progress on stderr, one line each."""
    import logging

    logger = logging.getLogger("deepdenoise")
    for h in [h for h in logger.handlers if getattr(h, "deepdenoise_cli", False)]:
        logger.removeHandler(h)  # main() called again in one process (tests): one handler, today's stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("deepdenoise: %(message)s"))
    handler.deepdenoise_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    _show_library_log()
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "noise", None) == "real":  # the older name of the camera mode
        args.noise = "camera"
    try:
        return int(args.func(args) or 0)
    except DeepDenoiseError as exc:
        print(f"deepdenoise: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("deepdenoise: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("deepdenoise: error: out of memory (lower --max-pixels or --tile, or free memory)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `deepdenoise models | head`: the reader left; no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
