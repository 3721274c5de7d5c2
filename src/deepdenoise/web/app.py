"""FastAPI app: ``POST /api/denoise``, ``GET /api/models``, ``GET /healthz`` and the page at ``/``.

Inference runs in a bounded thread pool off the event loop; at most ``workers`` images are
denoised at once and at most ``queue`` more wait, beyond which the service answers 503 instead of
exhausting memory. Uploads are bounded in bytes and pixels; every error is a JSON 4xx.
"""

import asyncio
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deepdenoise.backends import DEFAULT_BACKEND
from deepdenoise.errors import DeepDenoiseError, InputError, ModelError

STATIC = Path(__file__).with_name("static")
MEDIA = {"PNG": ("image/png", ".png"), "JPEG": ("image/jpeg", ".jpg"), "TIFF": ("image/tiff", ".tif"),
         "WEBP": ("image/webp", ".webp"), "BMP": ("image/bmp", ".bmp")}


@dataclass
class ServeConfig:
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000
    workers: int = 1
    queue: int = 64
    tile: int = 512
    backend: str = DEFAULT_BACKEND


def denoise_bytes(data: bytes, filename: str, sigma: float | None, model: str | None,
                  cfg: ServeConfig, noise: str = "auto", peak: float | None = None, strength: float = 1.0,
                  noise_scale: float = 1.0) -> tuple[bytes, str, dict[str, Any]]:
    """Denoise an uploaded file's bytes; returns (encoded image, media type, info). Blocking."""
    from deepdenoise import io as dio
    from deepdenoise.pipeline import DenoiseOptions, denoise_file

    suffix = Path(filename or "upload").suffix.lower()
    if suffix not in dio.READ_SUFFIXES:
        suffix = ".img"
    with tempfile.TemporaryDirectory(prefix="deepdenoise-") as tmp:
        src = Path(tmp) / f"in{suffix}"
        src.write_bytes(data)
        probe = dio.read_image(src)
        h, w = probe.pixels.shape[:2]
        if h * w > cfg.max_pixels:
            raise InputError(f"image has {h * w} pixels; the limit is {cfg.max_pixels}")
        fmt = probe.format.upper() if probe.format.upper() in MEDIA else "PNG"
        if fmt == "JPEG" and probe.alpha is not None:
            fmt = "PNG"
        media, ext = MEDIA[fmt]
        dst = Path(tmp) / f"out{ext}"
        t0 = time.perf_counter()
        opts = DenoiseOptions(sigma, model, cfg.tile, backend=cfg.backend, noise=noise, peak=peak,
                              strength=strength, noise_scale=noise_scale)
        info = denoise_file(src, dst, opts)
        info["elapsed_ms"] = (time.perf_counter() - t0) * 1000
        info.update(width=w, height=h)
        return dst.read_bytes(), media, info


def create_app(cfg: ServeConfig | None = None):  # type: ignore[no-untyped-def]
    from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles

    cfg = cfg or ServeConfig()
    app = FastAPI(title="deepdenoise", version="0.1.0",
                  description="Remove noise from images with deep CNNs.")
    pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="denoise")
    slots = asyncio.Semaphore(cfg.workers + cfg.queue)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(DeepDenoiseError)
    async def _user_error(_: Request, exc: DeepDenoiseError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if isinstance(exc, ModelError) else 400)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.api_route("/healthz", methods=["GET", "HEAD"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/api/models", methods=["GET", "HEAD"])
    async def models() -> list[dict[str, Any]]:
        from deepdenoise.hub import describe_models

        return describe_models()

    @app.post("/api/denoise", responses={200: {"content": {"image/png": {}}}, 400: {}, 404: {}, 413: {},
                                          422: {}, 503: {}})
    async def denoise_endpoint(
        image: UploadFile = File(..., description="image file (PNG, JPEG, TIFF, WebP, BMP, GIF)"),
        sigma: float | None = Form(None, ge=0, le=255, description="noise level 0-255; blind if omitted"),
        model: str | None = Form(None, max_length=200, description="shipped model name"),
        noise: Literal["auto", "gaussian", "poisson", "real"] = Form(
            "auto", description="auto: white noise, or a camera's correlated noise (then the camera model); "
            "poisson: photon-limited image (sigma is then the read noise); real: a camera photo's blotchy noise "
            "through pixel-shuffle down-sampling (5x the time)"),
        peak: float | None = Form(None, ge=1e-3, le=1e9, description="poisson: photons at full scale; "
                                  "estimated if omitted"),
        strength: float = Form(1.0, ge=0, le=1, description="fraction of the luminance noise removed "
                               "(colour noise: all of it)"),
        noise_scale: float = Form(1.0, ge=0.05, le=20, description="multiplies the noise level the model is "
                                  "given (estimated or sigma): above 1 removes more, below 1 keeps more detail"),
    ) -> Response:
        if peak is not None and noise != "poisson":
            raise HTTPException(400, "peak applies to noise=poisson")
        if model is not None:
            from deepdenoise.hub import shipped_models

            if model not in shipped_models():  # the service loads shipped models only, never paths
                raise HTTPException(404, f"unknown model '{model}'")
        data = await image.read(cfg.max_upload_bytes + 1)
        if len(data) > cfg.max_upload_bytes:
            raise HTTPException(413, f"upload larger than {cfg.max_upload_bytes} bytes")
        if not data:
            raise HTTPException(400, "empty upload")
        if slots.locked():
            raise HTTPException(503, "server busy: too many queued requests, retry later")
        async with slots:
            loop = asyncio.get_running_loop()
            body, media, info = await loop.run_in_executor(
                pool, denoise_bytes, data, image.filename or "", sigma, model, cfg, noise, peak, strength,
                noise_scale)
        headers = result_headers(info, media)
        return Response(body, media_type=media, headers=headers)

    return app


def result_headers(info: dict[str, Any], media: str) -> dict[str, str]:
    """What the page and REST clients learn of a result: the level used (the typical one of an
    estimated noise-level function, times the scale asked for), whether it was estimated, the
    function itself (compact JSON), the model and the time."""
    import json

    sigma = info["sigma"] + 0.0  # + 0.0: never "-0.00"
    headers = {"X-Sigma": f"{sigma:.2f}", "X-Sigma-Estimated": str(info["sigma_estimated"]).lower(),
               "X-Noise-Scale": f"{info.get('noise_scale', 1.0):g}", "X-Noise": str(info.get("noise", "gaussian")),
               "X-Model": info["model"], "X-Elapsed-Ms": f"{info['elapsed_ms']:.0f}",
               "Content-Disposition": 'attachment; filename="denoised' + MEDIA_EXT.get(media, ".png") + '"'}
    if info.get("noise_level"):
        nl = info["noise_level"]
        headers["X-Noise-Level"] = json.dumps({"knots": nl["knots"], "levels": nl["levels"]}, separators=(",", ":"))
    if info.get("noise") == "poisson":
        headers.update({"X-Peak": f"{info['peak']:.4g}", "X-Read-Sigma": f"{info['read_sigma']:.2f}"})
    elif info.get("noise") == "real":
        headers["X-PD-Stride"] = str(info["pd_stride"])
    return headers


MEDIA_EXT = {media: ext for media, ext in MEDIA.values()}


def serve(host: str = "127.0.0.1", port: int = 8000, cfg: ServeConfig | None = None) -> None:
    import uvicorn

    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info")
