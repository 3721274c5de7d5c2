"""Where the network runs: --device/device= on every path, the CPU result unchanged, a missing GPU
a one-line error, and (on a machine with CUDA) every GPU backend within 0.02 dB of CPU fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import DATA, needs, smooth_image
from deepdenoise import denoise
from deepdenoise.cli import main
from deepdenoise.errors import DeepDenoiseError
from deepdenoise.hardware import pick_device
from deepdenoise.inference.backends import check_backend, make_forward
from deepdenoise.inference.predictor import Predictor
from deepdenoise.models import create_model

HAS_CUDA = torch.cuda.is_available()


def test_device_names() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if HAS_CUDA else pick_device("auto").type)
    with pytest.raises(DeepDenoiseError, match="unknown device"):
        pick_device("tpu")
    if not HAS_CUDA:
        with pytest.raises(DeepDenoiseError, match="CUDA is not available"):
            pick_device("cuda:0")


def test_backends_the_device_cannot_run_are_refused() -> None:
    check_backend("int8", "cpu")
    check_backend("fp16", "cuda")
    for backend, device in (("fp16", "cpu"), ("int8", "cuda"), ("onnxruntime", "mps"), ("fast", "cpu")):
        with pytest.raises(DeepDenoiseError):
            check_backend(backend, device)


@pytest.mark.parametrize("backend", ["eager", "folded", "bf16"])
def test_the_device_path_matches_eager(backend: str) -> None:
    """The code that sends tiles to a device and back, run with the CPU as the device, on odd
    sizes, gray and colour, blind and noise-map: the eager result (bf16 within its rounding)."""
    for name, overrides in (("dncnn_tiny", {}), ("unet_tiny_rgb", {"noise_map": True, "map_channels": 3})):
        torch.manual_seed(0)
        m = create_model(name, **overrides).eval()
        x = torch.rand(1, m.in_channels, 37, 31)
        with torch.inference_mode():
            want = m(x, 20.0 if m.noise_input else None)
        fwd, used = make_forward(m, backend, 20.0, device=torch.device("cpu"))
        got = fwd(x)
        assert got.device.type == "cpu" and got.dtype == torch.float32 and got.shape == x.shape
        tol = 2e-2 if used == "bf16" else 1e-5
        torch.testing.assert_close(got, want, atol=tol, rtol=0)


def test_predictor_takes_a_device_and_the_image_stays_on_the_host() -> None:
    m = create_model("unet_tiny").eval()
    img = smooth_image(37, 31)
    p = Predictor(m, "folded", tile=16, device="cpu")
    out = p(img.copy(), 25.0)
    assert isinstance(out, np.ndarray) and out.shape == img.shape
    np.testing.assert_allclose(out, Predictor(m, "eager", tile=None)(img.copy(), 25.0), atol=1e-5)


def test_cli_device_cpu_is_unchanged_and_a_missing_gpu_is_one_line(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.png"
    noisy = np.clip(smooth_image(37, 31, 3) + np.random.default_rng(0).normal(0, 0.08, (37, 31, 3)), 0, 1)
    Image.fromarray((noisy * 255).astype(np.uint8)).save(src)
    assert main(["denoise", str(src), "-o", str(tmp_path / "a.png"), "--model", "fast"]) == 0
    assert main(["denoise", str(src), "-o", str(tmp_path / "b.png"), "--model", "fast", "--device", "cpu"]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    if not HAS_CUDA:
        capsys.readouterr()
        assert main(["denoise", str(src), "-o", str(tmp_path / "c.png"), "--device", "cuda"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "CUDA is not available" in err[0] and not (tmp_path / "c.png").exists()


def test_api_device_argument() -> None:
    img = smooth_image(37, 31)
    a = denoise(img, sigma=25, model="fast", device="cpu")
    b = denoise(img, sigma=25, model="fast")
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@needs(DATA / "BSD68")
def test_gpu_paths_within_002_db_of_cpu_fp32() -> None:
    from deepdenoise.evaluation.evaluate import evaluate_dataset
    from deepdenoise.weights.shipped import load_model

    for name in ("fast", "default", "dncnn_s_sigma25"):
        model, _ = load_model(name)
        cpu = evaluate_dataset(model, DATA / "BSD68", [25.0], limit=8, with_ssim=False)[0]["psnr_denoised"]
        for backend in ("eager", "folded", "fp16", "bf16"):
            gpu = evaluate_dataset(model, DATA / "BSD68", [25.0], limit=8, with_ssim=False, backend=backend,
                                   device="cuda")[0]["psnr_denoised"]
            assert abs(gpu - cpu) <= 0.02, (name, backend, gpu, cpu)
