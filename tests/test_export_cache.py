"""The disk cache of exported ONNX graphs: reused across sessions, keyed by the weights, robust to
damage, and off when asked."""

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from deepdenoise.inference import onnx as export
from deepdenoise.models import create_model


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEEPDENOISE_CACHE", str(tmp_path / "c"))
    monkeypatch.setattr(export, "_SESSIONS", OrderedDict())
    return tmp_path / "c" / "onnx"


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("unet_tiny").eval()


def test_second_session_reads_the_graph_from_disk(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny()
    x = torch.rand(1, 1, 37, 31)  # [1, 1, H, W]
    first = export.onnx_forward(model)(x)
    assert len(list(cache.glob("*.onnx"))) == 1
    monkeypatch.setattr(export, "_SESSIONS", OrderedDict())  # a new process, as far as sessions go

    def no_export(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("exported again instead of reading the cache")

    monkeypatch.setattr(export, "onnx_bytes", no_export)
    assert torch.equal(export.onnx_forward(model)(x), first)


def test_new_weights_get_a_new_graph(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny()
    x = torch.rand(1, 1, 37, 31)  # [1, 1, H, W]
    before = export.onnx_forward(model)(x)
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    assert export.graph_key(tiny(), False) != export.graph_key(model, False)
    assert export.graph_key(tiny(), False) == export.graph_key(tiny(), False)
    monkeypatch.setattr(export, "_SESSIONS", OrderedDict())  # sessions are per model object; a new process
    after = export.onnx_forward(model)(x)
    assert len(list(cache.glob("*.onnx"))) == 2
    assert not torch.allclose(before, after)
    assert torch.allclose(after, model(x), atol=1e-4)


def test_damaged_cache_file_is_exported_afresh(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny()
    x = torch.rand(1, 1, 37, 31)  # [1, 1, H, W]
    export.onnx_forward(model)(x)
    (path,) = cache.glob("*.onnx")
    path.write_bytes(b"not a graph")
    monkeypatch.setattr(export, "_SESSIONS", OrderedDict())
    assert torch.allclose(export.onnx_forward(model)(x), model(x), atol=1e-4)
    assert path.read_bytes()[:11] != b"not a graph"  # repaired


def test_cache_off_and_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny()
    x = torch.rand(1, 1, 37, 31)  # [1, 1, H, W]
    monkeypatch.setattr(export, "_SESSIONS", OrderedDict())
    monkeypatch.setenv("DEEPDENOISE_CACHE", "off")
    assert export.cache_dir() is None
    assert torch.allclose(export.onnx_forward(model)(x), model(x), atol=1e-4)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("DEEPDENOISE_CACHE", str(blocker))
    monkeypatch.setattr(export, "_SESSIONS", OrderedDict())
    assert torch.allclose(export.onnx_forward(model)(x), model(x), atol=1e-4)
