"""FastAPI app: ``POST /api/denoise``, ``GET /api/models``, ``GET /healthz`` and the page at ``/``.

Inference runs in a bounded thread pool off the event loop; at most ``workers`` images are
denoised at once and at most ``queue`` more wait, beyond which the service answers 503 instead of
exhausting memory. Uploads are bounded in bytes and pixels; every error is a JSON 4xx.
"""

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deepdenoise.errors import Cancelled, DeepDenoiseError, InputError, ModelError
from deepdenoise.inference.backends import DEFAULT_BACKEND
from deepdenoise.web.guard import GuardLimits, RequestGuard

log = logging.getLogger(__name__)

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
    cors_origins: tuple[str, ...] = ()  # cross-origin callers allowed ('*': any); same origin always
    body_timeout: float = 120.0  # seconds for a whole upload to arrive
    header_timeout: float = 10.0  # seconds for a request line and headers
    max_header_bytes: int = 16 * 1024
    limit_concurrency: int = 256  # open connections; beyond, the longest-stalled one is dropped
    device: str = "cpu"  # where the network runs (cpu, cuda, cuda:N, mps)


FORM_ROOM = 64 * 1024  # the multipart form's other fields and boundaries, beyond the image's bytes


def denoise_bytes(data: bytes, filename: str, sigma: float | None, model: str | None,
                  cfg: ServeConfig, noise: str = "auto", peak: float | None = None, strength: float = 1.0,
                  noise_scale: float = 1.0, cancel: threading.Event | None = None,
                  density: float | None = None) -> tuple[bytes, str, dict[str, Any]]:
    """Denoise an uploaded file's bytes; returns (encoded image, media type, info). Blocking.

    The header is checked against the pixel limit before anything is decoded, the image is
    decoded once in memory and the answer encoded in memory: no temporary files. Errors name the
    upload."""
    from deepdenoise import io as dio
    from deepdenoise.pipeline.files import DenoiseOptions, denoise_image

    shown = Path(filename).name[:100] if filename else "upload"
    if cancel is not None and cancel.is_set():  # the client left while this waited in the queue
        raise Cancelled("cancelled: the client went away")
    try:
        header = dio.decode_header(data, shown)
        dio.check_pixel_limit(header, cfg.max_pixels, shown)
        fmt = header.format.upper() if header.format.upper() in MEDIA else "PNG"
        if fmt == "JPEG" and header.channels in (2, 4):
            fmt = "PNG"
        media, ext = MEDIA[fmt]
        t0 = time.perf_counter()
        img = dio.decode_image(data, shown, cfg.max_pixels)
        if img.stack_shape and ext != ".tif":
            raise InputError(f"{shown}: a stack of frames comes back only as TIFF")
        opts = DenoiseOptions(sigma, model, cfg.tile, backend=cfg.backend, noise=noise, peak=peak,
                              strength=strength, noise_scale=noise_scale, max_pixels=cfg.max_pixels, density=density,
                              device=cfg.device)
        info = denoise_image(img, opts, shown, cancel=cancel)
        body = dio.encode_image(img, ext)
    except DeepDenoiseError as exc:
        log.info("upload %s refused: %s", shown, exc)
        raise
    info["elapsed_ms"] = (time.perf_counter() - t0) * 1000
    info.update(width=header.width, height=header.height)
    return body, media, info


def create_app(cfg: ServeConfig | None = None):  # type: ignore[no-untyped-def]
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    cfg = cfg or ServeConfig()
    app = FastAPI(title="deepdenoise", version="0.1.0",
                  description="Remove noise from images with deep CNNs.")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_info_routes(app)
    _add_denoise_route(app, cfg)
    limits = GuardLimits(cfg.max_upload_bytes + FORM_ROOM, cfg.body_timeout, cfg.cors_origins)
    return RequestGuard(app, limits)


def _add_info_routes(app: Any) -> None:
    """The page, the health check, the model list, and JSON errors for bad input."""
    from fastapi import Request
    from fastapi.responses import FileResponse, JSONResponse

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
        from deepdenoise.weights.shipped import describe_models

        return describe_models()


def _add_denoise_route(app: Any, cfg: ServeConfig) -> None:
    """``POST /api/denoise``: a bounded pool of workers and queue, cancelled when the client leaves."""
    from fastapi import File, Form, HTTPException, Request, UploadFile
    from fastapi.responses import Response

    pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="denoise")
    slots = asyncio.Semaphore(cfg.workers + cfg.queue)

    @app.post("/api/denoise", responses={200: {"content": {"image/png": {}}}, 400: {}, 404: {}, 413: {},
                                          422: {}, 503: {}})
    async def denoise_endpoint(
        request: Request,
        image: UploadFile = File(..., description="image file (PNG, JPEG, TIFF, WebP, BMP, GIF)"),
        sigma: float | None = Form(None, ge=0, le=255, description="noise level 0-255; blind if omitted"),
        model: str | None = Form(None, max_length=200, description="shipped model name"),
        noise: Literal["auto", "gaussian", "poisson", "camera", "real", "impulse"] = Form(
            "auto", description="auto: white noise, or a camera's correlated noise (then the camera model); "
            "poisson: photon-limited image (sigma is then the read noise); real: a camera photo's blotchy noise "
            "through pixel-shuffle down-sampling (5x the time); impulse: salt-and-pepper, bit errors, hot/dead pixels"),
        peak: float | None = Form(None, ge=1e-3, le=1e9, description="poisson: photons at full scale; "
                                  "estimated if omitted"),
        strength: float = Form(1.0, ge=0, le=1, description="fraction of the luminance noise removed "
                               "(colour noise: all of it)"),
        noise_scale: float = Form(1.0, ge=0.05, le=20, description="multiplies the noise level the model is "
                                  "given (estimated or sigma): above 1 removes more, below 1 keeps more detail"),
        density: float | None = Form(None, gt=0, lt=1, description="noise=impulse: fraction of corrupted samples; "
                                     "estimated if omitted"),
    ) -> Response:
        if peak is not None and noise != "poisson":
            raise HTTPException(400, "peak applies to noise=poisson")
        if density is not None and noise != "impulse":
            raise HTTPException(400, "density applies to noise=impulse")
        if model is not None:
            from deepdenoise.weights.shipped import shipped_models

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
            body, media, info = await _run_cancellable(request, pool, denoise_bytes, data, image.filename or "",
                                                       sigma, model, cfg, noise, peak, strength, noise_scale,
                                                       density=density)
        headers = result_headers(info, media)
        return Response(body, media_type=media, headers=headers)


async def _run_cancellable(request: Any, pool: ThreadPoolExecutor, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs, cancel=event)`` in the pool; if the client hangs up meanwhile, set
    the event so the job stops at its next tile instead of finishing for nobody."""
    cancel = threading.Event()
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(pool, lambda: fn(*args, **kwargs, cancel=cancel))
    while True:
        done, _ = await asyncio.wait({future}, timeout=0.25)
        if done:
            return future.result()
        if not cancel.is_set() and await request.is_disconnected():
            log.info("client went away: cancelling its job")
            cancel.set()


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
    elif info.get("noise") == "camera":
        headers["X-PD-Stride"] = str(info["pd_stride"])
    elif info.get("noise") == "impulse":
        headers["X-Impulse-Density"] = f"{info['impulse_density']:.4f}"
    return headers


MEDIA_EXT = {media: ext for media, ext in MEDIA.values()}


def serve(host: str = "127.0.0.1", port: int = 8000, cfg: ServeConfig | None = None) -> None:
    """Run the service under uvicorn with the connection-level limits of :mod:`deepdenoise.web.guard`."""
    import resource

    import uvicorn

    from deepdenoise.web.protocol import guarded_protocol

    cfg = cfg or ServeConfig()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    connections = max(8, min(cfg.limit_concurrency, soft - 64))  # file descriptors left for files and models
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    protocol = guarded_protocol(cfg.header_timeout, cfg.max_header_bytes, connections)
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info", http=protocol,
                limit_concurrency=connections + 1, timeout_keep_alive=5,
                h11_max_incomplete_event_size=cfg.max_header_bytes)
