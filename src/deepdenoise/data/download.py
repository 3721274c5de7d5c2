"""``deepdenoise download bsds500 | dncnn-reference``: fetch public data and verify every file.

BSDS500: the archive (BSR_bsds500.tgz from the Berkeley Computer Vision Group) is streamed to a temporary
file, optionally checked against an archive SHA-256, then only ``BSR/BSDS500/data/images/{train,
val,test}/*.jpg`` are extracted (no path traversal possible) and every image is checked against
the SHA-256 manifest shipped with the package (``bsds500_sha256.txt``, 500 entries). The result is
laid out as ``OUT/{train,val,test}/*.jpg``, the layout ``deepdenoise prepare`` reads.

dncnn-reference: the official DnCNN weights (below), each file checked against its SHA-256.
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


# The official DnCNN weights (MatConvNet, HDF5 .mat) from the authors' repository, for checking our
# evaluation against the published tables and as the benchmark's reference. Never shipped: fetched
# on request into the user's cache. name -> (path in the repository, SHA-256)
REFERENCE_BASE = "https://github.com/cszn/DnCNN/raw/master/"
REFERENCE_FILES = {
    "sigma=15.mat": ("model/specifics/sigma=15.mat",
        "657d5115fa05d371dbf0df1f0a931eff274dae29d08a9cc0824a28caf2460e21"),
    "sigma=25.mat": ("model/specifics/sigma=25.mat",
        "5a5404c9e3ef14e353760e14b885439408a654618e14f13b2e97b99b9835020b"),
    "sigma=50.mat": ("model/specifics/sigma=50.mat",
        "517dc0b55a8da2c129704ed7921b8557aac40cf3aae9f700dc41a9e25cad0983"),
    "GD_Gray_Blind.mat": ("model/GD_Gray_Blind.mat",
        "37f76da0b71dd2b2789ce91848fe2f184ab486203c9af9ac1b98199b60ea02b0"),
}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def download_reference(out: str | Path, base_url: str | None = None) -> Path:
    """Fetch the official DnCNN-S (sigma 15/25/50) and DnCNN-B weights into ``out``.

    Each file is streamed to a temporary name beside its target, checked against its SHA-256 and
    only then renamed into place, so an interrupted or corrupted download never leaves a file that
    looks valid. Files already present with the right checksum are kept."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = (base_url or REFERENCE_BASE).rstrip("/") + "/"
    for name, (rel, digest) in REFERENCE_FILES.items():
        target = out / name
        if target.exists() and file_sha256(target) == digest:
            continue
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
        os.close(fd)
        try:
            got = fetch(base + rel, Path(tmp))
            if got != digest:
                raise DeepDenoiseError(f"{name}: checksum mismatch (got {got}, expected {digest}); nothing kept")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return out
