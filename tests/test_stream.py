"""Gigapixel TIFFs stream band by band (the limit lifted) and give what a loaded image gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from deepdenoise.cli import main


def _noisy(h: int, w: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.3 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    img = base[..., None] * np.array([1.0, 0.8, 0.6])[:channels] if channels > 1 else base
    return np.clip(img + rng.normal(0, 0.08, img.shape), 0, 1)


@pytest.mark.parametrize("channels,bits,layout,model", [
    (3, 8, {"rowsperstrip": 37}, "fast_color"),  # strips of an odd height
    (1, 16, {"tile": (64, 48)}, "fast"),  # tiles that do not divide the image
])
def test_streamed_tiff_equals_the_loaded_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, channels: int,
                                                bits: int, layout: dict, model: str) -> None:
    import deepdenoise.pipeline.stream as stream

    peak = 255 if bits == 8 else 65535
    img = np.round(_noisy(1100, 530, channels) * peak).astype(np.uint8 if bits == 8 else np.uint16)
    tifffile.imwrite(tmp_path / "big.tif", img, compression="zlib", **layout)
    args = ["--model", model, "--tile", "256", "--sigma", "20"]  # a given level: the same for both paths
    assert main(["denoise", str(tmp_path / "big.tif"), "-o", str(tmp_path / "loaded.tif"), *args]) == 0
    calls = []
    real = stream.stream_denoise_tiff
    monkeypatch.setattr(stream, "STREAM_ABOVE", 1000)
    monkeypatch.setattr(stream, "stream_denoise_tiff", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(["denoise", str(tmp_path / "big.tif"), "-o", str(tmp_path / "streamed.tif"), *args,
                 "--max-pixels", "0"]) == 0
    assert calls, "the lifted limit did not stream"
    loaded, streamed = tifffile.imread(tmp_path / "loaded.tif"), tifffile.imread(tmp_path / "streamed.tif")
    assert streamed.dtype == loaded.dtype and streamed.shape == loaded.shape
    assert np.array_equal(streamed, loaded)
    # estimated: the streamed path measures the level on its first band, the loaded one on the whole
    args.remove("--sigma"), args.remove("20")
    assert main(["denoise", str(tmp_path / "big.tif"), "-o", str(tmp_path / "est_loaded.tif"), *args]) == 0
    assert main(["denoise", str(tmp_path / "big.tif"), "-o", str(tmp_path / "est_streamed.tif"), *args,
                 "--max-pixels", "0"]) == 0
    a = tifffile.imread(tmp_path / "est_loaded.tif").astype(np.float64)
    b = tifffile.imread(tmp_path / "est_streamed.tif").astype(np.float64)
    assert 10 * np.log10(peak**2 / max(np.mean((a - b) ** 2), 1e-12)) > 40  # close, not equal
