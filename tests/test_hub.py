import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import REFERENCE, needs
from deepdenoise.errors import ModelError
from deepdenoise.models import create_model
from deepdenoise.weights.format import load_weights, save_weights
from deepdenoise.weights.matconvnet import load_matconvnet
from deepdenoise.weights.shipped import load_model, shipped_models


def test_roundtrip_fp32_and_fp16(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("dncnn_tiny").eval()
    x = torch.rand(1, 1, 37, 31)
    save_weights(model, tmp_path / "m", {"training": {"epochs": 1}})
    loaded, meta = load_weights(tmp_path / "m.safetensors")
    assert meta["architecture"] == "dncnn" and meta["format_version"] == 1
    assert meta["training"]["epochs"] == 1
    assert torch.equal(loaded(x), model(x))
    save_weights(model, tmp_path / "h", half=True)
    half, _ = load_weights(tmp_path / "h.safetensors")
    assert torch.allclose(half(x), model(x), atol=1e-2)
    assert (tmp_path / "m.safetensors").read_bytes()[:1] != b"\x80"  # not a pickle


def test_missing_or_corrupt_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        load_model("no_such_model")
    save_weights(create_model("dncnn_tiny"), tmp_path / "m")
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="corrupt"):
        load_weights(tmp_path / "m.safetensors")
    (tmp_path / "m.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ModelError, match="newer"):
        load_weights(tmp_path / "m.safetensors")


def _write_fake_mat(path: Path, convs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """A MatConvNet-like v7.3 file: net/layers is a column of refs to structs (conv, relu, ...)."""
    with h5py.File(path, "w") as f:
        refs = []
        grp = f.create_group("#refs#")
        k = 0
        for i, (w, b) in enumerate(convs):
            for kind in (["conv", "relu"] if i < len(convs) - 1 else ["conv"]):
                g = grp.create_group(f"layer{k}")
                g["type"] = np.array([[ord(c)] for c in kind], dtype=np.uint16)
                if kind == "conv":
                    # HDF5 order (out, in, W, H); MATLAB drops a trailing singleton 'out' axis
                    wt = np.swapaxes(w, 2, 3)
                    wt = wt[0] if wt.shape[0] == 1 else wt
                    wd = grp.create_dataset(f"w{k}", data=wt)
                    bd = grp.create_dataset(f"b{k}", data=b[None, :])
                    g.create_dataset("weights", data=np.array([[wd.ref], [bd.ref]], dtype=h5py.ref_dtype))
                refs.append(g.ref)
                k += 1
        f.create_group("net").create_dataset("layers", data=np.array([[r] for r in refs], dtype=h5py.ref_dtype))


def test_load_matconvnet_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shapes = [(8, 1), (8, 8), (1, 8)]
    convs = [(rng.normal(size=(o, i, 3, 3)).astype(np.float32), rng.normal(size=o).astype(np.float32))
             for o, i in shapes]
    _write_fake_mat(tmp_path / "tiny.mat", convs)
    model, meta = load_matconvnet(tmp_path / "tiny.mat")
    assert meta["config"]["depth"] == 3 and meta["config"]["batch_norm"] is False
    got = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    for m, (w, b) in zip(got, convs):
        assert np.allclose(m.weight.detach().numpy(), w) and np.allclose(m.bias.detach().numpy(), b)


@needs(REFERENCE / "sigma=25.mat")
def test_official_weights_load_and_denoise(camera: np.ndarray) -> None:
    from deepdenoise.inference.api import denoise
    from deepdenoise.metrics import psnr
    from deepdenoise.noise import add_noise_numpy

    model, meta = load_model(str(REFERENCE / "sigma=25.mat"))
    assert meta["config"]["depth"] == 17
    noisy = add_noise_numpy(camera, 25, seed=0)
    assert psnr(denoise(noisy, model=model), camera) > psnr(noisy, camera) + 8


def test_shipped_models_have_provenance() -> None:
    shipped = shipped_models()
    assert {"dncnn_s_sigma25", "default", "default_color"} <= set(shipped)
    for path in shipped.values():
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["dtype"] == "float16"
        assert "deepdenoise train --config configs/" in meta["training"]["command"]
        assert meta["training"]["steps"] > 0
