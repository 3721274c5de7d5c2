"""torchrun with 2 CPU processes (gloo) trains the same weights as one process with the same
global batch, and a run started distributed resumes in a single process."""

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_train import make_patches

CONFIG = """model: dncnn_tiny
model_overrides: {batch_norm: false}
data: patches
batch_size: 16
epochs: 2
amp: false
device: cpu
"""


def run(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-2000:]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(glob.glob(str(run_dir / "checkpoint-*.safetensors"))[0]).items()
            if k.startswith("model.")}


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_gloo_matches_single_process(tmp_path: Path) -> None:
    make_patches(tmp_path / "patches", n_train=64, n_test=16)
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    run([torchrun, "--nproc_per_node", "2", "-m", "deepdenoise", "train", "--config", "cfg.yaml",
         "--out", "ddp", "--quiet"], tmp_path)
    run([sys.executable, "-m", "deepdenoise", "train", "--config", "cfg.yaml", "--out", "single", "--quiet"], tmp_path)
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    # resume the 2-process run in one process for one more epoch: same as 3 epochs single-process
    run([sys.executable, "-m", "deepdenoise", "train", "--resume", "ddp", "--epochs", "3", "--quiet"], tmp_path)
    run([sys.executable, "-m", "deepdenoise", "train", "--resume", "single", "--epochs", "3", "--quiet"], tmp_path)
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun not installed")
def test_two_process_time_budget_stops_every_rank(tmp_path: Path) -> None:
    """Each rank times its own steps; the budget stop must still be taken by both on the same step
    (else one waits in all-reduce forever), and the run ends with a checkpoint at that step."""
    make_patches(tmp_path / "patches", n_train=64, n_test=16)
    (tmp_path / "cfg.yaml").write_text(CONFIG.replace("epochs: 2", "epochs: 1000") + "max_minutes: 0.005\n")
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    run([torchrun, "--nproc_per_node", "2", "-m", "deepdenoise", "train", "--config", "cfg.yaml",
         "--out", "ddp", "--quiet"], tmp_path)
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert 0 < summary["steps"] < summary["total_steps"]
    assert glob.glob(str(tmp_path / "ddp" / f"checkpoint-{summary['steps']:08d}.safetensors"))
