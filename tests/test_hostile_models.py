"""Crafted model files: every malformed one is a one-line error with exit 5 before anything large is
allocated, and a .mat that points outside itself is refused without following the link."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from deepdenoise.cli import main
from deepdenoise.models import create_model
from deepdenoise.weights.format import save_weights
from test_hub import _write_fake_mat


def _meta(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def apply(base: Path) -> None:
        meta = json.loads(base.with_suffix(".json").read_text())
        base.with_suffix(".json").write_text(json.dumps(edit(meta)))
    return apply


def _tensors(edit: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    def apply(base: Path) -> None:
        t = load_file(str(base))
        edit(t)
        save_file(t, str(base))
    return apply


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(meta: dict[str, Any]) -> Any:
        meta["config"][key] = value
        return meta
    return edit


def _first_weight_nan(t: dict[str, torch.Tensor]) -> None:
    k = next(k for k in t if k.endswith("weight"))
    t[k] = torch.full_like(t[k], float("nan"))


def _first_weight_reshaped(t: dict[str, torch.Tensor]) -> None:
    k = next(k for k in t if k.endswith("weight"))
    t[k] = torch.zeros(2, 2)


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "metadata is a list": (_meta(lambda m: [m]), "JSON object"),
    "no architecture": (_meta(lambda m: {k: v for k, v in m.items() if k != "architecture"}), "architecture"),
    "config null": (_meta(lambda m: {**m, "config": None}), "config"),
    "unknown architecture": (_meta(lambda m: {**m, "architecture": "transformer"}), "transformer"),
    "unknown config key": (_meta(_set("colour", 3)), "unknown config key"),
    "a million features": (_meta(_set("features", 1_000_000)), "outside"),
    "ten million layers": (_meta(lambda m: {**m, "architecture": "dncnn", "config": {
        "depth": 10_000_000, "channels": 1, "features": 64}}), "outside"),
    "huge but in range": (_meta(lambda m: {**m, "architecture": "dncnn", "config": {
        "depth": 200, "channels": 1, "features": 2048}}), "parameters"),
    "features as text": (_meta(_set("features", "64")), "integer"),
    "bool as number": (_meta(_set("noise_map", 3)), "true or false"),
    "shapes do not match": (_meta(_set("features", [16, 32])), "shape"),
    "nan weights": (_tensors(_first_weight_nan), "NaN"),
    "tensor reshaped": (_tensors(_first_weight_reshaped), "shape"),
    "missing tensor": (_tensors(lambda t: t.pop(next(iter(t)))), "missing"),
    "format_version text": (_meta(lambda m: {**m, "format_version": "1"}), "format_version"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_weight_files_exit_5_in_one_line(tmp_path: Path, case: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base = save_weights(create_model("unet_tiny"), tmp_path / "m")
    mutate, expected = CASES[case]
    mutate(base)
    Image.fromarray(np.full((31, 37), 128, np.uint8)).save(tmp_path / "a.png")
    code = main(["denoise", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--model", str(base)])
    err = capsys.readouterr().err
    assert code == 5 and expected in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_mat_with_an_external_link_is_refused_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["layers"] = np.zeros((1, 1))
    with h5py.File(tmp_path / "evil.mat", "w") as f:
        f.create_group("net")["layers"] = h5py.ExternalLink(str(secret), "/layers")
    Image.fromarray(np.full((31, 37), 128, np.uint8)).save(tmp_path / "a.png")
    code = main(["denoise", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--model",
                 str(tmp_path / "evil.mat")])
    assert code == 5 and "points outside itself" in capsys.readouterr().err


@pytest.mark.parametrize("shapes", [[(8, 1)], [(8, 1), (8, 4), (1, 8)], [(8, 1), (8, 8), (3, 8)]])
def test_mat_with_missing_or_odd_layers_is_refused(tmp_path: Path, shapes: list[tuple[int, int]],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    convs = [(rng.normal(size=(o, i, 3, 3)).astype(np.float32), rng.normal(size=o).astype(np.float32))
             for o, i in shapes]
    _write_fake_mat(tmp_path / "odd.mat", convs)
    Image.fromarray(np.full((31, 37), 128, np.uint8)).save(tmp_path / "a.png")
    assert main(["denoise", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--model",
                 str(tmp_path / "odd.mat")]) == 5
    assert "Traceback" not in capsys.readouterr().err


def test_mat_without_layers_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with h5py.File(tmp_path / "empty.mat", "w") as f:
        f["x"] = np.zeros(3)
    Image.fromarray(np.full((31, 37), 128, np.uint8)).save(tmp_path / "a.png")
    assert main(["denoise", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--model",
                 str(tmp_path / "empty.mat")]) == 5
    assert "not a MatConvNet DnCNN" in capsys.readouterr().err
