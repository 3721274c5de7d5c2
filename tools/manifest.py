"""Rewrite the shipped models' ``MANIFEST.json`` (sha256 and provenance of every weight file) after
a model is shipped or its metadata is updated.

    python tools/manifest.py
"""

from __future__ import annotations

import json

from deepdenoise.fsutil import atomic_write_text
from deepdenoise.weights.shipped import MANIFEST, WEIGHTS_DIR, manifest_entry, shipped_models


def write_manifest() -> None:
    models = {name: manifest_entry(path) for name, path in shipped_models().items()}
    atomic_write_text(WEIGHTS_DIR / MANIFEST, json.dumps({"format_version": 1, "models": models}, indent=1) + "\n")


if __name__ == "__main__":
    write_manifest()
    print(WEIGHTS_DIR / MANIFEST)
