"""Command-line interface: each subcommand is a thin call into the library.

User errors print one line (``deepdenoise: error: ...``) and exit with a documented code:
2 usage/config, 3 bad input, 4 output problem, 5 model problem, 1 some files of a folder failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from deepdenoise.backends import BACKENDS, DEFAULT_BACKEND
from deepdenoise.errors import DeepDenoiseError


def _sigma(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sigma must be a number, got '{value}'") from None
    if not 0 <= s <= 255:
        raise argparse.ArgumentTypeError(f"sigma must be between 0 and 255, got {value}")
    return s


def cmd_prepare(a: argparse.Namespace) -> int:
    from deepdenoise.data.patches import PatchConfig, prepare_patches

    counts = prepare_patches(a.root, a.out, PatchConfig(seed=a.seed, color=a.color), force=a.force)
    print(f"train patches: {counts['train']}")
    print(f"test patches: {counts['test']}")
    return 0


def cmd_download(a: argparse.Namespace) -> int:
    from deepdenoise.data.download import download_bsds500

    root = download_bsds500(a.out, url=a.url, sha256=a.sha256)
    print(f"BSDS500 ready at {root}")
    return 0


def cmd_train(a: argparse.Namespace) -> int:
    from deepdenoise.config import TrainConfig
    from deepdenoise.train import train

    if a.resume:
        cfg = TrainConfig.from_yaml(Path(a.resume) / "config.yaml")
    else:
        cfg = TrainConfig.from_yaml(a.config) if a.config else TrainConfig()
    for key in ("model", "data", "epochs", "batch_size", "lr", "sigma", "sigma_max", "out", "device",
                "val_limit", "max_minutes", "steps_per_epoch", "seed", "data_mode", "loss",
                "precise_bn_batches"):
        val = getattr(a, key, None)
        if val is not None:
            setattr(cfg, key, val)
    if a.resume:
        cfg.out = a.resume
    if a.no_amp:
        cfg.amp = False
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


def cmd_evaluate(a: argparse.Namespace) -> int:
    from deepdenoise.api import resolve_model_name
    from deepdenoise.evaluate import evaluate_dataset, evaluate_patches, format_table, write_json
    from deepdenoise.hub import load_model

    sigmas = a.sigma or [15.0, 25.0, 50.0]
    if a.estimator:
        from deepdenoise.evaluate import evaluate_estimator

        rows = [r for ds in a.dataset or [] for r in evaluate_estimator(ds, sigmas, a.seed, a.limit)]
        if not rows:
            raise DeepDenoiseError("--estimator needs --dataset")
        print(f"{'dataset':<12} {'sigma':>5} {'n':>4} {'estimate':>9} {'bias':>7} {'mean |err|':>10} {'max |err|':>9}")
        for r in rows:
            print(f"{r['dataset']:<12} {r['sigma']:>5g} {r['images']:>4d} {r['mean_estimate']:>9.2f} "
                  f"{r['mean_error']:>7.2f} {r['mean_abs_error']:>10.2f} {r['max_abs_error']:>9.2f}")
        if a.json:
            write_json(a.json, rows, {"estimator": "wavelet MAD (Haar HH band)", "seed": a.seed})
        return 0
    name = a.model or resolve_model_name(None, color=False)
    model, meta = load_model(name)
    if a.backend != "eager":
        from deepdenoise.backends import resolve_backend

        a.backend = resolve_backend(model, a.backend)  # auto -> the path it takes here
        if a.patches:
            raise DeepDenoiseError("--backend applies to --dataset; --patches is evaluated in eager fp32")
        if a.record:
            raise DeepDenoiseError("--record stores eager fp32 figures; drop --backend")
    results = []
    for ds in a.dataset or []:
        results += evaluate_dataset(model, ds, sigmas, seed=a.seed, limit=a.limit, blind_sigma=a.blind,
                                    backend=a.backend)
    if a.patches:
        results += evaluate_patches(model, a.patches, sigmas, limit=a.limit)
    if not results:
        raise DeepDenoiseError("nothing to evaluate: give --dataset and/or --patches")
    print(f"model: {name}  backend: {a.backend}")
    print(format_table(results))
    if a.record:
        from deepdenoise.hub import record_evaluation

        record_evaluation(name, results)
    if a.json:
        for r in results:
            r["model"] = name
        protocol = "float AWGN (seed + image index), unclipped; PSNR of the output clipped to [0, 1]"
        write_json(a.json, results, {"model": name, "architecture": meta.get("architecture"),
                                     "backend": a.backend, "seed": a.seed, "protocol": protocol})
    return 0


def cmd_denoise(a: argparse.Namespace) -> int:
    from deepdenoise.pipeline import denoise_path

    return denoise_path(a.input, a.output, sigma=a.sigma, model=a.model, overwrite=a.overwrite,
                        tile=a.tile, gray=a.gray, jobs=a.jobs, backend=a.backend)


def cmd_export(a: argparse.Namespace) -> int:
    from deepdenoise.export import export_onnx
    from deepdenoise.hub import load_model

    model, meta = load_model(a.model)
    out = Path(a.output or f"{Path(str(a.model)).stem}.onnx")
    if out.exists() and not a.overwrite:
        raise DeepDenoiseError(f"{out}: already exists (use --overwrite to replace it)")
    export_onnx(model, meta, out, int8=a.int8)
    print(out)
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    from deepdenoise.quant import calibrate_file

    out = Path(a.output).with_suffix(".safetensors")
    if (out.exists() or out.with_suffix(".json").exists()) and not a.overwrite:
        raise DeepDenoiseError(f"{out}: already exists (use --overwrite to replace it)")
    print(calibrate_file(a.model, a.data, out, a.batches, a.sigma_max, a.seed))
    return 0


def cmd_models(a: argparse.Namespace) -> int:
    from deepdenoise.hub import describe_models

    rows = describe_models()
    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']}: {r['architecture']} {r['preset_config']}")
        print(f"  parameters {r['parameters']:,}, {r['flops_per_pixel'] / 1e6:.2f} MFLOP/pixel, "
              f"{r['steps']} steps, {r['train_minutes']:.1f} min on {r['hardware']}")
        print(f"  recipe: {r['command']}")
        if r["int8"]:
            print(f"  int8 calibration (backend int8/auto): {r['int8']}")
        for ds, table in r["evaluation"].items():
            cells = ", ".join(f"sigma {s}: {v:.2f}" for s, v in table.items())
            print(f"  {ds} PSNR (dB): {cells}")
    return 0


def cmd_figures(a: argparse.Namespace) -> int:
    from deepdenoise.hub import load_model
    from deepdenoise.plots import make_figures

    model, _ = load_model(a.model)
    res = make_figures(model, a.dataset, a.out, a.sigma, a.patches, a.limit, label=str(a.model))
    for f in res["files"]:
        print(f)
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from deepdenoise.report import build_models_doc, build_report

    ref = Path(a.reference) if a.reference else None
    cds = Path(a.color_dataset) if a.color_dataset else None
    build_report(Path(a.out), Path(a.dataset), cds, Path(a.patches), Path(a.runs), ref, a.limit)
    build_models_doc(Path(a.out).with_name("models.md"), Path(a.runs))
    print(a.out)
    print(Path(a.out).with_name("models.md"))
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    try:
        from deepdenoise.web.app import ServeConfig, serve
    except ImportError as exc:
        raise DeepDenoiseError(f"the web service needs its extras: pip install -e '.[web]' ({exc})") from None
    serve(a.host, a.port, ServeConfig(max_upload_bytes=a.max_upload_mb * 1024 * 1024,
                                      max_pixels=a.max_pixels, workers=a.workers, queue=a.queue,
                                      backend=a.backend))
    return 0


def cmd_benchmark(a: argparse.Namespace) -> int:
    from deepdenoise.benchmark import CLASSIC, format_markdown, machine_info, run_benchmark, scatter_plot
    from deepdenoise.hub import atomic_write_text, shipped_models

    methods = a.methods.split(",") if a.methods else ["reference", *CLASSIC, *shipped_models()]
    backends = a.backend.split(",")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise DeepDenoiseError(f"unknown backend(s) {', '.join(unknown)} (choose from {', '.join(BACKENDS)})")
    for out in (a.json, a.markdown, a.plot):
        if out and not Path(out).resolve().parent.is_dir():  # found out before the run, not after it
            raise DeepDenoiseError(f"{out}: its folder does not exist")
    info = machine_info()
    print(f"{info['cpu']}, {info['cores']} cores")
    ref = Path(a.reference) if a.reference else None
    results = run_benchmark(a.dataset, a.sigma, methods, backends, a.limit, a.repeats, a.seed, ref)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deepdenoise", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="extract the mission's 40x40 patch sets from BSDS500")
    s.add_argument("root", help="BSDS500 folder with {train,val,test}/*.jpg")
    s.add_argument("--out", default="data/patches")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--color", action="store_true", help="RGB patches (train_color.npy, test_color.npy)")
    s.add_argument("--force", action="store_true", help="rebuild even if the cache matches")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("download", help="download a dataset (bsds500) with checksum verification")
    s.add_argument("name", choices=["bsds500"])
    s.add_argument("--out", default="data/BSDS500")
    s.add_argument("--url", default=None)
    s.add_argument("--sha256", default=None, help="expected archive SHA-256 (optional)")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("train", help="train a model (mission recipe by default)")
    s.add_argument("--config", help="YAML recipe (configs/*.yaml)")
    s.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    s.add_argument("--model")
    s.add_argument("--data")
    s.add_argument("--data-mode", dest="data_mode", choices=["patches", "images"])
    s.add_argument("--epochs", type=int)
    s.add_argument("--steps-per-epoch", dest="steps_per_epoch", type=int)
    s.add_argument("--batch-size", dest="batch_size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--loss", choices=["mse", "l1"])
    s.add_argument("--sigma", type=_sigma)
    s.add_argument("--sigma-max", dest="sigma_max", type=_sigma)
    s.add_argument("--val-limit", dest="val_limit", type=int)
    s.add_argument("--max-minutes", dest="max_minutes", type=float)
    s.add_argument("--precise-bn", dest="precise_bn_batches", type=int,
                   help="re-estimate batch-norm statistics over N batches at the end of training")
    s.add_argument("--seed", type=int)
    s.add_argument("--device")
    s.add_argument("--out")
    s.add_argument("--no-amp", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="PSNR/SSIM of a model on datasets at given noise levels")
    s.add_argument("--model", help="shipped name, .safetensors path, run folder, or official .mat")
    s.add_argument("--dataset", nargs="+", help="folder(s) of clean images, e.g. ../shared/data/BSD68")
    s.add_argument("--patches", help="test patches .npy (from prepare)")
    s.add_argument("--sigma", type=_sigma, nargs="+")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--limit", type=int)
    s.add_argument("--blind", action="store_true", help="do not tell the model the true sigma")
    s.add_argument("--estimator", action="store_true", help="measure the noise-level estimator instead")
    s.add_argument("--record", action="store_true", help="store the PSNR table in a shipped model's metadata")
    s.add_argument("--backend", default="eager", choices=list(BACKENDS),
                   help="inference path (default eager fp32, the protocol's); others show their parity")
    s.add_argument("--json")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("denoise", help="denoise an image file (or a folder)")
    s.add_argument("input")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--sigma", type=_sigma, help="noise level (0-255); estimated when omitted")
    s.add_argument("--model")
    s.add_argument("--gray", action="store_true", help="process colour images as luminance")
    s.add_argument("--tile", type=int, default=512, help="tile size in pixels (bounded memory)")
    s.add_argument("--jobs", type=int, default=1, help="images processed in parallel (folders)")
    s.add_argument("--backend", default=DEFAULT_BACKEND, choices=list(BACKENDS),
                   help="inference backend (all within 0.02 dB of eager fp32)")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_denoise)

    s = sub.add_parser("figures", help="write the mission's three figures (PNG)")
    s.add_argument("--out", default="figs")
    s.add_argument("--model", default="dncnn_s_sigma25")
    s.add_argument("--dataset", default="../shared/data/BSD68")
    s.add_argument("--patches", default="data/patches/test.npy")
    s.add_argument("--sigma", type=_sigma, default=25.0)
    s.add_argument("--limit", type=int, default=10, help="images for the PSNR-vs-sigma curve")
    s.set_defaults(func=cmd_figures)

    s = sub.add_parser("report", help="regenerate docs/results.md")
    s.add_argument("--out", default="docs/results.md")
    s.add_argument("--dataset", default="../shared/data/BSD68")
    s.add_argument("--color-dataset", dest="color_dataset", default="../shared/data/CBSD68")
    s.add_argument("--patches", default="data/patches")
    s.add_argument("--runs", default="runs")
    s.add_argument("--reference", default="../shared/reference-weights")
    s.add_argument("--limit", type=int)
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("export", help="export a model (ONNX, dynamic height/width)")
    s.add_argument("--format", choices=["onnx"], default="onnx")
    s.add_argument("--model", default="default")
    s.add_argument("-o", "--output")
    s.add_argument("--int8", action="store_true", help="the int8 network (needs 'deepdenoise calibrate' first)")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_export)

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

    s = sub.add_parser("benchmark", help="PSNR, SSIM, speed and memory of every method on the same images")
    s.add_argument("--dataset", default="../shared/data/BSD68")
    s.add_argument("--sigma", type=_sigma, nargs="+", default=[25.0])
    s.add_argument("--methods", help="comma list: reference,bm3d,opencv_nlm,skimage_nlm,skimage_wavelet,"
                                     "and shipped model names (default: all)")
    s.add_argument("--backend", default="eager,folded,bf16,onnxruntime,int8",
                   help="comma list of backends for our models (int8: models with an int8 calibration)")
    s.add_argument("--reference", default="../shared/reference-weights",
                   help="folder with the official sigma=N.mat (else an untrained DnCNN-S times the speed)")
    s.add_argument("--limit", type=int)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json")
    s.add_argument("--markdown")
    s.add_argument("--plot")
    s.set_defaults(func=cmd_benchmark)

    s = sub.add_parser("serve", help="start the web page and REST service")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--max-upload-mb", dest="max_upload_mb", type=int, default=50)
    s.add_argument("--max-pixels", dest="max_pixels", type=int, default=50_000_000)
    s.add_argument("--workers", type=int, default=1, help="images denoised at the same time")
    s.add_argument("--queue", type=int, default=64, help="requests that may wait; more get 503")
    s.add_argument("--backend", default=DEFAULT_BACKEND, choices=list(BACKENDS))
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("models", help="list the shipped models with their metadata and measured PSNR")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DeepDenoiseError as exc:
        print(f"deepdenoise: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("deepdenoise: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `deepdenoise models | head`: the reader left; no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
