import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdenoise.errors import DeepDenoiseError
from deepdenoise.models import create_model
from deepdenoise.training.config import TrainConfig
from deepdenoise.training.trainer import adapt_state, train
from deepdenoise.weights.format import load_weights


def make_patches(folder: Path, n_train: int = 96, n_test: int = 32) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16]
    for name, n in (("train", n_train), ("test", n_test)):
        phases = rng.uniform(0, 6, size=(n, 1, 1))
        arr = 128 + 80 * np.sin(xx / 3 + phases) * np.cos(yy / 4)
        np.save(folder / f"{name}.npy", arr.astype(np.uint8))


def tiny_config(tmp_path: Path, out: str, epochs: int) -> TrainConfig:
    return TrainConfig(model="dncnn_tiny", data=str(tmp_path / "patches"), batch_size=16, epochs=epochs,
                       out=str(tmp_path / out), amp=False, device="cpu")


def test_train_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    make_patches(tmp_path / "patches")
    full = train(tiny_config(tmp_path, "full", 2), progress=False)
    assert full["steps"] == 12
    train(tiny_config(tmp_path, "split", 1), progress=False)
    train(tiny_config(tmp_path, "split", 2), resume=True, progress=False)
    from safetensors.torch import load_file

    ck_full = load_file(str(next((tmp_path / "full").glob("checkpoint-*.safetensors"))))
    ck_split = load_file(str(next((tmp_path / "split").glob("checkpoint-*.safetensors"))))
    for k in ck_full:
        assert torch.allclose(ck_full[k].float(), ck_split[k].float(), atol=1e-6), k
    with open(tmp_path / "split" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1.000", "2.000"]
    assert float(rows[1]["val_psnr"]) > float(rows[0]["val_psnr"])  # it learns
    assert (tmp_path / "split" / "config.yaml").exists()
    model, meta = load_weights(tmp_path / "split" / "best.safetensors")
    assert meta["training"]["steps"] in (6, 12)
    assert len(list((tmp_path / "split").glob("checkpoint-*.safetensors"))) == 1  # the newest
    assert len(list((tmp_path / "split").glob("previous-*.safetensors"))) == 1  # its fallback


def test_blind_training_on_image_crops(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for i in range(3):
        arr = (np.random.default_rng(i).random((50, 45, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / "imgs" / f"{i}.png")
    make_patches(tmp_path / "patches")
    cfg = TrainConfig(model="unet_tiny", data=str(tmp_path / "patches"), data_mode="images",
                      image_dirs=[str(tmp_path / "imgs")], patch_size=24, batch_size=4, sigma=0, sigma_max=75,
                      epochs=2, steps_per_epoch=3, lr_schedule="cosine", loss="l1", out=str(tmp_path / "run"),
                      device="cpu")
    summary = train(cfg, progress=False)
    assert summary["steps"] == 6


def test_init_from_grows_a_noise_map_and_drops_blocks(tmp_path: Path) -> None:
    """A blind model's weights seed a noise-map model with fewer blocks: with the new input's
    weights at zero and the same blocks, the seeded model computes exactly what the blind one did."""
    torch.manual_seed(0)
    blind = create_model("unet_tiny", blocks=2).eval()
    x = torch.rand(2, 1, 37, 31)
    grown = create_model("unet_tiny", blocks=2, noise_map=True).eval()
    state, fresh = adapt_state(blind.state_dict(), grown.state_dict())
    grown.load_state_dict(state)
    assert fresh == 0 and torch.equal(grown(x, 30.0), blind(x))
    lean = create_model("unet_tiny", blocks=(1, 2), noise_map=True)
    state, fresh = adapt_state(blind.state_dict(), lean.state_dict())
    assert fresh == 0 and set(state) == set(lean.state_dict())
    deep = create_model("unet_tiny", blocks=(2, 4)).eval()  # two new blocks at the coarse level
    state, fresh = adapt_state(blind.state_dict(), deep.state_dict())
    deep.load_state_dict(state)
    assert fresh == 4 and torch.allclose(deep(x), blind(x), atol=1e-6)
    with pytest.raises(DeepDenoiseError, match="shape"):
        adapt_state(blind.state_dict(), create_model("unet_tiny", features=(8, 32)).state_dict())
    from deepdenoise.weights.format import save_weights

    save_weights(blind, tmp_path / "blind")
    make_patches(tmp_path / "patches")
    cfg = TrainConfig(model="unet_tiny", model_overrides={"blocks": [1, 2], "noise_map": True},
                      data=str(tmp_path / "patches"), batch_size=16, sigma=0, sigma_max=50, epochs=1,
                      steps_per_epoch=2, out=str(tmp_path / "run"), amp=False, device="cpu",
                      init_from=str(tmp_path / "blind.safetensors"))
    assert train(cfg, progress=False)["steps"] == 2
    model, _ = load_weights(tmp_path / "run" / "best.safetensors")
    assert model.config.blocks == (1, 2) and model.config.noise_map


def test_grad_clip_bounds_the_update(tmp_path: Path) -> None:
    """grad_clip scales the gradients before Adam: clipped to 1e-12 (far under Adam's eps) the
    weights hardly move in an epoch; unclipped they do."""
    from deepdenoise.weights.format import save_weights

    make_patches(tmp_path / "patches")
    torch.manual_seed(0)
    start = create_model("dncnn_tiny")
    save_weights(start, tmp_path / "start")
    moved = {}
    for clip in (None, 1e-12):
        cfg = tiny_config(tmp_path, f"clip{clip}", 1)
        cfg.init_from, cfg.grad_clip = str(tmp_path / "start.safetensors"), clip
        train(cfg, progress=False)
        model, _ = load_weights(tmp_path / f"clip{clip}" / "best.safetensors")
        moved[clip] = max(float((p - dict(start.named_parameters())[k]).abs().max())
                          for k, p in model.named_parameters())
    assert moved[1e-12] < 1e-5 < 1e-4 < moved[None]


def test_refuses_to_clobber_a_run(tmp_path: Path) -> None:
    make_patches(tmp_path / "patches")
    train(tiny_config(tmp_path, "r", 1), progress=False)
    with pytest.raises(DeepDenoiseError, match="--resume"):
        train(tiny_config(tmp_path, "r", 1), progress=False)


@pytest.mark.parametrize("model,overrides,message", [
    ("nosuch", "{}", "unknown model preset 'nosuch'"),
    ("dncnn_tiny", "{bogus: 1}", "unknown config key(s) bogus"),
    ("unet_tiny", "{blocks: [1]}", "one count per level"),
])
def test_bad_model_config_is_one_line_and_leaves_no_run(tmp_path: Path, model: str, overrides: str,
                                                       message: str) -> None:
    make_patches(tmp_path / "patches")
    (tmp_path / "cfg.yaml").write_text(f"model: {model}\nmodel_overrides: {overrides}\n"
                                       f"data: {tmp_path / 'patches'}\nout: {tmp_path / 'r'}\n")
    r = subprocess.run([sys.executable, "-m", "deepdenoise", "train", "--config", str(tmp_path / "cfg.yaml")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 5 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"deepdenoise: error: {r.stderr.split('error: ')[1].strip()}"]
    assert message in r.stderr and not (tmp_path / "r").exists()


def test_without_validation_data_the_best_weights_follow_the_loss(tmp_path: Path) -> None:
    make_patches(tmp_path / "patches")
    (tmp_path / "patches" / "test.npy").unlink()
    summary = train(tiny_config(tmp_path, "r", 2), progress=False)
    assert summary["best_val_psnr"] is None  # no validation: the best weights follow the loss
    _, meta = load_weights(tmp_path / "r" / "best.safetensors")
    assert meta["training"]["val_psnr"] is None and meta["training"]["steps"] == summary["steps"]
    rows = list(csv.DictReader(open(tmp_path / "r" / "log.csv")))
    assert len(rows) == 2 and all(r["val_psnr"] == "" and float(r["loss"]) > 0 for r in rows)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_then_resume_finishes(tmp_path: Path, sig: int) -> None:
    """Ctrl-C (or a session's SIGTERM) mid-run: the step in flight finishes, a checkpoint is written at
    that step, the exit is 130 with a one-line hint, and --resume takes the run to the end."""
    make_patches(tmp_path / "patches")
    (tmp_path / "cfg.yaml").write_text(f"model: dncnn_tiny\ndata: {tmp_path / 'patches'}\nbatch_size: 16\n"
                                       f"epochs: 100000\nsteps_per_epoch: 3\nval_limit: 4\namp: false\n"
                                       f"device: cpu\nout: {tmp_path / 'r'}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "deepdenoise", "train", "--config", str(tmp_path / "cfg.yaml"),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (tmp_path / "r" / "checkpoint.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # running: past the first epoch's checkpoint
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err.strip().splitlines()[-1]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["interrupted"] and 0 < summary["steps"] < summary["total_steps"]
    ckpt = json.loads((tmp_path / "r" / "checkpoint.json").read_text())
    assert ckpt["step"] == summary["steps"]
    r = subprocess.run([sys.executable, "-m", "deepdenoise", "train", "--resume", str(tmp_path / "r"),
                        "--epochs", str(summary["steps"] // 3 + 2), "--quiet"], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"resumed {tmp_path / 'r'} at step {summary['steps']}" in r.stderr
    assert not json.loads(r.stdout.strip().splitlines()[-1])["interrupted"]


def test_precise_bn_on_finished_run(tmp_path: Path) -> None:
    make_patches(tmp_path / "patches")
    train(tiny_config(tmp_path, "r", 1), progress=False)
    cfg = tiny_config(tmp_path, "r", 1)
    cfg.precise_bn_batches = 4
    train(cfg, resume=True, progress=False)
    with open(tmp_path / "r" / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["lr"] == "precise-bn" and rows[-1]["val_psnr"]
    train(cfg, resume=True, progress=False)  # already calibrated: nothing more to do
    with open(tmp_path / "r" / "log.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)


def test_config_is_checked_when_made() -> None:
    from deepdenoise.errors import DeepDenoiseError

    for bad in ({"loss": "L1"}, {"lr_schedule": "cosin"}, {"lr": "fast"}, {"map_estimated": "x"}):
        with pytest.raises(DeepDenoiseError):
            TrainConfig(**bad)
