"""Folders on Ray: the outputs are the local path's, byte for byte, even when a worker is killed
mid-way; a second run has nothing left to do; partial files of killed writers are removed."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepdenoise.pipeline.files import DenoiseOptions, denoise_folder

ray = pytest.importorskip("ray")


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for k in range(n):
        rng = np.random.default_rng(k)
        img = np.clip(rng.normal(0.5, 0.15, (160, 200, 3)), 0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"{k:02d}.png")


def _worker_pids() -> list[int]:
    """The model-holding Ray workers (their process title names the map actor)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"MapWorker" in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return sorted(pids)


def test_partial_files_of_killed_writers_are_removed(tmp_path: Path) -> None:
    from deepdenoise.pipeline.ray_engine import remove_partials

    out = tmp_path / "out"
    out.mkdir()
    (out / ".03.png.ab12cd").write_bytes(b"half a file")
    (out / "keep.png").write_bytes(b"x")
    assert remove_partials([(tmp_path / "03.png", out / "03.png")]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["keep.png"]


@pytest.mark.slow
def test_ray_outputs_equal_local_even_with_a_worker_killed(tmp_path: Path) -> None:
    from deepdenoise.pipeline.ray_engine import denoise_folder_ray

    src = tmp_path / "in"
    _images(src, 20)
    opts = DenoiseOptions(model="fast", device="cpu")
    assert denoise_folder(src, tmp_path / "local", opts, progress=False)[0] == 20
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        killed: list[int] = []

        def kill_one_worker() -> None:  # once the first outputs appear, SIGKILL one model-holding worker
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                if len(list((tmp_path / "ray").glob("*.png"))) >= 3:
                    pids = _worker_pids()
                    if pids:
                        os.kill(pids[0], signal.SIGKILL)
                        killed.append(pids[0])
                time.sleep(0.2)

        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        done, failures, _ = denoise_folder_ray(src, tmp_path / "ray", opts, workers=2)
        killer.join()
        assert killed, "no worker was killed"
        assert failures == []
        for k in range(20):
            name = f"{k:02d}.png"
            assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
        assert not [p for p in (tmp_path / "ray").iterdir() if p.name.startswith(".")]
        again = denoise_folder_ray(src, tmp_path / "ray", opts, workers=2)
        assert again[0] == 0 and any("20 outputs already there" in s for s in again[2])
    finally:
        ray.shutdown()
