"""REST API tests (TestClient), schema fuzzing, and the bad-input corpus through the service."""

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from conftest import smooth_image  # noqa: E402
from deepdenoise.metrics import psnr  # noqa: E402
from deepdenoise.noise import add_noise_numpy  # noqa: E402
from deepdenoise.web.app import ServeConfig, create_app  # noqa: E402
from test_corpus import BROKEN  # noqa: E402


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(ServeConfig(max_upload_bytes=2_000_000, max_pixels=500_000)))


def encode(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def test_health_models_openapi_page(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    names = [m["name"] for m in client.get("/api/models").json()]
    assert {"default", "default_color", "dncnn_s_sigma25"} <= set(names)
    assert "/api/denoise" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "deepdenoise" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no external assets
    assert client.get("/static/app.js").status_code == 200


def test_denoise_returns_image_in_input_format(client: TestClient, camera: np.ndarray) -> None:
    noisy = add_noise_numpy(camera[:96, :96], 25, seed=0)
    r = client.post("/api/denoise", files={"image": ("n.png", encode(noisy), "image/png")}, data={"sigma": "25"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-sigma"] == "25.00" and r.headers["x-sigma-estimated"] == "false"
    out = np.asarray(Image.open(io.BytesIO(r.content)), dtype=np.float32) / 255
    assert psnr(out, camera[:96, :96]) > psnr(noisy, camera[:96, :96]) + 5
    r = client.post("/api/denoise", files={"image": ("n.jpg", encode(noisy, "JPEG"), "image/jpeg")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-sigma-estimated"] == "true" and float(r.headers["x-elapsed-ms"]) >= 0


def test_noise_scale_moves_the_result_and_headers_carry_the_estimate(client: TestClient, astronaut: np.ndarray) -> None:
    import json

    noisy = add_noise_numpy(astronaut[:96, :96], 20, seed=0)
    files = {"image": ("n.png", encode(noisy), "image/png")}
    auto = client.post("/api/denoise", files=files)
    less = client.post("/api/denoise", files=files, data={"noise_scale": "0.5"})  # the automatic model
    assert auto.status_code == less.status_code == 200 and less.content != auto.content
    first = client.post("/api/denoise", files=files, data={"model": "camera"})  # a noise-map model
    assert first.status_code == 200 and first.headers["x-noise-scale"] == "1"
    est = float(first.headers["x-sigma"])
    assert 15 < est < 40 and first.headers["x-sigma-estimated"] == "true"
    if "x-noise-level" in first.headers:  # the function, brightness by brightness, per channel
        table = json.loads(first.headers["x-noise-level"])
        assert len(table["levels"]) == 3 and len(table["levels"][0]) == len(table["knots"])
    more = client.post("/api/denoise", files=files, data={"noise_scale": "2", "model": "camera"})
    assert more.status_code == 200 and float(more.headers["x-sigma"]) == pytest.approx(2 * est, abs=0.02)
    assert more.content != first.content
    for bad in ("0", "30", "x"):
        assert client.post("/api/denoise", files=files, data={"noise_scale": bad}).status_code == 422


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_bad_inputs_are_4xx(client: TestClient, name: str) -> None:
    r = client.post("/api/denoise", files={"image": (name, BROKEN[name][0], "application/octet-stream")})
    assert 400 <= r.status_code < 500 and "detail" in r.json()


def test_limits_and_parameters(client: TestClient) -> None:
    img = encode(smooth_image(40, 40))
    big = encode(np.random.default_rng(0).random((1000, 1000)).astype(np.float32))
    assert client.post("/api/denoise", files={"image": ("b.png", big)}).status_code in (400, 413)
    too_many = encode(smooth_image(800, 800))  # 640k pixels > 500k limit
    r = client.post("/api/denoise", files={"image": ("m.png", too_many)})
    assert r.status_code == 400 and "pixels" in r.json()["detail"]
    for sigma in ("-1", "300", "abc"):
        assert client.post("/api/denoise", files={"image": ("a.png", img)}, data={"sigma": sigma}).status_code == 422
    r = client.post("/api/denoise", files={"image": ("a.png", img)}, data={"model": "../../etc/passwd"})
    assert r.status_code == 404
    assert client.post("/api/denoise").status_code == 422


def test_denoise_poisson(client: TestClient, camera: np.ndarray) -> None:
    from deepdenoise.noise.poisson import add_poisson_noise

    noisy = add_poisson_noise(camera[:96, :96], 20, seed=0)
    r = client.post("/api/denoise", files={"image": ("n.png", encode(noisy), "image/png")},
                    data={"noise": "poisson", "peak": "20"})
    assert r.status_code == 200 and r.headers["x-noise"] == "poisson" and float(r.headers["x-peak"]) == 20
    out = np.asarray(Image.open(io.BytesIO(r.content)), dtype=np.float32) / 255
    assert psnr(out, camera[:96, :96]) > psnr(np.clip(noisy, 0, 1), camera[:96, :96]) + 5
    r = client.post("/api/denoise", files={"image": ("n.png", encode(noisy), "image/png")}, data={"noise": "poisson"})
    assert r.status_code == 200 and r.headers["x-sigma-estimated"] == "true" and float(r.headers["x-peak"]) > 0
    for bad in ({"peak": "20"}, {"noise": "poisson", "peak": "-1"}, {"noise": "salt"}):
        r = client.post("/api/denoise", files={"image": ("n.png", encode(noisy), "image/png")}, data=bad)
        assert 400 <= r.status_code < 500 and "detail" in r.json()


def test_denoise_real_noise(client: TestClient) -> None:
    import torch

    from deepdenoise.noise.camera import CameraNoise, simulate_camera

    clean = torch.from_numpy(smooth_image(64, 64, channels=3, seed=3)).permute(2, 0, 1)[None]
    noisy, _ = simulate_camera(clean, CameraNoise(0.04, 0.01), seed=0)
    body = encode(noisy[0].permute(1, 2, 0).numpy())
    r = client.post("/api/denoise", files={"image": ("n.png", body, "image/png")}, data={"noise": "real"})
    assert r.status_code == 200 and r.headers["x-noise"] == "camera" and r.headers["x-pd-stride"] == "2"
    assert np.asarray(Image.open(io.BytesIO(r.content))).shape == (64, 64, 3)
    page = client.get("/").text
    assert 'value="camera"' in page


def test_strength_field(client: TestClient, camera: np.ndarray) -> None:
    noisy = add_noise_numpy(camera[:64, :64], 25, seed=0)
    files = {"image": ("n.png", encode(noisy), "image/png")}
    full = np.asarray(Image.open(io.BytesIO(client.post("/api/denoise", files=files).content)), np.float32)
    part = client.post("/api/denoise", files={"image": ("n.png", encode(noisy), "image/png")}, data={"strength": "0.5"})
    assert part.status_code == 200
    half = np.asarray(Image.open(io.BytesIO(part.content)), np.float32)
    noisy8 = np.round(np.clip(noisy, 0, 1) * 255)
    assert np.abs(half - (full + noisy8) / 2).max() <= 1.5  # halfway between denoised and noisy
    for bad in ("-0.1", "1.5", "x"):
        r = client.post("/api/denoise", files={"image": ("n.png", encode(noisy), "image/png")}, data={"strength": bad})
        assert r.status_code == 422
    assert 'id="strength"' in client.get("/").text
