"""Store measured PSNR in a shipped model's metadata (the source tree's weights, for maintainers).

    deepdenoise evaluate --model fast --dataset ../shared/data/BSD68 --sigma 15 25 50 --json r.json
    python tools/record_evaluation.py fast r.json

The installed package never rewrites its own files: this runs on a checkout before a release.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deepdenoise.fsutil import atomic_write_text
from deepdenoise.weights.shipped import WEIGHTS_DIR, is_number


def record_evaluation(name: str, results: list[dict[str, Any]], weights_dir: Path = WEIGHTS_DIR) -> None:
    """Write measured PSNR (by dataset and sigma) into a shipped model's JSON metadata."""
    path = weights_dir / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"{path}: no such shipped model")
    meta = json.loads(path.read_text())
    table = meta.setdefault("evaluation", {})
    for r in results:
        if r.get("noise") == "camera":  # simulated camera noise: its own table, keyed by the noise
            key = f"shot {r['shot']:g}, read {r['read']:g}" + (f", JPEG {r['jpeg']}" if r["jpeg"] else "")
            key += f", PD stride {r['pd_stride']}" if r["pd_stride"] > 1 else ""
            table.setdefault(f"{r['dataset']} camera noise", {})[key] = round(r["psnr_denoised"], 3)
        elif "level" in r:  # impulses: the restored rows, keyed by density or bit error rate
            if r["method"] != "noisy":
                key = f"{'ber' if r['noise'] == 'biterror' else 'density'} {r['level']:g}"
                table.setdefault(f"{r['dataset']} {r['noise']}", {})[key] = round(r["psnr"], 3)
        else:
            table.setdefault(r["dataset"], {})[f"{r['sigma']:g}"] = round(r["psnr_denoised"], 3)
    for ds in table:
        if all(is_number(k) for k in table[ds]):
            table[ds] = dict(sorted(table[ds].items(), key=lambda kv: float(kv[0])))
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", help="shipped model name")
    p.add_argument("results", help="JSON written by 'deepdenoise evaluate --json'")
    a = p.parse_args()
    record_evaluation(a.name, json.loads(Path(a.results).read_text())["results"])
    from manifest import write_manifest

    write_manifest()  # the metadata's checksum changed


if __name__ == "__main__":
    main()
