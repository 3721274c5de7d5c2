"""PSNR-gain floors and golden outputs for the weights that ship in the package."""

import json
from pathlib import Path

import numpy as np
import pytest

from deepdenoise.inference.api import denoise, denoise_with_info
from deepdenoise.metrics import psnr
from deepdenoise.noise import add_noise_numpy
from deepdenoise.noise.impulse import salt_and_pepper

GOLDEN = Path(__file__).with_name("golden.json")
FLOORS = {  # minimum PSNR gain (dB) over the noisy input on the test crops
    ("dncnn_s_sigma25", 25): 7.0,
    ("default", 15): 5.0, ("default", 25): 7.0, ("default", 50): 9.0,
    ("fast", 15): 5.5, ("fast", 25): 7.5, ("fast", 50): 10.0,
}


@pytest.mark.parametrize("name,sigma", sorted(FLOORS))
def test_gray_gain_floor(camera: np.ndarray, name: str, sigma: float) -> None:
    noisy = add_noise_numpy(camera, sigma, seed=0)
    gain = psnr(denoise(noisy, sigma=sigma, model=name), camera) - psnr(noisy, camera)
    assert gain >= FLOORS[(name, sigma)]


COLOR_FLOORS = {  # the same on the astronaut crop, blind (sigma estimated)
    ("default_color", 15): 4.0, ("default_color", 25): 6.0, ("default_color", 50): 8.0,
    ("fast_color", 15): 7.0, ("fast_color", 25): 9.0, ("fast_color", 50): 11.0,
}


@pytest.mark.parametrize("name,sigma", sorted(COLOR_FLOORS))
def test_color_gain_floor(astronaut: np.ndarray, name: str, sigma: float) -> None:
    noisy = add_noise_numpy(astronaut, sigma, seed=0)
    gain = psnr(denoise(noisy, model=name), astronaut) - psnr(noisy, astronaut)
    assert gain >= COLOR_FLOORS[(name, sigma)]


IMPULSE_FLOORS = {("salt_and_pepper", 0.3): 20.0, ("salt_and_pepper", 0.5): 19.0, ("bit_errors", 0.01): 5.0}


@pytest.mark.parametrize("kind,level", sorted(IMPULSE_FLOORS))
def test_impulse_gain_floor(camera: np.ndarray, kind: str, level: float) -> None:
    """The network trained for impulses, named without --noise (it names the noise itself)."""
    from deepdenoise.noise import impulse

    noisy, _ = getattr(impulse, kind)(camera, level, seed=0)
    res = denoise_with_info(noisy, model="impulse")
    assert res.extra["restoration"] == "mask model"
    assert psnr(res.image, camera) - psnr(noisy, camera) >= IMPULSE_FLOORS[(kind, level)]


CAMERA_FLOORS = {  # PSNR gain (dB) on the astronaut crop with simulated camera noise, blind
    ("fast_color_real", "direct"): 7.0, ("fast_color", "pd"): 5.0,  # fast_color directly: 4.4
}


@pytest.mark.parametrize("name,how", sorted(CAMERA_FLOORS))
def test_camera_noise_gain_floor(astronaut: np.ndarray, name: str, how: str) -> None:
    """The camera-noise model, and PD with a white-noise model, on demosaiced sensor noise."""
    import torch

    from deepdenoise.noise.camera import CameraNoise, simulate_camera

    y, ref = simulate_camera(torch.from_numpy(astronaut).permute(2, 0, 1)[None], CameraNoise(0.04, 0.01), seed=0)
    noisy, target = y[0].permute(1, 2, 0).numpy(), ref[0].permute(1, 2, 0).numpy()
    out = denoise(noisy, model=name, noise="real" if how == "pd" else "gaussian")
    assert psnr(out, target) - psnr(noisy, target) >= CAMERA_FLOORS[(name, how)]


def golden_values(camera: np.ndarray, astronaut: np.ndarray) -> dict[str, list[float]]:
    from deepdenoise.weights.shipped import shipped_models

    out = {}
    for names, image in ((("dncnn_s_sigma25", "default", "fast"), camera),
                         (("default_color", "fast_color", "fast_color_real", "camera"), astronaut)):
        noisy = add_noise_numpy(image[:64, :64], 25, seed=0)
        for name in (n for n in names if n in shipped_models()):
            res = denoise(noisy, sigma=25, model=name, backend="folded")  # the fp32 network
            pixels = np.concatenate([np.atleast_1d(res[10, 10]), np.atleast_1d(res[40, 50])])
            out[name] = [float(res.mean()), float(res.std()), *map(float, pixels)]
    for name, image in (("impulse", camera), ("impulse_color", astronaut)):  # mask models: salt-and-pepper
        if name in shipped_models():
            noisy, _ = salt_and_pepper(image[:64, :64], 0.3, seed=0)
            res = denoise(noisy, model=name, noise="impulse", density=0.3, backend="folded")
            pixels = np.concatenate([np.atleast_1d(res[10, 10]), np.atleast_1d(res[40, 50])])
            out[name] = [float(res.mean()), float(res.std()), *map(float, pixels)]
    return out


def test_golden_outputs(camera: np.ndarray, astronaut: np.ndarray) -> None:
    """Shipped weights + inference code give the recorded outputs (catches silent changes); every
    shipped model has a record. After shipping new weights: ``python tests/test_shipped.py``."""
    from deepdenoise.weights.shipped import shipped_models

    expected = json.loads(GOLDEN.read_text())
    assert set(expected) == set(shipped_models())
    got = golden_values(camera, astronaut)
    for name, vals in expected.items():
        assert np.allclose(got[name], vals, atol=2e-4), name


def test_clean_image_comes_out_unchanged(camera: np.ndarray, astronaut: np.ndarray) -> None:
    """With no noise added, the white-noise models leave an image within 40 dB of the input. The
    astronaut crop is a JPEG photo whose grain the estimate reads as a camera's (level 4.8,
    correlated), so the default sends it to the camera model, which smooths it more (35.3 dB)."""
    assert psnr(denoise(camera), camera) >= 40
    assert psnr(denoise(astronaut, model="default_color"), astronaut) >= 40
    res = denoise_with_info(astronaut)
    out, info = res.image, res.info
    assert info["model"] == "camera" and psnr(out, astronaut) >= 34


def test_tiled_equals_untiled_on_600x400() -> None:
    """The tiling margin covers the shipped U-Net's receptive field: tiles change nothing."""
    from skimage import data

    from deepdenoise.inference.tiling import apply_model
    from deepdenoise.weights.shipped import load_model

    img = data.astronaut()[:400, :512].astype(np.float32) / 255.0
    img = np.concatenate([img, img[:, :88]], axis=1)  # [400, 600, 3]
    noisy = add_noise_numpy(img, 25, seed=0)
    model, _ = load_model("default_color")
    whole = apply_model(model, noisy, tile=None)  # a noise-map model: the estimated level, tile by tile
    tiled = apply_model(model, noisy, tile=160)
    assert np.abs(whole - tiled).max() < 1e-3


DEFAULTS = ("default", "default_color", "fast", "fast_color", "camera")


@pytest.mark.parametrize("name", DEFAULTS)
def test_shipped_defaults_follow_the_noise_level(tmp_path: Path, camera: np.ndarray, astronaut: np.ndarray,
                                                 name: str) -> None:
    """`denoise photo --sigma 5` and `--sigma 50` differ for every shipped default, and a level
    below the noise keeps grain: a blind model told a level below its estimate keeps the rest of
    the noise, a noise-map model removes what it is told."""
    from PIL import Image

    from deepdenoise.cli import main
    from deepdenoise.weights.shipped import load_model

    model, meta = load_model(name)
    color = bool(model.config.channels == 3)
    told_more = float(meta.get("training", {}).get("config", {}).get("map_over", 0.0)) > 0
    clean = astronaut[:96, :96] if color else camera[:96, :96]
    noisy = add_noise_numpy(clean, 25, seed=0)
    src = tmp_path / "photo.png"
    Image.fromarray(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(src)
    outs = []
    for sigma in ("5", "25", "50"):
        dst = tmp_path / f"s{sigma}.png"
        assert main(["denoise", str(src), "-o", str(dst), "--model", name, "--sigma", sigma]) == 0
        outs.append(np.asarray(Image.open(dst), dtype=np.float32) / 255)
    noisy_u8 = np.asarray(Image.open(src), dtype=np.float32) / 255
    def roughness(o: np.ndarray) -> float:  # total variation: what smoothing takes away
        return float(np.abs(np.diff(o, axis=0)).mean() + np.abs(np.diff(o, axis=1)).mean())

    rough = [roughness(o) for o in outs]
    assert not np.array_equal(outs[0], outs[2])  # the level changes the result
    assert roughness(noisy_u8) > rough[0] > max(rough[1], rough[2])  # a fifth of the level keeps grain
    if told_more:  # trained with patches told up to twice their noise: told more, it removes more
        removed = [float(np.sqrt(((o - noisy_u8) ** 2).mean())) for o in outs]
        assert removed[0] < removed[1] < removed[2]
    # (a model never told more than its noise is not smoother above it; a blind model there gives
    # its estimate's result)
    assert psnr(outs[1], clean) > psnr(outs[0], clean)  # the true level beats a fifth of it


if __name__ == "__main__":  # rewrite golden.json from the weights now shipped
    from conftest import astronaut_image, camera_image

    GOLDEN.write_text(json.dumps(golden_values(camera_image(), astronaut_image()), indent=2) + "\n")
    print(f"wrote {GOLDEN}")


def test_manifest_matches_every_shipped_file_and_a_changed_file_is_refused(tmp_path: Path) -> None:
    import shutil

    from deepdenoise.errors import ModelError
    from deepdenoise.weights.shipped import MANIFEST, WEIGHTS_DIR, read_manifest, shipped_models, verify_shipped

    manifest = read_manifest()["models"]
    assert sorted(manifest) == sorted(shipped_models())
    for name, path in shipped_models().items():
        verify_shipped(name, path)
        assert manifest[name]["command"] and manifest[name]["steps"]  # provenance recorded
    for f in ("fast.safetensors", "fast.json", MANIFEST):
        shutil.copy(WEIGHTS_DIR / f, tmp_path / f)
    verify_shipped("fast", tmp_path / "fast.safetensors")
    data = bytearray((tmp_path / "fast.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (tmp_path / "fast.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum"):
        verify_shipped("fast", tmp_path / "fast.safetensors")
