"""Astronomy: FITS files, the mapping of sky counts onto the networks' range, simulated fields,
and the measurements astronomers check (aperture photometry, detections)."""

from deepdenoise.errors import DeepDenoiseError


def require_astropy() -> None:
    """A one-line error, not a traceback, when the optional astronomy packages are missing."""
    try:
        import astropy  # noqa: F401
        import photutils  # noqa: F401
    except ImportError as exc:
        raise DeepDenoiseError(f"FITS and sky fields need the astro extra: pip install 'deepdenoise[astro]' "
                               f"({exc})") from None
