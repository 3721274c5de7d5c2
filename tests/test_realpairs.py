"""Real noisy/clean pairs: discovery, scoring, ``evaluate --pairs`` and ``benchmark --pairs``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, needs, smooth_image
from deepdenoise.cli import main
from deepdenoise.errors import InputError
from deepdenoise.evaluation.realpairs import find_pairs, load_pairs


def save(path: Path, arr: np.ndarray, fmt: str | None = None) -> None:
    Image.fromarray(np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(path, format=fmt)


def make_pairs(root: Path, n: int = 3, style: str = "polyu") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        clean = smooth_image(48, 40, channels=3, seed=i)
        noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * 0.04
        if style == "polyu":
            save(root / f"cam_{i}_mean.png", clean)
            save(root / f"cam_{i}_real.png", noisy)
        else:
            (root / "noisy").mkdir(exist_ok=True)
            (root / "clean").mkdir(exist_ok=True)
            save(root / "noisy" / f"{i}.png", noisy)
            save(root / "clean" / f"{i}.png", clean)
    return root


def test_pairs_are_found_by_name_or_folder(tmp_path: Path) -> None:
    polyu = make_pairs(tmp_path / "a")
    pairs = find_pairs(polyu)
    assert [p.noisy.name for p in pairs] == ["cam_0_real.png", "cam_1_real.png", "cam_2_real.png"]
    assert all(p.clean.name.endswith("_mean.png") for p in pairs)
    assert len(find_pairs(polyu, "cam_1_*")) == 1 and len(find_pairs(polyu, limit=2)) == 2
    assert len(find_pairs(make_pairs(tmp_path / "b", style="folders"))) == 3
    (tmp_path / "c").mkdir()
    save(tmp_path / "c" / "lonely_real.png", smooth_image(8, 8))
    with pytest.raises(InputError, match="no noisy/clean pairs"):
        find_pairs(tmp_path / "c")
    save(tmp_path / "c" / "lonely_mean.png", smooth_image(9, 8))
    with pytest.raises(InputError, match="differs"):
        load_pairs(tmp_path / "c")


def test_evaluate_and_benchmark_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_pairs(tmp_path / "pairs")
    assert main(["evaluate", "--pairs", str(root), "--model", "fast_color", "--json", str(tmp_path / "e.json")]) == 0
    rows = json.loads((tmp_path / "e.json").read_text())["results"]
    assert rows[0]["images"] == 3 and rows[0]["psnr"] > rows[0]["psnr_noisy"]
    out = tmp_path / "r.json"
    assert main(["benchmark", "--pairs", str(root), "--methods", "noisy,default,opencv_nlm,fast_color",
                 "--json", str(out), "--markdown", str(tmp_path / "r.md")]) == 0
    res = json.loads(out.read_text())["results"]
    assert [r["method"] for r in res] == ["noisy", "default", "opencv_nlm", "fast_color"]
    for r in res:
        assert {"method", "psnr", "ssim", "mp_per_s", "settings"} <= set(r) and r["mp_per_s"] > 0
    nlm = res[2]
    assert nlm["oracle"] and nlm["psnr"] == pytest.approx(max(nlm["sweep"].values()), abs=1e-3)
    assert res[1]["psnr"] > res[0]["psnr"] + 1
    assert "| default |" in (tmp_path / "r.md").read_text()
    assert main(["benchmark", "--pairs", str(root), "--methods", "noisy,opencv_nlm,fast_color", "--reuse", str(out),
                 "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())["results"]
    assert all(r["reused"] for r in again) and again[1]["psnr"] == nlm["psnr"]
    other = make_pairs(tmp_path / "other", n=2)
    assert main(["benchmark", "--pairs", str(other), "--reuse", str(out), "--methods", "noisy"]) == 3
    assert main(["benchmark", "--pairs", str(root), "--methods", "noisy,nonsense"]) == 2
    assert main(["evaluate", "--pairs", str(tmp_path / "missing"), "--model", "fast"]) == 3


@needs(DATA / "PolyU-Canon")
def test_polyu_pairs_are_all_found() -> None:
    assert len(find_pairs(DATA / "PolyU-Canon")) == 55
