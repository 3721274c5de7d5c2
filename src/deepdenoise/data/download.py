"""``deepdenoise download bsds500``: fetch the official archive and verify every image.

The archive (BSR_bsds500.tgz from the Berkeley Computer Vision Group) is streamed to a temporary
file, optionally checked against an archive SHA-256, then only ``BSR/BSDS500/data/images/{train,
val,test}/*.jpg`` are extracted (no path traversal possible) and every image is checked against
the SHA-256 manifest shipped with the package (``bsds500_sha256.txt``, 500 entries). The result is
laid out as ``OUT/{train,val,test}/*.jpg``, the layout ``deepdenoise prepare`` reads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from deepdenoise.errors import DeepDenoiseError

BSDS500_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
MANIFEST = Path(__file__).with_name("bsds500_sha256.txt")
PREFIX = "BSR/BSDS500/data/images/"


def read_manifest(path: Path = MANIFEST) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            entries[name.strip()] = digest
    return entries


def fetch(url: str, dest: Path, chunk: int = 1 << 20) -> str:
    """Stream ``url`` to ``dest``; return its SHA-256."""
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as f:
            while block := resp.read(chunk):
                h.update(block)
                f.write(block)
    except OSError as exc:
        raise DeepDenoiseError(f"download failed: {url} ({exc})") from None
    return h.hexdigest()


def download_bsds500(out: str | Path, url: str | None = None, sha256: str | None = None,
                     manifest: Path = MANIFEST) -> Path:
    out = Path(out)
    expected = read_manifest(manifest)
    if out.exists() and all((out / n).exists() for n in expected):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        archive = Path(tmp) / "archive.tgz"
        digest = fetch(url or BSDS500_URL, archive)
        if sha256 and digest != sha256.lower():
            raise DeepDenoiseError(f"archive checksum mismatch: got {digest}, expected {sha256}")
        staging = Path(tmp) / "images"
        found: dict[str, str] = {}
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    name = member.name.lstrip("./")
                    if not (member.isfile() and name.startswith(PREFIX) and name.endswith(".jpg")):
                        continue
                    rel = name[len(PREFIX):]
                    if rel not in expected:
                        continue
                    src = tar.extractfile(member)
                    assert src is not None
                    target = staging / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    data = src.read()
                    found[rel] = hashlib.sha256(data).hexdigest()
                    target.write_bytes(data)
        except tarfile.TarError as exc:
            raise DeepDenoiseError(f"not a valid BSDS500 archive ({exc})") from None
        missing = sorted(set(expected) - set(found))
        if missing:
            raise DeepDenoiseError(f"archive lacks {len(missing)} of {len(expected)} images (first: {missing[0]})")
        bad = sorted(n for n, d in found.items() if d != expected[n])
        if bad:
            raise DeepDenoiseError(f"{len(bad)} images fail their checksum (first: {bad[0]})")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    return out
