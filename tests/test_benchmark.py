import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import smooth_image
from deepdenoise.cli import main
from deepdenoise.errors import DeepDenoiseError
from deepdenoise.inference.backends import make_forward
from deepdenoise.metrics import psnr
from deepdenoise.models import create_model
from deepdenoise.models.folding import fold_batchnorm
from deepdenoise.noise import add_noise_numpy
from deepdenoise.weights.shipped import load_model


@pytest.mark.parametrize("unshuffle", [1, 2])
def test_fold_batchnorm_is_exact(unshuffle: int) -> None:
    torch.manual_seed(0)
    model = create_model("dncnn_tiny", unshuffle=unshuffle)
    model.train()
    for _ in range(3):  # give the BN layers non-trivial running statistics
        model(torch.rand(4, 1, 16, 16))
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, 1, 37, 31)
    assert torch.allclose(folded(x), model(x), atol=1e-5)


@pytest.mark.parametrize("backend", ["folded", "bf16"])
def test_backend_parity_on_shipped_model(camera: np.ndarray, backend: str) -> None:
    model, _ = load_model("dncnn_s_sigma25")
    noisy = add_noise_numpy(camera[:96, :96], 25, seed=0)
    x = torch.from_numpy(noisy)[None, None]
    ref, _ = make_forward(model, "eager")
    fast, used = make_forward(model, backend)
    a, b = ref(x)[0, 0].numpy(), fast(x)[0, 0].numpy()
    assert abs(psnr(a, camera[:96, :96]) - psnr(b, camera[:96, :96])) <= 0.02
    assert used in ("folded", "bf16")


def test_benchmark_smoke(tmp_path: Path) -> None:
    pytest.importorskip("bm3d")
    pytest.importorskip("cv2")
    (tmp_path / "ds").mkdir()
    for i in range(2):
        Image.fromarray((smooth_image(40, 36, seed=i) * 255).astype(np.uint8)).save(tmp_path / "ds" / f"{i}.png")
    rc = main(["benchmark", "--dataset", str(tmp_path / "ds"), "--sigma", "25", "--repeats", "1",
               "--reference", str(tmp_path / "none"), "--json", str(tmp_path / "b.json"),
               "--markdown", str(tmp_path / "b.md"), "--plot", str(tmp_path / "b.png")])
    assert rc == 0
    res = json.loads((tmp_path / "b.json").read_text())["results"]
    methods = {r["method"] for r in res}
    assert {"reference", "bm3d", "opencv_nlm", "skimage_nlm", "skimage_wavelet", "default"} <= methods
    for r in res:
        assert {"method", "backend", "sigma", "psnr", "mp_per_s", "speedup"} <= set(r)
        assert r["mp_per_s"] > 0 and r["speedup"] > 0
    ref = next(r for r in res if r["method"] == "reference")
    assert ref["speedup"] == pytest.approx(1.0) and ref["weights"] == "untrained"  # no official weights there
    assert "reference (untrained: speed only)" in (tmp_path / "b.md").read_text()
    assert (tmp_path / "b.png").stat().st_size > 1000 and "| 25 |" in (tmp_path / "b.md").read_text()


def test_benchmark_rejects_bad_arguments_before_running(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "ds").mkdir()
    Image.fromarray((smooth_image(40, 36) * 255).astype(np.uint8)).save(tmp_path / "ds" / "0.png")
    base = ["benchmark", "--dataset", str(tmp_path / "ds"), "--sigma", "25", "--methods", "default"]
    assert main([*base, "--backend", "folded,turbo"]) == 2
    assert "unknown backend(s) turbo" in capsys.readouterr().err
    assert main([*base, "--json", str(tmp_path / "missing" / "b.json")]) == 2
    assert "its folder does not exist" in capsys.readouterr().err


def test_onnx_export_and_backend_parity(tmp_path: Path, camera: np.ndarray) -> None:
    pytest.importorskip("onnxruntime")
    noisy_img = add_noise_numpy(camera[:75, :61], 25, seed=0)  # odd size: padding outside the graph
    Image.fromarray(np.round(np.clip(noisy_img, 0, 1) * 255).astype(np.uint8)).save(tmp_path / "n.png")
    assert main(["export", "--format", "onnx", "--model", "default", "-o", str(tmp_path / "d.onnx")]) == 0
    assert (tmp_path / "d.onnx").stat().st_size > 1_000_000 and (tmp_path / "d.json").exists()
    for backend in ("eager", "onnxruntime"):
        assert main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / f"{backend}.png"),
                     "--backend", backend]) == 0
    from deepdenoise.inference.api import denoise

    a = denoise(noisy_img, model="default", backend="folded")
    b = denoise(noisy_img, model="default", backend="onnxruntime")
    assert np.abs(a - b).max() < 1e-3
    assert abs(psnr(a, camera[:75, :61]) - psnr(b, camera[:75, :61])) <= 0.02


@pytest.mark.parametrize("name", ["dncnn_tiny", "unet_tiny"])
def test_onnx_backend_with_pixel_unshuffle(name: str) -> None:
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_model(name, unshuffle=2).eval()
    x = torch.rand(1, 1, 37, 31)  # odd size: padded outside the graph to the size multiple
    fn, used = make_forward(model, "onnxruntime")
    assert used == "onnxruntime"
    assert (fn(x) - model(x)).abs().max() < 1e-4


def test_onnx_noise_map_model_takes_sigma() -> None:
    """Noise-map models export with a map input [B, M, H, W]; the graph follows a number, a
    per-pixel map and a noise-level function as eager does, on every backend."""
    pytest.importorskip("onnxruntime")
    from deepdenoise.inference.levels import sigma_input
    from deepdenoise.noise.level import NoiseLevel

    torch.manual_seed(0)
    model = create_model("unet_tiny_rgb", unshuffle=2, noise_map=True, map_channels=3).eval()
    with torch.no_grad():
        model.head.weight[:, -3:] += 0.5  # an untrained map weight is ~0: make the map matter
    x = torch.rand(1, 3, 37, 31)
    nlf = NoiseLevel(((5.0, 20.0, 40.0), (3.0, 10.0, 30.0), (8.0, 25.0, 50.0)), (0.3, 0.4, 0.3))
    for backend in ("folded", "onnxruntime"):
        for sigma in (5.0, 40.0, nlf):
            fn, _ = make_forward(model, backend, sigma)
            want = model(x, sigma_input(model, x, sigma))
            assert (fn(x) - want).abs().max() < 1e-4
            assert (fn(x, 15.0) - model(x, 15.0)).abs().max() < 1e-4  # the level is the call's
        assert (make_forward(model, backend, 5.0)[0](x) - model(x, 40.0)).abs().max() > 1e-3
        with pytest.raises((DeepDenoiseError, ValueError), match="noise level"):
            make_forward(model, backend, None)[0](x)
