import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA, needs, smooth_image
from deepdenoise.data.download import download_bsds500
from deepdenoise.data.patches import PatchConfig, prepare_patches
from deepdenoise.data.sources import CropSource, PatchSource
from deepdenoise.errors import DeepDenoiseError, InputError


def make_bsds(root: Path, counts: dict[str, int], size: tuple[int, int] = (81, 61)) -> None:
    for split, n in counts.items():
        (root / split).mkdir(parents=True)
        for i in range(n):
            img = (smooth_image(size[1], size[0], channels=3, seed=i + 10 * len(split)) * 255).astype(np.uint8)
            Image.fromarray(img).save(root / split / f"{split}{i:03d}.jpg", quality=95)


def test_prepare_counts_determinism_and_cache(tmp_path: Path) -> None:
    make_bsds(tmp_path / "bsds", {"train": 3, "test": 2, "val": 2})
    cfg = PatchConfig(per_image=7)
    counts = prepare_patches(tmp_path / "bsds", tmp_path / "p1", cfg, progress=False)
    assert counts == {"train": 35, "test": 14}
    train = np.load(tmp_path / "p1" / "train.npy")
    assert train.shape == (35, 40, 40) and train.dtype == np.uint8
    crops = np.load(tmp_path / "p1" / "test_crops.npy")  # one central crop per test image
    assert crops.shape == (2, 48, 48) and crops.dtype == np.uint8  # 61 px side -> multiple of 16
    prepare_patches(tmp_path / "bsds", tmp_path / "p2", cfg, progress=False)
    for name in ("train.npy", "test.npy", "test_crops.npy"):
        assert (tmp_path / "p1" / name).read_bytes() == (tmp_path / "p2" / name).read_bytes()
    mtime = (tmp_path / "p1" / "train.npy").stat().st_mtime_ns
    prepare_patches(tmp_path / "bsds", tmp_path / "p1", cfg, progress=False)  # cached
    assert (tmp_path / "p1" / "train.npy").stat().st_mtime_ns == mtime
    color = prepare_patches(tmp_path / "bsds", tmp_path / "p1", PatchConfig(per_image=7, color=True), progress=False)
    assert color["train"] == 35 and np.load(tmp_path / "p1" / "train_color.npy").shape == (35, 40, 40, 3)


def test_prepare_rejects_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        prepare_patches(tmp_path / "missing", tmp_path / "out", progress=False)
    make_bsds(tmp_path / "b", {"train": 1, "test": 1})
    with pytest.raises(InputError, match="val"):
        prepare_patches(tmp_path / "b", tmp_path / "out", progress=False)


@needs(DATA / "BSDS500")
def test_prepare_mission_counts(tmp_path: Path) -> None:
    counts = prepare_patches(DATA / "BSDS500", tmp_path, progress=False)
    assert counts == {"train": 85600, "test": 21400}


def test_sources_are_pure_functions_of_step() -> None:
    patches = np.random.default_rng(0).integers(0, 255, (50, 8, 8), dtype=np.uint8)
    a, b = PatchSource(patches, 10, seed=1), PatchSource(patches, 10, seed=1)
    assert np.array_equal(a.batch(7), b.batch(7)) and a.batch(7).shape == (10, 1, 8, 8)
    halves = [a.batch(3, rank=r, world=2) for r in range(2)]
    assert np.array_equal(np.concatenate(halves), a.batch(3))
    imgs = [np.random.default_rng(i).integers(0, 255, (20, 30, 3), dtype=np.uint8) for i in range(3)]
    c = CropSource(imgs, 8, 6, seed=0)
    assert c.batch(5).shape == (6, 3, 8, 8) and np.array_equal(c.batch(5), c.batch(5))
    assert np.array_equal(np.concatenate([c.batch(5, r, 2) for r in range(2)]), c.batch(5))


def _archive(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "BSR_bsds500.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"BSR/BSDS500/data/images/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_download_verifies_checksums(tmp_path: Path) -> None:
    files = {f"{s}/{i}.jpg": f"{s}-{i}".encode() * 50 for s in ("train", "val", "test") for i in range(2)}
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in files.items()))
    archive = _archive(tmp_path, {**files, "iids_train.txt": b"x"})
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    out = download_bsds500(tmp_path / "out", url=archive.as_uri(), sha256=digest, manifest=manifest)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == sorted(files)
    with pytest.raises(DeepDenoiseError, match="archive checksum"):
        download_bsds500(tmp_path / "o2", url=archive.as_uri(), sha256="0" * 64, manifest=manifest)
    bad = _archive(tmp_path, {**files, "train/0.jpg": b"tampered"})
    with pytest.raises(DeepDenoiseError, match="fail their checksum"):
        download_bsds500(tmp_path / "o3", url=bad.as_uri(), manifest=manifest)
    assert not (tmp_path / "o3").exists()


def test_download_reference_verifies_each_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The official weights come from a mirror laid out like the authors' repository; each file is
    checked before it takes its name, and a tampered one leaves nothing behind."""
    from deepdenoise.cli import main
    from deepdenoise.data import download

    blobs = {"sigma=25.mat": b"weights-25" * 100, "GD_Gray_Blind.mat": b"blind" * 100}
    mirror = tmp_path / "mirror"
    table = {}
    for name, data in blobs.items():
        rel = f"model/specifics/{name}"
        (mirror / "model" / "specifics").mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_bytes(data)
        table[name] = (rel, hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(download, "REFERENCE_FILES", table)
    out = download.download_reference(tmp_path / "ref", base_url=mirror.as_uri())
    assert {p.name: p.read_bytes() for p in out.iterdir()} == blobs  # no temporary files left
    (mirror / "model" / "specifics" / "sigma=25.mat").write_bytes(b"tampered")
    download.download_reference(tmp_path / "ref", base_url=mirror.as_uri())  # present and valid: kept
    with pytest.raises(DeepDenoiseError, match="checksum mismatch"):
        download.download_reference(tmp_path / "ref2", base_url=mirror.as_uri())
    assert sorted(p.name for p in (tmp_path / "ref2").iterdir()) == []
    monkeypatch.setenv("DEEPDENOISE_REFERENCE", str(tmp_path / "ref3"))
    (mirror / "model" / "specifics" / "sigma=25.mat").write_bytes(blobs["sigma=25.mat"])
    assert main(["download", "dncnn-reference", "--url", mirror.as_uri()]) == 0
    assert (tmp_path / "ref3" / "sigma=25.mat").read_bytes() == blobs["sigma=25.mat"]
    from deepdenoise.weights.shipped import reference_dir

    assert reference_dir() == tmp_path / "ref3" and reference_dir("x") == Path("x")
    (mirror / "model" / "specifics" / "GD_Gray_Blind.mat").unlink()  # an unreachable file: one-line error
    assert main(["download", "dncnn-reference", "--url", mirror.as_uri(), "--out", str(tmp_path / "ref4")]) == 2
