"""int8 backend: calibration, the eager fake-quantized network, and onnxruntime running it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import smooth_image
from deepdenoise.cli import main
from deepdenoise.errors import ModelError
from deepdenoise.inference.backends import make_forward
from deepdenoise.inference.quant import ActFakeQuant, calibrate, fake_quant_model, quant_points
from deepdenoise.metrics import psnr
from deepdenoise.models import create_model
from deepdenoise.noise import add_noise_numpy
from deepdenoise.weights.format import load_weights, save_weights

Batch = tuple[torch.Tensor, torch.Tensor | None]


def noisy_batches(model: torch.nn.Module, n: int = 4, channels: int = 1) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    out = []
    for k in range(n):
        clean = torch.from_numpy(smooth_image(32, 32, channels, seed=k)).reshape(1, 32, 32, -1).permute(0, 3, 1, 2)
        sigma = torch.tensor([10.0 + 10 * k])  # [B]
        noisy = clean + torch.randn(clean.shape, generator=g) * sigma / 255  # [1, C, 32, 32]
        out.append((noisy, sigma if model.noise_input else None))
    return out


def tiny(noise_map: bool, channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    name = "unet_tiny" if channels == 1 else "unet_fast_rgb"
    return create_model(name, features=(8, 16, 32), blocks=(1, 2, 1), unshuffle=2, noise_map=noise_map).eval()


def test_quant_points_cover_the_coarse_levels_only() -> None:
    model = tiny(False)
    points = quant_points(model)
    assert "q_down.0" in points and "mid.0.q_out" in points and "enc.1.1.q_hidden" in points
    assert not any(p.startswith(("enc.0", "dec.1", "q_head")) for p in points)  # the finest level is fp32
    assert "q_up.1" not in points and "q_up.0" in points
    with pytest.raises(ModelError, match="U-Net"):
        quant_points(create_model("dncnn_tiny"))


@pytest.mark.parametrize("noise_map,channels", [(False, 1), (True, 1), (True, 3)])
def test_int8_close_to_fp32_and_onnxruntime_runs_the_eager_definition(noise_map: bool, channels: int) -> None:
    pytest.importorskip("onnxruntime")
    model = tiny(noise_map, channels)
    model.int8_calibration = calibrate(model, noisy_batches(model, channels=channels))
    fq = fake_quant_model(model, model.int8_calibration)
    assert sum(isinstance(m, ActFakeQuant) for m in fq.modules()) == len(quant_points(model))
    x = torch.from_numpy(smooth_image(37, 31, channels, seed=9)).reshape(1, 37, 31, -1).permute(0, 3, 1, 2)
    x = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))  # [1, C, 37, 31]
    sigma = 25.0 if noise_map else None
    with torch.inference_mode():
        ref, sim = model(x, sigma), fq(x, sigma)
    int8, used = make_forward(model, "int8", sigma)
    out = int8(x)
    assert used == "int8" and out.shape == x.shape
    assert 0 < (sim - ref).abs().max() < 0.05  # quantized, but close
    from deepdenoise.inference.backends import cpu_has_vnni

    if cpu_has_vnni():  # onnxruntime's int8 kernels compute the eager definition ...
        assert (out - sim).abs().max() < 2e-3
    else:  # ... where the CPU has 8-bit dot products; elsewhere uint8 x int8 pairs may saturate
        assert (out - sim).abs().max() < 0.05
    assert (out - ref).abs().mean() < 5e-3


def test_auto_backend_picks_int8_only_with_a_calibration_and_vnni(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepdenoise.inference import backends
    from deepdenoise.inference.api import denoise_with_info

    model = tiny(False)
    assert backends.resolve_backend(model, "auto") == "folded"  # no calibration
    model.int8_calibration = calibrate(model, noisy_batches(model))
    monkeypatch.setattr(backends, "cpu_has_vnni", lambda: False)
    assert backends.resolve_backend(model, "auto") == "folded"
    assert backends.resolve_backend(model, "eager") == "eager"
    monkeypatch.setattr(backends, "cpu_has_vnni", lambda: True)
    assert backends.resolve_backend(model, "auto") == "int8"
    img = smooth_image(37, 31, seed=3)
    res = denoise_with_info(img, model=model)
    out, info = res.image, res.info
    assert info["backend"] == "int8" and out.shape == img.shape


def test_no_calibration_is_a_clear_error() -> None:
    pytest.importorskip("onnxruntime")
    with pytest.raises(ModelError, match="calibrate"):
        make_forward(tiny(False), "int8")


def test_calibrate_command_then_denoise_with_int8(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    (tmp_path / "train").mkdir()
    for i in range(3):
        img = (smooth_image(140, 150, seed=i) * 255).astype(np.uint8)
        Image.fromarray(img).save(tmp_path / "train" / f"{i}.png")
    model = tiny(True)
    save_weights(model, tmp_path / "m", {"training": {"command": "test"}})
    out = tmp_path / "m_int8.safetensors"
    args = ["calibrate", "--model", str(tmp_path / "m.safetensors"), "--data", str(tmp_path / "train"),
            "-o", str(out), "--batches", "3"]
    assert main(args) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["training"] == {"command": "test"} and set(meta["int8"]["ranges"]) == set(quant_points(model))
    assert main(args) == 2  # refuses to overwrite
    loaded, _ = load_weights(out)
    assert torch.equal(loaded.head.weight, model.head.weight)  # the same weights, plus ranges
    clean = smooth_image(45, 39, seed=7)
    noisy = add_noise_numpy(clean, 20, seed=0)
    Image.fromarray(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(tmp_path / "n.png")
    assert main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"), "--model", str(out),
                 "--sigma", "20", "--backend", "int8"]) == 0
    assert main(["export", "--model", str(out), "--int8", "-o", str(tmp_path / "q.onnx")]) == 0
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    rc = main(["denoise", str(tmp_path / "n.png"), "-o", str(tmp_path / "p.png"), "--model",
               str(tmp_path / "m.safetensors"), "--sigma", "20", "--backend", "int8"])
    assert rc == 5 and not (tmp_path / "p.png").exists()  # no calibration: one-line error
    # the evaluation protocol on the int8 path: close to eager fp32 on the same noisy images
    (tmp_path / "ds").mkdir()
    for i in range(2):
        Image.fromarray((smooth_image(37, 31, seed=10 + i) * 255).astype(np.uint8)).save(tmp_path / "ds" / f"{i}.png")
    psnrs = {}
    for backend in ("eager", "int8"):
        assert main(["evaluate", "--model", str(out), "--dataset", str(tmp_path / "ds"), "--sigma", "20",
                     "--backend", backend, "--json", str(tmp_path / f"{backend}.json")]) == 0
        (r,) = json.loads((tmp_path / f"{backend}.json").read_text())["results"]
        assert r["backend"] == backend and r["images"] == 2
        psnrs[backend] = r["psnr_denoised"]
    assert psnrs["int8"] != psnrs["eager"] and abs(psnrs["int8"] - psnrs["eager"]) < 0.3
    assert main(["evaluate", "--model", str(tmp_path / "m.safetensors"), "--dataset", str(tmp_path / "ds"),
                 "--sigma", "20", "--backend", "int8"]) == 5  # no calibration


@pytest.mark.slow
def test_shipped_int8_parity_on_bsd68() -> None:
    """Every shipped calibration keeps PSNR within 0.02 dB of fp32 eager (two BSD68/CBSD68 images)."""
    pytest.importorskip("onnxruntime")
    from deepdenoise.inference.backends import cpu_has_vnni
    from deepdenoise.weights.shipped import load_model, shipped_models

    if not cpu_has_vnni():  # without 8-bit dot products uint8 x int8 pairs saturate; 'auto' never picks int8
        pytest.skip("int8 parity is defined on CPUs with VNNI (AVX-512 VNNI, AVX-VNNI or AMX)")
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (data / "BSD68").is_dir() or not (data / "CBSD68").is_dir():
        pytest.skip("needs ../shared/data/BSD68 and CBSD68")
    names = [n for n in shipped_models() if getattr(load_model(n)[0], "int8_calibration", None)]
    assert {"default", "default_color", "fast"} <= set(names)  # fast_color with its map: fp32 (see docs)
    for name in names:
        model, _ = load_model(name)
        color = model.config.channels == 3
        files = sorted((data / ("CBSD68" if color else "BSD68")).glob("*.png"))[:2]
        for sigma in (15.0, 50.0):
            eager, _ = make_forward(model, "eager", sigma)
            int8, _ = make_forward(model, "int8", sigma)
            for i, f in enumerate(files):
                clean = np.asarray(Image.open(f), dtype=np.float32) / 255.0
                x = torch.from_numpy(add_noise_numpy(clean, sigma, seed=i))  # [H, W] or [H, W, 3]
                x = x.permute(2, 0, 1)[None] if color else x[None, None]  # [1, C, H, W]
                a, b = eager(x)[0].numpy(), int8(x)[0].numpy()  # [C, H, W]
                ref = clean.transpose(2, 0, 1) if color else clean[None]
                assert abs(psnr(np.clip(a, 0, 1), ref) - psnr(np.clip(b, 0, 1), ref)) <= 0.02, (name, sigma)
