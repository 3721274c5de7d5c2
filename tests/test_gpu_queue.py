"""The GPU queue's whole flow on the CPU with a tiny model: data copied, big files stashed and
restored, every queued run trained, scored and packed into parts, the parts collected."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import ROOT, smooth_image

sys.path.insert(0, str(ROOT / "tools"))
import gpu_queue  # noqa: E402


def _fake_shared(root: Path) -> Path:
    data = root / "shared" / "data"
    for i, folder in enumerate(["BSDS500/train", "BSDS500/test", "BSDS500/val"]):
        (data / folder).mkdir(parents=True)
        for k in range(2):
            img = (smooth_image(321, 481, 3, seed=10 * i + k) * 255).astype(np.uint8)
            Image.fromarray(img).save(data / folder / f"{k}.jpg")
    return root / "shared"


def test_queue_flow_on_the_cpu(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "configs").mkdir(parents=True)
    (tree / "configs" / "tiny.yaml").write_text(
        "model: unet_tiny\ndata: data/patches\ndata_mode: images\nimage_dirs: [data/BSDS500/train]\n"
        "patch_size: 32\nbatch_size: 4\nsigma: 0.0\nsigma_max: 50.0\nepochs: 2\nsteps_per_epoch: 3\n"
        "val: data/patches/test_crops.npy\nval_limit: 2\nlr: 0.001\nloss: l1\ndevice: cpu\namp: false\n"
        "out: runs/gpu/tiny\n")
    queue = [("configs/tiny.yaml", 1.0), ("configs/none.yaml", 0.0)]
    big = tree / "runs" / "active" / "x" / "checkpoint-1.safetensors"
    big.parent.mkdir(parents=True)
    big.write_bytes(b"\0" * 600_000)
    assert gpu_queue.stash_large([("configs/tiny.yaml", 1.0)], tree) == ["runs/active/x/checkpoint-1.safetensors"]
    assert not big.exists()
    carry = tree / ".carry" / "gpu"
    gpu_queue.copy_data(_fake_shared(tmp_path), queue, carry)
    out = tmp_path / "OUT"
    gpu_queue.run(out, carry, device="cpu", root=tree)
    parts = sorted(out.glob("results.tar.*"))
    assert parts and all(p.stat().st_size <= gpu_queue.PART for p in parts)
    names = gpu_queue.collect(out, tmp_path / "back")
    assert "runs/gpu/tiny/best.safetensors" in names and not any("checkpoint" in n for n in names)
    scores = json.loads((tmp_path / "back" / "runs" / "gpu" / "tiny" / "eval.json").read_text())
    assert {r["sigma"] for r in scores["results"]} == {15.0, 25.0, 50.0}
    assert gpu_queue.restore(tree) == 1 and big.exists()
