"""File-system details shared by every writer: atomic replacement, and the permissions a new or
replaced file gets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def target_mode(path: Path) -> int:
    """The mode a file written to ``path`` should have: an existing file's own mode (replacing it
    keeps it), else what ``open()`` would give under the process's umask (temporary files are
    created 0600, which would otherwise leak into every output)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def publish_mode(tmp: str | Path, path: Path) -> None:
    """Give the temporary file ``tmp`` the mode ``path`` should have, before it takes its name."""
    os.chmod(tmp, target_mode(path))


def write_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name -->`` and ``<!-- /name -->`` in a Markdown file (appended
    with the markers when the file or the markers are not there yet), so generated tables live
    inside hand-written pages."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    page = path.read_text() if path.exists() else ""
    if start not in page or end not in page:
        page = page + ("\n" if page and not page.endswith("\n") else "") + f"{start}\n{end}\n"
    head, rest = page.split(start, 1)
    atomic_write_text(path, head + start + "\n" + text.rstrip("\n") + "\n" + end + rest.split(end, 1)[1])


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        publish_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException:  # a full disk, a signal: no hidden temporary file left behind
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
