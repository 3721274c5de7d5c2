"""Hostile and unlucky inputs: bad server options, tiny photon counts, HEAD requests, file modes
and temporary files left by interrupted writes."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from deepdenoise.cli import main


@pytest.mark.parametrize("args", [["--workers", "0"], ["--queue", "-5"], ["--port", "70000"],
                                  ["--max-pixels", "0"], ["--workers", "x"]])
def test_serve_rejects_bad_options_in_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "must be" in err


def test_outputs_honour_the_umask_and_keep_a_replaced_files_mode(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray((smooth_image(24, 20) * 255).astype(np.uint8)).save(src)
    old = os.umask(0o022)
    try:
        assert main(["denoise", str(src), "-o", str(tmp_path / "a.png"), "--model", "fast"]) == 0
        assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o644
        os.chmod(tmp_path / "a.png", 0o664)
        assert main(["denoise", str(src), "-o", str(tmp_path / "a.png"), "--model", "fast", "--overwrite"]) == 0
        assert stat.S_IMODE((tmp_path / "a.png").stat().st_mode) == 0o664
    finally:
        os.umask(old)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_interrupted_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepdenoise.io import images as dio

    img = dio.ImageData(pixels=smooth_image(16, 16), format="PNG", bit_depth=8)

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(dio, "_encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dio.write_image(tmp_path / "out.png", img)
    assert list(tmp_path.iterdir()) == []


def test_tiny_photon_counts_are_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from deepdenoise.web.app import ServeConfig, create_app

    client = TestClient(create_app(ServeConfig()))
    buf = io.BytesIO()
    Image.fromarray((smooth_image(24, 20) * 255).astype(np.uint8)).save(buf, format="PNG")
    for peak in ("1e-300", "1e-5", "0"):
        r = client.post("/api/denoise", files={"image": ("a.png", buf.getvalue())},
                        data={"noise": "poisson", "peak": peak})
        assert r.status_code == 422
    for path in ("/", "/healthz", "/api/models"):
        assert client.head(path).status_code == 200
    r = client.post("/api/denoise", files={"image": ("a.png", buf.getvalue())}, data={"sigma": "-0"})
    assert r.status_code == 200 and r.headers["x-sigma"] == "0.00"
    src = tmp_path / "a.png"
    src.write_bytes(buf.getvalue())
    with pytest.raises(SystemExit) as exc:
        main(["denoise", str(src), "-o", str(tmp_path / "b.png"), "--noise", "poisson", "--peak", "1e-300"])
    assert exc.value.code == 2
