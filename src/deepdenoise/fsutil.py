"""File-system details shared by every writer: the permissions a new or replaced file gets."""

from __future__ import annotations

import os
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
