"""FITS in and out, the astronomical mapping (faint end kept, NaN kept, fluxes kept), simulated
fields, and hostile FITS files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("astropy")
pytest.importorskip("photutils")

from astropy.io import fits  # noqa: E402

from deepdenoise.astro.field import GAIN, READ_NOISE, field_header, measure, simulate_field  # noqa: E402
from deepdenoise.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def field():  # type: ignore[no-untyped-def]
    return simulate_field(3, size=160, stars=30, galaxies=10)


def _write(path: Path, field, extra: list | None = None, nan: bool = True) -> np.ndarray:  # type: ignore[no-untyped-def]
    data = field.noisy.copy()
    if nan:
        data[10:20, 30:45] = np.nan  # a masked block (a chip gap, a satellite trail)
        data[100, 100] = np.nan  # and a bad pixel
    hdu = fits.PrimaryHDU(data)
    for key, (value, comment) in field_header(field).items():
        hdu.header[key] = (value, comment)
    fits.HDUList([hdu, *(extra or [])]).writeto(path)
    return data


def test_fits_field_denoised_with_nan_header_and_tables_kept(tmp_path: Path, field) -> None:  # type: ignore[no-untyped-def]
    table = fits.BinTableHDU.from_columns([fits.Column(name="flux", format="E", array=np.arange(5.0))], name="CAT")
    data = _write(tmp_path / "field.fits", field, [table])
    assert main(["denoise", str(tmp_path / "field.fits"), "-o", str(tmp_path / "clean.fits")]) == 0
    with fits.open(tmp_path / "clean.fits") as out:
        assert len(out) == 2 and out[1].name == "CAT" and np.array_equal(out[1].data["flux"], np.arange(5.0))
        clean, header = out[0].data, out[0].header
    assert header["OBJECT"] == "simulated field" and header["GAIN"] == GAIN
    assert any("deepdenoise" in str(h) and "poisson" in str(h) for h in header["HISTORY"])
    assert np.array_equal(np.isnan(clean), np.isnan(data))  # NaN kept NaN, and not spread
    assert np.isfinite(clean[9, 30:45]).all() and np.isfinite(clean[100, 101])
    valid = ~np.isnan(data)
    noisy_m = measure(np.where(valid, data, field.truth), field)
    clean_m = measure(np.where(valid, clean, field.truth), field)
    assert clean_m["psnr"] > noisy_m["psnr"] + 5
    assert clean_m["background_std"] < noisy_m["background_std"] / 3
    assert abs(clean_m["flux_bias_faint"]) < 0.05 and abs(clean_m["flux_bias_bright"]) < 0.01


def test_scaled_integers_cubes_and_gzip(tmp_path: Path, field) -> None:  # type: ignore[no-untyped-def]
    ints = np.round((field.noisy[:64, :80] - 100.0) / 0.5).astype(np.int16)
    prim = fits.PrimaryHDU(ints)
    prim.header["BSCALE"], prim.header["BZERO"] = 0.5, 100.0  # physical = 0.5 * stored + 100
    cube = fits.ImageHDU(np.stack([field.noisy[:50, :60]] * 3).astype(np.float64), name="SCI")
    fits.HDUList([prim, cube]).writeto(tmp_path / "in.fits.gz")
    assert main(["denoise", str(tmp_path / "in.fits.gz"), "-o", str(tmp_path / "out.fits.gz")]) == 0
    with fits.open(tmp_path / "out.fits.gz") as out:
        assert out[0].data.dtype == np.dtype(">f4") and "BZERO" not in out[0].header
        assert abs(float(np.median(out[0].data)) - float(np.median(ints * 0.5 + 100.0))) < 2.0  # physical units
        assert out["SCI"].data.shape == (3, 50, 60)
    assert main(["denoise", str(tmp_path / "in.fits.gz"), "-o", str(tmp_path / "one.fits"), "--hdu", "SCI"]) == 0
    with fits.open(tmp_path / "one.fits") as out:
        assert out[0].data.dtype.kind == "i"  # untouched HDU stays as it was
        assert "HISTORY" in out["SCI"].header


def _table_only(path: Path) -> None:
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column(name="a", format="E", array=np.ones(3))])]).writeto(path)


def _huge_header(path: Path) -> None:
    header = fits.PrimaryHDU(np.zeros((2, 2), np.float32)).header
    header["NAXIS1"], header["NAXIS2"] = 31623, 31623  # 1e9 pixels declared, none stored
    path.write_bytes(header.tostring().encode() + b"\0" * 2880)


def _nan_only(path: Path) -> None:
    fits.PrimaryHDU(np.full((20, 20), np.nan, np.float32)).writeto(path)


def _garbage(path: Path) -> None:
    path.write_bytes(b"SIMPLE  =                    T" + b"\x00\xff" * 2000)


@pytest.mark.parametrize("make,args,message", [
    (_table_only, [], "no image HDU"),
    (_table_only, ["--hdu", "1"], "not an image"),
    (_huge_header, [], "the limit is"),
    (_nan_only, [], "NaN"),
    (_garbage, [], "FITS"),
    (_nan_only, ["--hdu", "7"], "does not exist"),
])
def test_hostile_fits_one_line_exit_3(tmp_path: Path, make, args: list[str], message: str,  # type: ignore[no-untyped-def]
                                      capsys: pytest.CaptureFixture[str]) -> None:
    make(tmp_path / "bad.fits")
    assert main(["denoise", str(tmp_path / "bad.fits"), "-o", str(tmp_path / "o.fits"), *args]) == 3
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o.fits").exists()


def test_fits_output_must_be_fits(tmp_path: Path, field, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    _write(tmp_path / "f.fits", field, nan=False)
    assert main(["denoise", str(tmp_path / "f.fits"), "-o", str(tmp_path / "f.png")]) == 3
    assert "written as FITS" in capsys.readouterr().err


def test_simulated_field_is_deterministic_and_measured_exactly() -> None:
    a, b = simulate_field(5, size=96, stars=8, galaxies=3), simulate_field(5, size=96, stars=8, galaxies=3)
    assert np.array_equal(a.noisy, b.noisy)
    perfect = measure(a.truth, a)
    assert perfect["flux_bias_bright"] == 0 and perfect["flux_scatter_bright"] == 0
    noisy = measure(a.noisy.astype(np.float64), a)
    sky_noise_adu = np.sqrt(150.0 + READ_NOISE ** 2) / GAIN
    assert abs(noisy["background_std"] - sky_noise_adu) < 0.15 * sky_noise_adu


def test_evaluate_synthetic_astro_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--synthetic", "astro", "--fields", "1", "--field-size", "96"]) == 0
    out = capsys.readouterr().out
    for row in ("noisy", "Gaussian smoothing", "wavelet (BayesShrink)", "BM3D", "deepdenoise default, gaussian",
                "deepdenoise default, poisson", "found at equal false"):
        assert row in out


def test_detections_at_equal_false_alarms() -> None:
    """Detection power at a false-alarm budget: the chosen threshold keeps within the budget, finds
    at least what 5 sigma finds when 5 sigma keeps within it, and a budget of none is met."""
    from deepdenoise.astro.field import detections, found_at_false

    f = simulate_field(2, size=128, stars=20, galaxies=6)
    noisy = f.noisy.astype(np.float64)
    found5, spurious5, _ = detections(noisy, f, 5.0)
    got, k = found_at_false(noisy, f, spurious5)
    found_k, spurious_k, _ = detections(noisy, f, k)
    assert 2.5 <= k <= 15 and got >= found5 and found_k == got and spurious_k <= spurious5
    pure = f.truth + np.random.default_rng(0).normal(0.0, 4.0, f.truth.shape)  # white noise, no artefacts
    got0, k0 = found_at_false(pure, f, 0)
    assert detections(pure, f, k0)[:2] == (got0, 0)
