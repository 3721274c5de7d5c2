"""Images decoded from and encoded to bytes (the web service's path: no temporary files) give what
the file path gives; 16-bit colour PNGs keep their ICC profile and EXIF."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import smooth_image
from deepdenoise.errors import InputError
from deepdenoise.io import ImageData, decode_header, decode_image, encode_image, read_header, read_image, write_image

ICC = b"\x00\x00\x02\x0c" + b"fake-icc-profile" * 20  # Pillow keeps whatever bytes the chunk holds


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS 80D"
    return bytes(exif.tobytes())


@pytest.mark.parametrize("suffix,bits,channels", [(".png", 8, 3), (".png", 16, 3), (".png", 16, 0),
                                                  (".tif", 16, 3), (".jpg", 8, 3), (".webp", 8, 0)])
def test_bytes_and_paths_agree(tmp_path: Path, suffix: str, bits: int, channels: int) -> None:
    img = ImageData(smooth_image(37, 31, channels=channels), bits, icc=ICC if suffix != ".webp" else None)
    path = tmp_path / f"x{suffix}"
    write_image(path, img)
    data = path.read_bytes()
    assert encode_image(img, suffix) == data or suffix in (".jpg", ".webp", ".tif")  # lossy/timestamped
    a, b = read_image(path), decode_image(data, "x")
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert (a.bit_depth, a.format, a.icc) == (b.bit_depth, b.format, b.icc)
    assert decode_header(data) == read_header(path)


def test_tiff_stack_from_bytes(tmp_path: Path) -> None:
    stack = (np.random.default_rng(0).random((3, 37, 31)) * 65535).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, stack, imagej=True, metadata={"axes": "ZYX"})
    img = decode_image(buf.getvalue(), "stack.tif")
    assert img.stack_shape == (3,) and img.pixels.shape == (3, 37, 31) and img.bit_depth == 16
    np.testing.assert_allclose(img.pixels, stack / 65535.0, atol=1e-7)


def test_sixteen_bit_colour_png_keeps_icc_and_exif(tmp_path: Path) -> None:
    exif = _exif()
    img = ImageData(smooth_image(37, 31, channels=3), 16, icc=ICC, exif=exif)
    data = encode_image(img, ".png")
    with Image.open(io.BytesIO(data)) as im:  # another reader sees both
        assert im.info.get("icc_profile") == ICC
        got = im.getexif()
        assert got[0x010F] == "Canon" and got[0x0110] == "EOS 80D"
    back = decode_image(data, "x.png")
    assert back.bit_depth == 16 and back.icc == ICC and back.exif is not None
    np.testing.assert_allclose(back.pixels, img.pixels, atol=1 / 65535)
    write_image(tmp_path / "again.png", back)  # and a second round keeps them
    with Image.open(tmp_path / "again.png") as im:
        assert im.info.get("icc_profile") == ICC and im.getexif()[0x0110] == "EOS 80D"


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"not an image at all", b"II*\x00" + b"\x00" * 20])
def test_hostile_bytes_are_one_line_errors(data: bytes) -> None:
    with pytest.raises(InputError) as exc:
        decode_image(data, "upload.png")
    assert "upload.png" in str(exc.value) and "\n" not in str(exc.value)


def test_bomb_refused_on_its_header_from_bytes() -> None:
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")  # 400 MP declared in a few kB
    with pytest.raises(InputError, match="limit"):
        decode_image(buf.getvalue(), "bomb.png", max_pixels=10_000_000)


def test_web_upload_uses_no_temporary_file(monkeypatch: pytest.MonkeyPatch, camera: np.ndarray) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from deepdenoise.web.app import ServeConfig, create_app

    def refused(*_: object, **__: object) -> None:
        raise AssertionError("a temporary file was made")

    client = TestClient(create_app(ServeConfig(max_upload_bytes=2_000_000, max_pixels=500_000)))
    buf = io.BytesIO()
    Image.fromarray((camera[:64, :48] * 255).astype(np.uint8)).save(buf, format="PNG")
    files = {"image": ("c.png", buf.getvalue(), "image/png")}
    assert client.post("/api/denoise", files=files, data={"sigma": "25"}).status_code == 200  # model prepared
    monkeypatch.setattr(tempfile, "mkstemp", refused)
    monkeypatch.setattr(tempfile, "TemporaryDirectory", refused)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refused)
    r = client.post("/api/denoise", files={"image": ("c.png", buf.getvalue(), "image/png")}, data={"sigma": "25"})
    assert r.status_code == 200, r.text
    assert np.asarray(Image.open(io.BytesIO(r.content))).shape == (64, 48)
