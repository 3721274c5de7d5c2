"""Real camera noise: the simulator (Bayer mosaic, demosaicing, tone curve, JPEG), pixel-shuffle
down-sampling (PD) and its refinement, PD tiling, and the 'real' noise kind through the API, CLI
and evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, smooth_image
from deepdenoise import denoise, denoise_with_info
from deepdenoise.cli import main
from deepdenoise.errors import InputError
from deepdenoise.inference.pd import pd_denoise
from deepdenoise.inference.tiling import apply_model
from deepdenoise.metrics import psnr
from deepdenoise.models import create_model
from deepdenoise.noise.camera import (
    CameraNoise,
    demosaic_bilinear,
    linear_to_srgb,
    simulate_camera,
    srgb_to_linear,
)


def as_batch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]  # [1, 3, H, W]


def test_tone_curve_and_demosaic() -> None:
    v = torch.linspace(0, 1, 101)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(v)), v, atol=1e-5, rtol=0)
    rgb = as_batch(smooth_image(37, 31, channels=3, seed=1))  # odd sizes: borders on every phase
    m = torch.zeros(3, 37, 31)
    m[0, 0::2, 0::2] = m[1, 0::2, 1::2] = m[1, 1::2, 0::2] = m[2, 1::2, 1::2] = 1
    raw = (rgb * m).sum(1, keepdim=True)  # [1, 1, 37, 31]
    dem = demosaic_bilinear(raw)
    torch.testing.assert_close(dem * m, rgb * m)  # measured samples are kept as they are
    assert (dem - rgb).abs().mean() < 0.02  # missing ones interpolated on a smooth image
    flat = demosaic_bilinear(torch.full((2, 1, 9, 8), 0.3))
    torch.testing.assert_close(flat, torch.full((2, 3, 9, 8), 0.3))


def test_simulated_camera_noise_is_seeded_signal_dependent_and_correlated() -> None:
    x = torch.cat([torch.full((1, 3, 64, 64), 0.2), torch.full((1, 3, 64, 64), 0.8)])  # dark and bright
    cam = CameraNoise(0.04, 0.01)
    y, ref = simulate_camera(x, cam, seed=3)
    y2, _ = simulate_camera(x, cam, seed=3)
    assert torch.equal(y, y2) and not torch.equal(y, simulate_camera(x, cam, seed=4)[0])
    torch.testing.assert_close(ref, x, atol=1e-5, rtol=0)  # flat: the noise-free pipeline is exact
    # linear-light noise: variance a*L + b^2 in linear light, so brighter areas are noisier there
    lin_d, lin_b = srgb_to_linear(y[0]), srgb_to_linear(y[1])
    assert lin_b.std() > 1.5 * lin_d.std()
    # demosaicing spreads each sample: adjacent pixels correlate, pixels two apart much less
    n = (y[1, 1] - y[1, 1].mean()).double()  # green channel, [64, 64]
    c1 = float((n[:, :-1] * n[:, 1:]).mean() / n.var())
    c2 = float((n[:, :-2] * n[:, 2:]).mean() / n.var())
    assert c1 > 0.3 and abs(c2) < c1 / 2
    yj, _ = simulate_camera(x, CameraNoise(0.04, 0.01, jpeg=80), seed=3)
    assert torch.equal(yj, (yj * 255).round() / 255)  # 8-bit after JPEG


def test_pd_passes_and_refinement() -> None:
    x = np.random.default_rng(0).random((37, 31, 3), dtype=np.float32)
    keep = x.copy()
    calls: list[tuple[int, ...]] = []

    def ident(img: np.ndarray, progress: object = None) -> np.ndarray:
        calls.append(img.shape)
        return img

    for s in (1, 2, 3):
        calls.clear()
        np.testing.assert_allclose(pd_denoise(ident, x, s), x, atol=1e-6)  # an identity denoiser changes nothing
        assert len(calls) == (1 if s == 1 else 2 * s * s)  # s^2 sub-images, then s^2 refills
        if s > 1:
            assert calls[0] == (-(-37 // s), -(-31 // s), 3) and calls[-1] == (37 + (-37) % s, 31 + (-31) % s, 3)
    np.testing.assert_array_equal(x, keep)  # the input is not modified
    # the refinement puts each phase's noisy pixels back into the PD result before its pass: with
    # f(t) = t / 2, PD gives x / 2 and each pixel is x in one of the 4 refills and x / 2 in three
    half = lambda img, progress=None: img / 2  # noqa: E731
    np.testing.assert_allclose(pd_denoise(half, x, 2, refine=False), x / 2)
    np.testing.assert_allclose(pd_denoise(half, x, 2), (x + 3 * x / 2) / 2 / 4, rtol=1e-6)
    ticks: list[tuple[int, int]] = []
    pd_denoise(lambda img, tick: (tick(1, 2), tick(2, 2), img)[-1], x, 2, progress=lambda d, t: ticks.append((d, t)))
    assert ticks[-1] == (16, 16) and all(a[0] < b[0] for a, b in zip(ticks, ticks[1:]))


def test_pd_removes_correlated_noise_a_white_noise_denoiser_leaves() -> None:
    """A Gaussian-noise model on simulated camera noise: PD gains over applying it directly."""
    clean = smooth_image(96, 96, channels=3, seed=2)
    y, ref = simulate_camera(as_batch(clean), CameraNoise(0.04, 0.01), seed=0)
    noisy = y[0].permute(1, 2, 0).numpy()
    target = ref[0].permute(1, 2, 0).numpy()
    direct = denoise(noisy, model="fast_color")
    res = denoise_with_info(noisy, model="fast_color", noise="real")
    pd, info = res.image, res.info
    assert info["noise"] == "camera" and info["pd_stride"] == 2 and info["sigma_estimated"]
    assert psnr(pd, target) > psnr(direct, target) + 0.5
    assert psnr(denoise(noisy, model="fast_color", noise="real", pd_stride=1), target) == pytest.approx(
        psnr(direct, target), abs=1e-6)  # stride 1 is the model applied directly


def test_tiled_pd_equals_whole_image() -> None:
    net = create_model("unet_tiny").eval()  # random weights: any mismatch shows
    img = np.random.default_rng(0).random((75, 61), dtype=np.float32)
    whole = pd_denoise(lambda im, tick: apply_model(net, im, None, None), img, 2)
    tiled = pd_denoise(lambda im, tick: apply_model(net, im, None, 16, tick, inplace=True), img, 2)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_api_real_keeps_type_and_rejects_bad_stride() -> None:
    img = np.round(smooth_image(37, 31, channels=3) * 255).astype(np.uint8)
    assert denoise(img, noise="real").dtype == np.uint8
    gray = smooth_image(37, 31)
    assert denoise(gray, noise="real", pd_stride=3).shape == gray.shape
    t = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
    assert denoise(t, noise="real").shape == t.shape
    for bad in (0, 5, 2.0, True):
        with pytest.raises(InputError):
            denoise(gray, noise="real", pd_stride=bad)


def exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:
        return int(e.code or 0)


def test_cli_denoise_and_evaluate_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ds").mkdir()
    for i in range(2):
        Image.fromarray(np.round(smooth_image(37, 31, channels=3, seed=i) * 255).astype(np.uint8)).save(
            tmp_path / "ds" / f"{i}.png")
    src = tmp_path / "ds" / "0.png"
    assert main(["denoise", str(src), "-o", str(tmp_path / "c.png"), "--noise", "real", "--model", "fast"]) == 0
    assert "pixel-shuffle stride 2" in capsys.readouterr().err and (tmp_path / "c.png").exists()
    assert main(["denoise", str(src), "-o", str(tmp_path / "s.png"), "--strength", "0.6", "--model", "fast"]) == 0
    assert "strength 0.6" in capsys.readouterr().err
    for bad in (["--pd-stride", "3"], ["--noise", "real", "--pd-stride", "9"], ["--strength", "2"],
                ["--strength", "x"]):
        assert exit_code(["denoise", str(src), "-o", str(tmp_path / "d.png"), *bad]) == 2
    assert not (tmp_path / "d.png").exists()
    out = tmp_path / "r.json"
    assert main(["evaluate", "--model", "fast_color", "--dataset", str(tmp_path / "ds"), "--noise", "real",
                 "--camera", "0.04,0.01", "0.02,0.005,90", "--json", str(out)]) == 0
    res = json.loads(out.read_text())["results"]
    assert [(r["shot"], r["jpeg"], r["pd_stride"]) for r in res] == [
        (0.04, None, 1), (0.04, None, 2), (0.02, 90, 1), (0.02, 90, 2)]
    assert all(r["noise"] == "camera" and r["psnr_denoised"] > r["psnr_noisy"] for r in res)
    for bad in (["--noise", "real"], ["--camera", "0.04,0.01"], ["--noise", "real", "--camera", "0.04"],
                ["--noise", "real", "--camera", "2,0.01"]):
        assert exit_code(["evaluate", "--dataset", str(tmp_path / "ds"), *bad]) == 2


def test_strength_keeps_luminance_grain_only() -> None:
    rng = np.random.default_rng(0)
    clean = smooth_image(37, 31, channels=3)
    noisy = (clean + rng.normal(0, 0.08, clean.shape)).astype(np.float32)
    full = denoise(noisy, model="fast_color")
    none = denoise(noisy, model="fast_color", strength=0.0)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    # strength 0: the noisy luminance, the denoised chroma (colour noise is always removed)
    np.testing.assert_allclose(none @ luma, noisy @ luma, atol=1e-5)
    np.testing.assert_allclose(none - (none @ luma)[..., None], full - (full @ luma)[..., None], atol=1e-5)
    half = denoise(noisy, model="fast_color", strength=0.5)
    np.testing.assert_allclose(half @ luma, (full @ luma + noisy @ luma) / 2, atol=1e-5)
    keep = noisy.copy()
    denoise(noisy, model="fast_color", strength=0.5, overwrite_input=True)
    np.testing.assert_array_equal(noisy, keep)  # the noisy image is still needed: never overwritten
    gray = noisy[..., 1]
    np.testing.assert_allclose(denoise(gray, strength=0.0), gray, atol=1e-5)
    for bad in (-0.1, 1.5, "1", True):
        with pytest.raises(InputError):
            denoise(gray, strength=bad)


def test_camera_training_batches_are_sharded_and_trainable(tmp_path: Path) -> None:
    from deepdenoise.errors import DeepDenoiseError
    from deepdenoise.noise.camera import camera_training_batch
    from deepdenoise.training.config import TrainConfig
    from deepdenoise.training.trainer import train

    clean = torch.rand(4, 3, 16, 16)

    def draw(rank: int, world: int, jpeg: float = 0.0) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(5)
        part = clean.chunk(world)[rank]
        return camera_training_batch(part, g, 4, lambda t: t.chunk(world)[rank], 0.08, 0.02, jpeg)

    ref, noisy, sigma = draw(0, 1)
    halves = [draw(r, 2) for r in (0, 1)]
    assert torch.equal(torch.cat([h[1] for h in halves]), noisy)  # any world size: the same data
    assert sigma.shape == (4, 3, 16, 16) and (sigma > 0).all() and not torch.equal(ref, noisy)
    _, jp, _ = draw(0, 1, jpeg=1.0)
    assert torch.equal(jp, (jp * 255).round() / 255)  # every patch went through JPEG
    (tmp_path / "imgs").mkdir()
    for i in range(2):
        Image.fromarray(np.round(smooth_image(50, 45, channels=3, seed=i) * 255).astype(np.uint8)).save(
            tmp_path / "imgs" / f"{i}.png")
    val = np.stack([np.round(smooth_image(24, 24, channels=3, seed=9) * 255).astype(np.uint8)] * 2)
    np.save(tmp_path / "val.npy", val)
    kw = dict(model="unet_tiny", data=str(tmp_path), data_mode="images",
              image_dirs=[str(tmp_path / "imgs")], color=True, patch_size=24, batch_size=4, sigma=0,
              sigma_max=50, noise="camera", camera_jpeg=0.5, val=str(tmp_path / "val.npy"), epochs=2,
              steps_per_epoch=3, lr=1e-3, out=str(tmp_path / "run"), device="cpu")
    assert train(TrainConfig.from_dict(kw), progress=False)["steps"] == 6
    img = smooth_image(37, 31, channels=3)
    res = denoise_with_info(img, model=str(tmp_path / "run" / "best.safetensors"), noise="real")
    _, info = res.image, res.info
    assert info["pd_stride"] == 1  # a model trained on camera noise is not pixel-shuffled
    with pytest.raises(DeepDenoiseError):
        TrainConfig.from_dict({**kw, "color": False})
    with pytest.raises(DeepDenoiseError):
        TrainConfig.from_dict({**kw, "noise": "salt"})


def test_record_camera_evaluation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import shutil

    import deepdenoise.weights.shipped as shipped

    spec = importlib.util.spec_from_file_location("record_evaluation", ROOT / "tools" / "record_evaluation.py")
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    weights = tmp_path / "weights"
    weights.mkdir()
    for ext in (".safetensors", ".json"):
        shutil.copy(shipped.WEIGHTS_DIR / f"fast_color{ext}", weights / f"fast_color{ext}")
    rows = [{"dataset": "CBSD68", "noise": "camera", "shot": 0.04, "read": 0.01, "jpeg": j, "pd_stride": s,
             "sigma": float("nan"), "psnr_denoised": 27.0 + s} for j in (None, 90) for s in (1, 2)]
    tool.record_evaluation("fast_color", rows + [{"dataset": "CBSD68", "sigma": 25.0, "psnr_denoised": 30.7}], weights)
    table = json.loads((weights / "fast_color.json").read_text())["evaluation"]
    assert table["CBSD68 camera noise"] == {
        "shot 0.04, read 0.01": 28.0, "shot 0.04, read 0.01, PD stride 2": 29.0,
        "shot 0.04, read 0.01, JPEG 90": 28.0, "shot 0.04, read 0.01, JPEG 90, PD stride 2": 29.0}
    assert table["CBSD68"]["25"] == 30.7 and list(table["CBSD68"]) == sorted(table["CBSD68"], key=float)
    assert shipped.level_label("25") == "sigma 25"
    assert shipped.level_label("shot 0.04, read 0.01") == "shot 0.04, read 0.01"


def test_real_noise_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from deepdenoise.evaluation.plots import real_noise_figure

    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.round(smooth_image(40, 52, channels=3, seed=i) * 255).astype(np.uint8)).save(paths[-1])
    rows = real_noise_figure(paths, tmp_path / "f.png", [("plain", {"model": "fast"}),
                                                         ("real", {"model": "fast", "noise": "real"})], crop=32)
    assert [r["image"] for r in rows] == ["0.png", "1.png"]
    assert rows[0]["real"]["model"] == "fast_color" and (tmp_path / "f.png").stat().st_size > 1000


def test_incamera_profile_makes_blotchy_chroma_and_keeps_sharding() -> None:
    """The in-camera profile's noise looks like a camera JPEG's: chroma far more correlated between
    neighbours than the luma grain, the same data at any world size, references through JPEG's
    chroma subsampling; the noise reduction alone is exact when it blurs nothing."""
    from deepdenoise.noise.camera import camera_training_batch, in_camera_nr

    n = torch.randn(2, 3, 40, 36)
    torch.testing.assert_close(in_camera_nr(n, torch.zeros(2), torch.zeros(2)), n, atol=1e-5, rtol=1e-5)
    clean = torch.full((8, 3, 48, 48), 0.5)

    def draw(rank: int, world: int, profile: str, jpeg: float = 0.0) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(3)
        part = clean.chunk(world)[rank]
        return camera_training_batch(part, g, 8, lambda t: t.chunk(world)[rank], 0.03, 0.01, jpeg, True, profile)

    def neighbour_corr(r: torch.Tensor) -> float:
        r = r - r.mean(dim=(-2, -1), keepdim=True)
        return float((r[..., 1:] * r[..., :-1]).mean() / (r * r).mean())

    ref, noisy, sigma = draw(0, 1, "incamera")
    halves = [draw(r, 2, "incamera") for r in (0, 1)]
    assert torch.equal(torch.cat([h[1] for h in halves]), noisy)
    res = noisy - ref  # [8, 3, 48, 48]
    y = 0.299 * res[:, 0] + 0.587 * res[:, 1] + 0.114 * res[:, 2]
    assert neighbour_corr(res[:, 2] - y) > 0.8 > neighbour_corr(y) > 0.3
    bref, bnoisy, _ = draw(0, 1, "basic")
    by = 0.299 * (bnoisy - bref)[:, 0] + 0.587 * (bnoisy - bref)[:, 1] + 0.114 * (bnoisy - bref)[:, 2]
    assert neighbour_corr((bnoisy - bref)[:, 2] - by) < 0.7
    jref, jp, _ = draw(0, 1, "incamera", jpeg=1.0)
    assert torch.equal(jp, (jp * 255).round() / 255) and torch.equal(jref, (jref * 255).round() / 255)
    with pytest.raises(ValueError, match="profile"):
        draw(0, 1, "phone")


def test_estimate_gain_tool_chooses_on_one_split_and_reports_the_other(tmp_path: Path) -> None:
    """The gain is the best of the sweep on the calibration pairs; the sentence names both splits
    and the metadata gets it; a glob that picks every pair (nothing held out) is refused."""
    import importlib.util
    import shutil

    from deepdenoise.models import create_model
    from deepdenoise.weights.format import save_weights

    spec = importlib.util.spec_from_file_location("estimate_gain", ROOT / "tools" / "estimate_gain.py")
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for i, cam in enumerate(("A", "A", "B", "B")):
        clean = smooth_image(37, 31, channels=3, seed=i)
        noisy = np.clip(clean + np.random.default_rng(i).normal(0, 0.05, clean.shape), 0, 1)
        for tag, img in (("real", noisy), ("mean", clean)):
            Image.fromarray(np.round(img * 255).astype(np.uint8)).save(pairs / f"{cam}{i}_{tag}.png")
    torch.manual_seed(0)
    model = create_model("unet_tiny_rgb", noise_map=True, map_channels=3).eval()
    weights = save_weights(model, tmp_path / "tiny")
    best, source = tool.choose_gain(str(weights), str(pairs), "A*", [0.5, 1.0, 2.0], [0, 4])
    grid = [(g, k) for k in (0, 4) for g in (0.5, 1.0, 2.0)]
    sweep = tool.sweep(str(weights), [d for d in tool.load_pairs(pairs) if d[0].startswith("A")], grid, "folded")
    assert best == max(sweep, key=lambda s: sweep[s]) and len(set(sweep.values())) > 3  # both knobs act
    assert "chosen on the 2 pairs A*" in source and "on the other 2 pairs, held out" in source
    shutil.copy(weights.with_suffix(".json"), tmp_path / "cam.json")
    tool.write_gain("cam", best, source, tmp_path)
    meta = json.loads((tmp_path / "cam.json").read_text())
    assert meta["estimate_gain"] == best[0] and meta["estimate_gain_source"] == source
    assert meta["config"]["keep_mean"] == best[1]
    with pytest.raises(SystemExit, match="not all or none"):
        tool.choose_gain(str(weights), str(pairs), "*", [1.0])
