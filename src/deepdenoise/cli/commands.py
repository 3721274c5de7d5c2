"""The CLI's subcommands: each parses nothing itself and calls into the library."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deepdenoise.defaults import BACKENDS
from deepdenoise.errors import DeepDenoiseError

if TYPE_CHECKING:
    from deepdenoise.noise.level import NoiseLevel
    from deepdenoise.pipeline.files import DenoiseOptions


def cmd_prepare(a: argparse.Namespace) -> int:
    from deepdenoise.data.patches import PatchConfig, prepare_patches

    counts = prepare_patches(a.root, a.out, PatchConfig(seed=a.seed, color=a.color), force=a.force)
    print(f"train patches: {counts['train']}")
    print(f"test patches: {counts['test']}")
    return 0


def cmd_download(a: argparse.Namespace) -> int:
    if a.name == "dncnn-reference":
        from deepdenoise.data.download import download_reference
        from deepdenoise.weights.shipped import reference_cache

        if a.sha256:
            raise DeepDenoiseError("--sha256 applies to bsds500 (the reference files have built-in checksums)")
        root = download_reference(Path(a.out) if a.out else reference_cache(), base_url=a.url)
        print(f"official DnCNN weights ready at {root}")
        return 0
    from deepdenoise.data.download import download_bsds500

    root = download_bsds500(a.out or "data/BSDS500", url=a.url, sha256=a.sha256)
    print(f"BSDS500 ready at {root}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from deepdenoise.training.config import TrainConfig
    from deepdenoise.training.trainer import train

    if a.resume:
        cfg = TrainConfig.from_yaml(Path(a.resume) / "config.yaml")
    else:
        cfg = TrainConfig.from_yaml(a.config) if a.config else TrainConfig()
    from dataclasses import fields

    for f in fields(TrainConfig):  # flags given on the command line override the recipe
        val = getattr(a, f.name, None)
        if val is not None:
            setattr(cfg, f.name, val)
    if a.resume:
        cfg.out = a.resume
    cfg.validate()
    logging.getLogger("deepdenoise.training").setLevel(logging.INFO)  # resumed at, init_from: always said
    command = "deepdenoise " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    summary = train(cfg, resume=bool(a.resume), progress=not a.quiet, command=command)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 validates: its summary is the run's
        return 130 if summary["interrupted"] else 0
    print(json.dumps(summary))
    if summary["interrupted"]:
        print(f"deepdenoise: interrupted at step {summary['steps']}; checkpoint saved, continue with: "
              f"deepdenoise train --resume {shlex.quote(cfg.out)}", file=sys.stderr)
        return 130
    return 0


def _evaluate_astro(a: argparse.Namespace) -> int:
    from deepdenoise.astro import require_astropy

    require_astropy()
    from deepdenoise.astro.pipeline import AstroOptions, evaluate_fields, format_astro_table
    from deepdenoise.evaluation.evaluate import write_json

    if a.dataset or a.patches or a.pairs:
        raise DeepDenoiseError("--synthetic astro makes its own fields: no --dataset, --patches or --pairs")
    rows = evaluate_fields(a.fields, a.field_size, AstroOptions(model=a.model), seed=a.seed)
    print(format_astro_table(rows))
    if a.json:
        write_json(a.json, rows, {"synthetic": "astro", "fields": a.fields, "size": a.field_size, "seed": a.seed})
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    if a.pairs:
        return _evaluate_pairs(a)
    if a.ensemble != 1:
        raise DeepDenoiseError("--ensemble applies to --pairs")
    if a.synthetic:
        return _evaluate_astro(a)
    if a.noise in ("impulse", "random", "biterror"):
        return _evaluate_impulse(a)
    sigmas = a.sigma or ([0.0] if a.noise == "poisson" else [15.0, 25.0, 50.0])
    if a.estimator:
        return _evaluate_estimator(a, sigmas)
    _check_evaluate_flags(a)
    return _evaluate_model(a, sigmas)


def _evaluate_estimator(a: argparse.Namespace, sigmas: list[float]) -> int:
    from deepdenoise.evaluation.evaluate import evaluate_estimator, format_estimator_table, write_json

    rows = [r for ds in a.dataset or [] for r in evaluate_estimator(ds, sigmas, a.seed, a.limit)]
    if not rows:
        raise DeepDenoiseError("--estimator needs --dataset")
    print(format_estimator_table(rows))
    if a.json:
        write_json(a.json, rows, {"estimator": "wavelet MAD (Haar HH band)", "seed": a.seed})
    return 0


def _check_evaluate_flags(a: argparse.Namespace) -> None:
    if a.noise == "poisson" and (a.patches or not a.peak):
        raise DeepDenoiseError("--noise poisson needs --peak and --dataset (no --patches)")
    if a.noise != "poisson" and (a.peak or a.no_vst):
        raise DeepDenoiseError("--peak and --no-vst apply to --noise poisson")
    if (a.noise == "camera") != bool(a.camera) or (a.noise == "camera" and (a.patches or a.sigma)):
        raise DeepDenoiseError("--noise camera needs --camera and --dataset (no --sigma or --patches), "
                               "and --camera needs --noise camera")
    if a.patches and a.backend not in ("eager", None):
        raise DeepDenoiseError("--backend applies to --dataset; --patches is evaluated in eager fp32")


EVAL_PROTOCOLS = {"poisson": "Poisson at peak photons + Gaussian read noise (seed + image index), unclipped",
                  "camera": "camera pipeline, deepdenoise.noise.camera.simulate_camera (seed + image index), "
                  "scored against the pipeline without noise"}


def _evaluate_model(a: argparse.Namespace, sigmas: list[float]) -> int:
    from deepdenoise.evaluation.evaluate import (
        evaluate_camera,
        evaluate_dataset,
        evaluate_patches,
        evaluate_poisson,
        format_table,
        write_json,
    )
    from deepdenoise.hardware import pick_device
    from deepdenoise.inference.api import resolve_model_name
    from deepdenoise.inference.backends import resolve_backend
    from deepdenoise.weights.shipped import load_model

    name = a.model or resolve_model_name(None, color=False)
    model, meta = load_model(name)
    a.device = check_device(a.backend, a.device)
    a.backend = resolve_backend(model, a.backend, pick_device(a.device).type)  # auto -> the path it takes here
    results = []
    for ds in a.dataset or []:
        if a.noise == "camera":
            results += evaluate_camera(model, ds, a.camera, a.pd_stride, seed=a.seed, limit=a.limit,
                                       backend=a.backend, device=a.device)
        elif a.noise == "poisson":
            results += evaluate_poisson(model, ds, a.peak, sigmas, seed=a.seed, limit=a.limit, estimate=a.blind,
                                        backend=a.backend, vst=not a.no_vst, device=a.device)
        else:
            results += evaluate_dataset(model, ds, sigmas, seed=a.seed, limit=a.limit, blind_sigma=a.blind,
                                        backend=a.backend, device=a.device)
    if a.patches:
        results += evaluate_patches(model, a.patches, sigmas, limit=a.limit)
    if not results:
        raise DeepDenoiseError("nothing to evaluate: give --dataset and/or --patches")
    print(f"model: {name}  backend: {a.backend}")
    print(format_table(results))
    if a.json:
        for r in results:
            r["model"] = name
        protocol = EVAL_PROTOCOLS.get(a.noise, "float AWGN (seed + image index), unclipped")
        write_json(a.json, results, {"model": name, "architecture": meta.get("architecture"), "backend": a.backend,
                                     "seed": a.seed, "protocol": protocol + "; PSNR of the output clipped to [0, 1]"})
    return 0


def _evaluate_pairs(a: argparse.Namespace) -> int:
    """``evaluate --pairs DIR``: the model as a user runs it (level estimated) on real noisy/clean pairs."""
    from deepdenoise.evaluation.evaluate import write_json
    from deepdenoise.evaluation.realpairs import load_pairs, score_pairs
    from deepdenoise.inference.api import denoise

    if a.dataset or a.patches or a.sigma or a.noise == "poisson":
        raise DeepDenoiseError("--pairs takes no --dataset, --patches, --sigma or --noise poisson")
    data = load_pairs(a.pairs, a.pairs_glob, a.limit)
    noise = "camera" if a.noise in ("camera", "real") else "auto"
    backend = "auto" if a.backend == "eager" else a.backend
    row = score_pairs(lambda y: denoise(y, model=a.model, noise=noise, backend=backend,
                                        noise_scale=a.noise_scale, ensemble=a.ensemble), data)
    row.update(model=a.model or "default", noise=noise, noise_scale=a.noise_scale, dataset=Path(a.pairs).name,
               ensemble=a.ensemble)
    print(f"{'pairs':<16} {'model':<16} {'n':>4} {'PSNR noisy':>11} {'PSNR out':>9} {'SSIM out':>9} {'MP/s':>7}")
    print(f"{row['dataset']:<16} {row['model']:<16} {row['images']:>4d} {row['psnr_noisy']:>11.2f} "
          f"{row['psnr']:>9.2f} {row['ssim']:>9.4f} {row['mp_per_s']:>7.3f}")
    if a.json:
        write_json(a.json, [row], {"pairs": a.pairs, "protocol": "real noisy/clean pairs; the model as a user "
                                   "runs it (noise level estimated); PSNR of the output clipped to [0, 1]"})
    return 0


def cmd_denoise(a: argparse.Namespace) -> int:
    from deepdenoise.pipeline.files import DenoiseOptions

    if a.peak is not None and a.noise != "poisson":
        raise DeepDenoiseError("--peak applies to --noise poisson")
    if a.pd_stride != 2 and a.noise not in ("camera", "real"):
        raise DeepDenoiseError("--pd-stride applies to --noise camera")
    if a.density is not None and a.noise != "impulse":
        raise DeepDenoiseError("--density applies to --noise impulse")
    check_device(a.backend, a.device)
    opts = DenoiseOptions(a.sigma, a.model, a.tile, a.gray, a.backend, a.noise, a.peak, a.pd_stride, a.strength,
                          a.noise_scale, a.max_pixels or None, a.hdu, a.gain, a.read_noise, a.density, a.device,
                          a.ensemble)
    if a.engine == "ray" or a.address:
        return _denoise_ray(a, opts)
    return _denoise_path(a.input, a.output, opts, overwrite=a.overwrite, jobs=a.jobs, hidden=a.hidden)


def _denoise_ray(a: argparse.Namespace, opts: DenoiseOptions) -> int:
    from deepdenoise.pipeline.ray_engine import denoise_folder_ray

    src = Path(a.input)
    if not src.is_dir():
        raise DeepDenoiseError("--engine ray denoises folders; give a folder")
    workers = a.jobs if a.jobs > 1 else 2  # --jobs: Ray workers (each holds the model)
    n, failures, skipped = denoise_folder_ray(src, Path(a.output), opts, a.overwrite, workers, a.address, a.hidden)
    for line in [*skipped, *(f"failed: {f}" for f in failures)]:
        print(f"deepdenoise: {line}", file=sys.stderr)
    print(f"denoised {n} files on Ray, {len(failures)} failed", file=sys.stderr)
    return 1 if failures else 0


def cmd_export(a: argparse.Namespace) -> int:
    from deepdenoise.inference.onnx import export_onnx
    from deepdenoise.weights.shipped import load_model

    model, meta = load_model(a.model)
    out = Path(a.output or f"{Path(str(a.model)).stem}.onnx")
    if out.exists() and not a.overwrite:
        raise DeepDenoiseError(f"{out}: already exists (use --overwrite to replace it)")
    export_onnx(model, meta, out, int8=a.int8)
    print(out)
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    from deepdenoise.inference.quant import calibrate_file

    out = Path(a.output).with_suffix(".safetensors")
    if (out.exists() or out.with_suffix(".json").exists()) and not a.overwrite:
        raise DeepDenoiseError(f"{out}: already exists (use --overwrite to replace it)")
    print(calibrate_file(a.model, a.data, out, a.batches, a.sigma_max, a.seed))
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    from deepdenoise.weights.shipped import describe_models, level_label

    rows = describe_models()
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        level = ("noise map: follows --sigma / --noise-scale, estimated per brightness and channel"
                 if r["noise_map"] else "blind: estimates the level itself (a lower --sigma keeps some noise)")
        print(f"{r['name']}: {r['architecture']} {r['preset_config']}")
        print(f"  {level}")
        print(f"  parameters {r['parameters']:,}, {r['flops_per_pixel'] / 1e6:.2f} MFLOP/pixel, "
              f"{r['steps']} steps, {r['train_minutes']:.1f} min on {r['hardware']}")
        print(f"  recipe: {r['command']}")
        if r["int8"]:
            print(f"  int8 calibration (backend int8/auto): {r['int8']}")
        for ds, table in r["evaluation"].items():
            cells = ", ".join(f"{level_label(s)}: {v:.2f}" for s, v in table.items())
            print(f"  {ds} PSNR (dB): {cells}")
    return 0


def cmd_figures(a: argparse.Namespace) -> int:
    from deepdenoise.evaluation.plots import make_figures
    from deepdenoise.weights.shipped import load_model

    model, _ = load_model(a.model)
    res = make_figures(model, a.dataset, a.out, a.sigma, a.patches, a.limit, label=str(a.model))
    for f in res["files"]:
        print(f)
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    try:
        from deepdenoise.web.app import ServeConfig, serve
    except ImportError as exc:
        raise DeepDenoiseError(f"the web service needs its extras: pip install -e '.[web]' ({exc})") from None
    serve(a.host, a.port, ServeConfig(max_upload_bytes=a.max_upload_mb * 1024 * 1024,
                                      max_pixels=a.max_pixels, workers=a.workers, queue=a.queue,
                                      backend=a.backend, cors_origins=tuple(a.cors_origin),
                                      body_timeout=a.body_timeout, header_timeout=a.header_timeout,
                                      limit_concurrency=a.limit_concurrency, device=check_device(a.backend, a.device)))
    return 0


def cmd_benchmark(a: argparse.Namespace) -> int:
    from deepdenoise.evaluation.benchmark import CLASSIC, format_markdown, machine_info, run_benchmark, scatter_plot
    from deepdenoise.fsutil import atomic_write_text
    from deepdenoise.weights.shipped import reference_dir, white_noise_models

    for out in (a.json, a.markdown, a.plot):
        if out and not Path(out).resolve().parent.is_dir():  # found out before the run, not after it
            raise DeepDenoiseError(f"{out}: its folder does not exist")
    if a.pairs:
        return _benchmark_pairs(a)
    if not a.dataset:
        raise DeepDenoiseError("benchmark needs --dataset (clean images, noise added) or --pairs (noisy/clean pairs)")
    if a.noise != "gaussian":
        return _benchmark_impulse(a)
    methods = a.methods.split(",") if a.methods else ["reference", *CLASSIC, *white_noise_models()]
    backends = a.backend.split(",")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise DeepDenoiseError(f"unknown backend(s) {', '.join(unknown)} (choose from {', '.join(BACKENDS)})")
    device = check_device("auto", a.device)
    info = machine_info(device)
    print(f"{info['cpu']}, {info['cores']} cores" + (f", {info['gpu']}" if "gpu" in info else ""))
    ref = reference_dir(a.reference)
    results = run_benchmark(a.dataset, a.sigma, methods, backends, a.limit, a.repeats, a.seed, ref, device=device)
    table = format_markdown(results, info)
    print(table)
    if a.json:
        atomic_write_text(Path(a.json), json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    if a.markdown:
        atomic_write_text(Path(a.markdown), "# Benchmark\n\nGenerated by `deepdenoise " + " ".join(sys.argv[1:])
                          + "`.\n\n" + table)
    if a.plot:
        scatter_plot(results, Path(a.plot))
    return 0


def _impulse_levels(a: argparse.Namespace) -> list[float]:
    if a.noise == "biterror":
        if a.density:
            raise DeepDenoiseError("--noise biterror takes --ber, not --density")
        return a.ber or [1e-3, 1e-2, 5e-2]
    if a.ber:
        raise DeepDenoiseError(f"--noise {a.noise} takes --density, not --ber")
    return a.density or [0.1, 0.3, 0.5]


def _benchmark_impulse(a: argparse.Namespace) -> int:
    from deepdenoise.evaluation.benchmark_impulse import format_impulse_markdown, impulse_figure, run_impulse_benchmark
    from deepdenoise.fsutil import atomic_write_text, write_section

    levels = _impulse_levels(a)
    model = a.methods if a.methods and a.methods in _shipped() else None
    rows = run_impulse_benchmark(a.dataset, a.noise, levels, a.limit, a.seed, model)
    table = format_impulse_markdown(rows)
    print(table)
    if a.json:
        atomic_write_text(Path(a.json), json.dumps({"results": rows}, indent=2) + "\n")
    if a.markdown:
        command = "deepdenoise " + " ".join(shlex.quote(x) for x in sys.argv[1:])
        write_section(Path(a.markdown), f"benchmark-{a.noise}", f"`{command}`\n\n{table}")
    if a.plot:
        impulse_figure(a.dataset, a.noise, levels[len(levels) // 2], Path(a.plot), model, a.seed)
    return 0


def _shipped() -> dict[str, Path]:
    from deepdenoise.weights.shipped import shipped_models

    return shipped_models()


def _evaluate_impulse(a: argparse.Namespace) -> int:
    from deepdenoise.evaluation.benchmark_impulse import format_impulse_markdown, run_impulse_benchmark
    from deepdenoise.evaluation.evaluate import write_json

    if not a.dataset:
        raise DeepDenoiseError(f"--noise {a.noise} needs --dataset")
    levels = _impulse_levels(a)
    rows = [r for ds in a.dataset for r in run_impulse_benchmark(
        ds, a.noise, levels, a.limit, a.seed, a.model, a.backend if a.backend != "eager" else "folded",
        methods=["deepdenoise"])]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        print(f"{ds}:")
        print(format_impulse_markdown([r for r in rows if r["dataset"] == ds]))
    if a.json:
        write_json(a.json, rows, {"noise": a.noise, "levels": levels, "seed": a.seed})
    return 0


def _benchmark_pairs(a: argparse.Namespace) -> int:
    """``benchmark --pairs DIR``: real noisy/clean pairs, our modes against the classic oracles."""
    from deepdenoise.evaluation.benchmark import machine_info
    from deepdenoise.evaluation.benchmark_real import (
        PAIR_METHODS,
        _cbm3d,
        _ours,
        format_pairs_markdown,
        pairs_figure,
        reusable_rows,
        run_pairs_benchmark,
    )
    from deepdenoise.evaluation.realpairs import load_pairs
    from deepdenoise.fsutil import atomic_write_text
    from deepdenoise.weights.shipped import reference_dir, shipped_models

    methods = a.methods.split(",") if a.methods else [*PAIR_METHODS, "default_color", "fast_color",
                                                       "fast_color+real", "camera"]
    known = set(PAIR_METHODS) | {m for name in shipped_models() for m in (name, f"{name}+real")}
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise DeepDenoiseError(f"unknown method(s) {', '.join(unknown)} (choose from {', '.join(sorted(known))})")
    data = load_pairs(a.pairs, a.pairs_glob, a.limit)
    reuse = reusable_rows(a.reuse, a.pairs, len(data)) if a.reuse else None
    info = machine_info()
    print(f"{info['cpu']}, {info['cores']} cores; {len(data)} pairs from {a.pairs}")
    rows = run_pairs_benchmark(data, methods, reference_dir(a.reference), reuse=reuse)
    table = format_pairs_markdown(rows, Path(a.pairs).name, info)
    print(table)
    if a.json:
        atomic_write_text(Path(a.json),
                          json.dumps({"machine": info, "pairs": a.pairs, "results": rows}, indent=2) + "\n")
    if a.markdown:
        atomic_write_text(Path(a.markdown), "# Real noise: noisy/clean pairs\n\nGenerated by `deepdenoise "
                          + " ".join(sys.argv[1:]) + "`.\n\n" + table)
    if a.plot:
        best = next((r for r in rows if r["method"] == "cbm3d"), None)
        columns = [(f"CBM3D {best['settings']}", _cbm3d(float(best["settings"].split()[1])))] if best else []
        pairs_figure(data, [*columns, ("ours (default)", _ours(None))], Path(a.plot))
    return 0


def cmd_estimate(a: argparse.Namespace) -> int:
    """Print (and optionally plot) each image's noise-level function."""
    import json


    for path in a.images:
        est = estimate_file(path)
        if a.json:
            print(json.dumps({"image": path, **est.to_dict()}))
            continue
        kind = "correlated, as a camera's" if est.correlated >= 0.5 else "white"
        print(f"{path}: typical noise level {est.typical():.2f} (0-255), {kind}")
        knots = [(j + 0.5) / len(est.levels[0]) for j in range(len(est.levels[0]))]
        print("  brightness " + " ".join(f"{k:6.3f}" for k in knots))
        names = ["gray"] if est.channels == 1 else ["R", "G", "B"]
        for name, row in zip(names, est.levels):
            print(f"  {name:>10} " + " ".join(f"{v:6.2f}" for v in row))
        print("  share      " + " ".join(f"{w:6.3f}" for w in est.weights))
    if a.plot:
        from deepdenoise.evaluation.plots import plot_noise_levels

        plot_noise_levels([(p, estimate_file(p)) for p in a.images], a.plot)
        print(f"plot: {a.plot}")
    return 0


def estimate_file(path: str) -> NoiseLevel:
    """The noise-level function of an image file (each frame of a stack: the first)."""
    from deepdenoise.io import read_image
    from deepdenoise.noise.level import estimate_noise_level

    img = read_image(path)
    return estimate_noise_level(img.pixels[0] if img.stack_shape else img.pixels)


def _denoise_path(src: str, dst: str, opts: DenoiseOptions, overwrite: bool = False,
                 jobs: int = 1, hidden: bool = False) -> int:
    """A file or a folder. Returns the exit code (1 if some files of a folder failed)."""
    from deepdenoise.errors import InputError
    from deepdenoise.pipeline.files import denoise_file, denoise_folder, describe

    s, d = Path(src), Path(dst)
    if not s.exists():
        raise InputError(f"{s}: no such file or folder")
    if s.is_dir():
        n, failures, skipped = denoise_folder(s, d, opts, overwrite, jobs, hidden=hidden)
        print(f"denoised {n} files, {len(failures)} failed" + (f", {len(skipped)} skipped" if skipped else ""),
              file=sys.stderr)
        return 1 if failures else 0
    info = denoise_file(s, d, opts, overwrite, show_progress=True)
    print(describe(s, d, info), file=sys.stderr)
    return 0


def check_device(backend: str, device: str) -> str:
    """The device by its name ('auto' resolved), checked to exist and to run ``backend``, before any
    work: a missing GPU or a CPU-only backend on a GPU is a one-line error (exit 2)."""
    from deepdenoise.hardware import pick_device
    from deepdenoise.inference.backends import check_backend

    dev = pick_device(device)
    check_backend(backend, dev.type)
    return str(dev)
