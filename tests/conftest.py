from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# the shared data beside the checkout; DEEPDENOISE_TEST_SHARED points elsewhere (a GPU machine's carried copy)
SHARED = Path(os.environ.get("DEEPDENOISE_TEST_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
DATA = SHARED / "data"
REFERENCE = SHARED / "reference-weights"


def needs(path: Path):  # type: ignore[no-untyped-def]
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present (shared data folder)")


def smooth_image(h: int, w: int, channels: int = 0, seed: int = 0) -> np.ndarray:
    """A natural-ish test image in [0, 1]: smooth gradients plus a few edges."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = 0.5 + 0.3 * np.sin(6 * xx + rng.uniform(0, 3)) * np.cos(4 * yy)
    base += 0.15 * ((xx > 0.4) & (yy < 0.6))
    img = np.clip(base, 0.05, 0.95).astype(np.float32)
    if channels:
        img = np.stack([np.clip(img * f, 0, 1) for f in (1.0, 0.8, 0.6)[:channels]], axis=-1)
    return img


@pytest.fixture
def camera() -> np.ndarray:
    return camera_image()


def camera_image() -> np.ndarray:
    from skimage import data

    return data.camera()[128:384, 128:384].astype(np.float32) / 255.0


@pytest.fixture
def astronaut() -> np.ndarray:
    return astronaut_image()


def astronaut_image() -> np.ndarray:
    from skimage import data

    return data.astronaut()[64:256, 128:320].astype(np.float32) / 255.0


@pytest.fixture(autouse=True, scope="session")
def _private_graph_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exported ONNX graphs go to a per-run cache (subprocesses inherit it), never the user's."""
    import os

    os.environ["DEEPDENOISE_CACHE"] = str(tmp_path_factory.mktemp("graph-cache"))
