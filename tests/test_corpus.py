"""The hostile and odd input corpus: every broken file gets a one-line error and a documented
exit code, with no output written and the input untouched; odd but valid files are denoised."""

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import smooth_image
from deepdenoise.cli import main
from deepdenoise.io import read_image


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def pil_bytes(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def tiff_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr)
    return buf.getvalue()


GRAY = (smooth_image(24, 20) * 255).astype(np.uint8)
RGB = (smooth_image(24, 20, channels=3) * 255).astype(np.uint8)
NAN = smooth_image(8, 8).copy()
NAN[2, 3] = np.nan

BROKEN = {  # name: (file content, exit code)
    "zero.png": (b"", 3),
    "truncated.png": (png_bytes(RGB)[:60], 3),
    "truncated.jpg": (pil_bytes(Image.fromarray(RGB), "JPEG")[:200], 3),
    "text.png": (b"this is not an image\n", 3),
    "text.jpg": (b"GIF? no. JPEG? no.\n" * 10, 3),
    "garbage.tif": (b"II*\x00" + bytes(range(256)) * 4, 3),
    "nan.tif": (tiff_bytes(NAN), 3),
    "inf.tif": (tiff_bytes(np.full((8, 8), np.inf, dtype=np.float32)), 3),
    "jpeg_header_only.jpg": (b"\xff\xd8\xff", 3),
    "truncated.gif": (pil_bytes(Image.fromarray(GRAY), "GIF")[:30], 3),
    "truncated.bmp": (pil_bytes(Image.fromarray(RGB), "BMP")[:80], 3),
    "random.webp": (b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(40), 3),
    "zero_size.tif": (b"II*\x00\x08\x00\x00\x00\x00\x00", 3),  # a TIFF header with no image in it
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    content, code = BROKEN[name]
    src = tmp_path / name
    src.write_bytes(content)
    assert main(["denoise", str(src), "-o", str(tmp_path / "out.png")]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("deepdenoise: error:"), err
    assert src.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written, no temp files


def test_decompression_bomb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(np.zeros((60, 60), np.uint8)).save(tmp_path / "bomb.png")
    assert main(["denoise", str(tmp_path / "bomb.png"), "-o", str(tmp_path / "o.png"), "--max-pixels", "100"]) == 3
    assert "the limit is 100" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("args,code", [
    (["--sigma", "-1"], 2), (["--sigma", "256"], 2), (["--sigma", "lots"], 2), (["--model", "nope"], 5),
])
def test_bad_arguments(tmp_path: Path, args: list[str], code: int) -> None:
    Image.fromarray(GRAY).save(tmp_path / "a.png")
    try:
        rc = main(["denoise", str(tmp_path / "a.png"), "-o", str(tmp_path / "b.png"), *args])
    except SystemExit as exc:  # argparse rejects bad values with exit code 2
        rc = int(exc.code or 0)
    assert rc == code and not (tmp_path / "b.png").exists()


def test_bad_outputs(tmp_path: Path) -> None:
    Image.fromarray(GRAY).save(tmp_path / "a.png")
    a = str(tmp_path / "a.png")
    (tmp_path / "dir").mkdir()
    assert main(["denoise", a, "-o", str(tmp_path / "dir")]) == 4  # a directory given as the output file
    assert main(["denoise", a, "-o", str(tmp_path / "a.png" / "x.png")]) == 4  # parent is a file
    assert main(["denoise", a, "-o", str(tmp_path / "missing" / "x.png")]) == 4
    assert main(["denoise", a, "-o", str(tmp_path / "x.xyz")]) == 4
    assert main(["denoise", a, "-o", a, "--overwrite"]) == 4  # never replaces its own input
    assert main(["denoise", a, "-o", "/proc/deepdenoise.png"]) == 4  # unwritable location
    assert main(["denoise", str(tmp_path / "none.png"), "-o", str(tmp_path / "x.png")]) == 3
    (tmp_path / "empty").mkdir()
    assert main(["denoise", str(tmp_path / "empty"), "-o", str(tmp_path / "eout")]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "dir", "empty"]


def _exif_rotated_jpeg() -> bytes:
    im = Image.fromarray(RGB)  # 24 x 20 (H x W)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    return pil_bytes(im, "JPEG", exif=exif, quality=95)


VALID = {  # name: (content, expected output shape, expected bit depth, alpha kept)
    "one_pixel.png": (png_bytes(np.array([[128]], np.uint8)), (1, 1), 8, False),
    "strip.png": (png_bytes((np.random.default_rng(0).random((3, 100_000)) * 255).astype(np.uint8)),
                  (3, 100_000), 8, False),
    "cmyk.jpg": (pil_bytes(Image.fromarray(RGB).convert("CMYK"), "JPEG"), (24, 20, 3), 8, False),
    "palette.png": (pil_bytes(Image.fromarray(RGB).convert("P"), "PNG"), (24, 20, 3), 8, False),
    "animated.gif": (pil_bytes(Image.fromarray(GRAY), "GIF", save_all=True,
                               append_images=[Image.fromarray(255 - GRAY)]), (24, 20, 3), 8, False),
    "gray16.png": (png_bytes((smooth_image(24, 20) * 65535).astype(np.uint16)), (24, 20), 16, False),
    "gray_alpha.png": (pil_bytes(Image.fromarray(GRAY).convert("LA"), "PNG"), (24, 20), 8, True),
    "rgba.png": (pil_bytes(Image.fromarray(RGB).convert("RGBA"), "PNG"), (24, 20, 3), 8, True),
    "png_named.jpg": (png_bytes(GRAY), (24, 20), 8, False),
    "rotated.jpg": (_exif_rotated_jpeg(), (20, 24, 3), 8, False),
    "rgb16.png": (b"", (24, 20, 3), 16, False),  # filled in below: 16-bit colour PNG stays 16-bit
    "rgba16.png": (b"", (24, 20, 3), 16, True),
    "rgb16.tif": (tiff_bytes((smooth_image(24, 20, channels=3) * 65535).astype(np.uint16)), (24, 20, 3), 16, False),
    "float.tif": (tiff_bytes(smooth_image(24, 20)), (24, 20), 32, False),
    "photo.webp": (pil_bytes(Image.fromarray(RGB), "WEBP", lossless=True), (24, 20, 3), 8, False),
    "photo.bmp": (pil_bytes(Image.fromarray(RGB), "BMP"), (24, 20, 3), 8, False),
}


def _png16(channels: int) -> bytes:
    import tempfile

    from deepdenoise.io.images import _write_png16_color

    q = (np.random.default_rng(channels).random((24, 20, channels)) * 65535).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        _write_png16_color(Path(tmp) / "x.png", q)
        return (Path(tmp) / "x.png").read_bytes()


VALID["rgb16.png"] = (_png16(3), *VALID["rgb16.png"][1:])
VALID["rgba16.png"] = (_png16(4), *VALID["rgba16.png"][1:])


@pytest.mark.parametrize("name", sorted(VALID))
def test_odd_but_valid(tmp_path: Path, name: str) -> None:
    content, shape, bits, alpha = VALID[name]
    src = tmp_path / name
    src.write_bytes(content)
    suffix = ".tif" if name.endswith(".tif") else ".png"
    out = tmp_path / f"out{suffix}"
    assert main(["denoise", str(src), "-o", str(out), "--sigma", "10", "--model", "dncnn_s_sigma25"]) == 0
    res = read_image(out)
    assert res.pixels.shape == shape and res.bit_depth == bits and (res.alpha is not None) == alpha
    assert np.isfinite(res.pixels).all()
    assert src.read_bytes() == content


def test_folder_keeps_paths_skips_failures_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(GRAY).save(src / "a.png")
    Image.fromarray(RGB).save(src / "sub" / "b.jpg")
    (src / "sub" / "broken.png").write_bytes(b"nope")
    (src / "notes.txt").write_text("hello")
    rc = main(["denoise", str(src), "-o", str(tmp_path / "out"), "--sigma", "15", "--jobs", "2"])
    assert rc == 1  # something failed
    assert (tmp_path / "out" / "a.png").exists() and (tmp_path / "out" / "sub" / "b.jpg").exists()
    assert not (tmp_path / "out" / "sub" / "broken.png").exists()
    err = capsys.readouterr().err
    assert "broken.png" in err and "notes.txt" in err and "denoised 2 files, 1 failed, 1 skipped" in err
    assert "Traceback" not in err
    (src / "sub" / "broken.png").unlink()
    (src / "notes.txt").unlink()
    assert main(["denoise", str(src), "-o", str(tmp_path / "out2"), "--sigma", "15"]) == 0


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_camera_metadata_carried_over_upright(tmp_path: Path, suffix: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """EXIF (camera, date, exposure sub-IFD) survives denoising; the orientation tag does not, since
    the pixels are written upright."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "TestCam", "Model X", 6
    exif.get_ifd(0x8769)[0x829A] = (1, 250)  # exposure time
    src = tmp_path / "in.jpg"
    src.write_bytes(pil_bytes(Image.fromarray(RGB), "JPEG", exif=exif, quality=95))
    out = tmp_path / f"out{suffix}"
    assert main(["denoise", str(src), "-o", str(out), "--model", "fast"]) == 0
    hint = "taken with a camera (TestCam Model X): if grain remains, try --model camera or --noise-scale 1.5"
    assert hint in capsys.readouterr().err
    with Image.open(out) as im:
        got = im.getexif()
        assert im.size == (24, 20)  # 20 x 24 stored, shown rotated: written upright
        assert got.get(0x010F) == "TestCam" and got.get(0x0110) == "Model X" and got.get(0x0112, 1) == 1
        assert got.get_ifd(0x8769).get(0x829A) == (1, 250)
    plain = tmp_path / "plain.png"
    plain.write_bytes(png_bytes(GRAY))
    assert main(["denoise", str(plain), "-o", str(tmp_path / "p.png"), "--model", "fast"]) == 0
    with Image.open(tmp_path / "p.png") as im:
        assert not len(im.getexif())
    assert "taken with a camera" not in capsys.readouterr().err
