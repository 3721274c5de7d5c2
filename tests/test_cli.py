import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, REFERENCE, needs, smooth_image
from deepdenoise.cli import main
from deepdenoise.io import read_image
from deepdenoise.metrics import psnr
from deepdenoise.noise import add_noise_numpy


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deepdenoise", *args], capture_output=True, text=True, timeout=300)


def save(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(path)


def test_denoise_file_improves_psnr_and_never_clobbers(tmp_path: Path, camera: np.ndarray,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    save(tmp_path / "noisy.png", add_noise_numpy(camera, 25, seed=0))
    before = (tmp_path / "noisy.png").read_bytes()
    assert main(["denoise", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "clean.png"), "--sigma", "25"]) == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "sigma=25.0 (given)" in line and " 0.07 MP in " in line  # 256 x 256 pixels, and how long
    out = read_image(tmp_path / "clean.png").pixels
    noisy = read_image(tmp_path / "noisy.png").pixels
    assert psnr(out, camera) > psnr(noisy, camera) + 6
    assert (tmp_path / "noisy.png").read_bytes() == before  # input untouched
    (tmp_path / "clean.png").write_bytes(b"keep me")
    assert main(["denoise", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "clean.png")]) == 4
    assert (tmp_path / "clean.png").read_bytes() == b"keep me"
    assert main(["denoise", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "clean.png"), "--overwrite"]) == 0
    assert (tmp_path / "clean.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.parametrize("content,code", [(b"hello, I am text\n", 3), (b"", 3), (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 3)])
def test_bad_input_one_line_no_traceback(tmp_path: Path, content: bytes, code: int) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    r = run_cli("denoise", str(bad), "-o", str(tmp_path / "out.png"))
    assert r.returncode == code
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("deepdenoise: error:")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("sigma", ["abc", "-1", "300"])
def test_bad_sigma(tmp_path: Path, sigma: str) -> None:
    save(tmp_path / "a.png", smooth_image(20, 20))
    r = run_cli("denoise", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), "--sigma", sigma)
    assert r.returncode == 2 and "sigma" in r.stderr and "Traceback" not in r.stderr


def test_missing_input_and_output_dir(tmp_path: Path) -> None:
    assert main(["denoise", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png")]) == 3
    save(tmp_path / "a.png", smooth_image(20, 20))
    assert main(["denoise", str(tmp_path / "a.png"), "-o", str(tmp_path / "no" / "o.png")]) == 4


def test_evaluate_json_schema(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    for i in range(2):
        save(tmp_path / "ds" / f"{i}.png", smooth_image(37, 31, seed=i))
    assert main(["evaluate", "--model", "dncnn_s_sigma25", "--dataset", str(tmp_path / "ds"),
                 "--sigma", "15", "25", "--json", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["sigma"] for r in res] == [15, 25]
    for r in res:
        assert {"dataset", "sigma", "psnr_noisy", "psnr_denoised", "ssim_denoised", "images"} <= set(r)
        assert r["images"] == 2 and r["psnr_denoised"] > r["psnr_noisy"]


def test_models_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dncnn_s_sigma25" in out and "default" in out


@pytest.mark.slow
@needs(REFERENCE / "sigma=25.mat")
@needs(DATA / "BSD68")
def test_reference_weights_reproduce_published_psnr(tmp_path: Path) -> None:
    assert main(["evaluate", "--model", str(REFERENCE / "sigma=25.mat"), "--dataset", str(DATA / "BSD68"),
                 "--sigma", "25", "--json", str(tmp_path / "r.json")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert abs(r["psnr_denoised"] - 29.24) <= 0.02


def test_command_line_starts_without_torch() -> None:
    """Parsing arguments, --help and usage errors never wait for torch or numpy to load."""
    import subprocess
    import sys

    code = ("import sys, deepdenoise.cli as c\n"
            "try:\n    c.build_parser().parse_args(['denoise', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
