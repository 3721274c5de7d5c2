"""Keep a finished run's record in ``docs/runs/NAME.json`` (its config, summary and log rows), so
the run folder itself can stay out of git: weights and checkpoints are reproducible from the config,
the record of how they were made is not.

    python tools/archive_runs.py runs/fast_color runs/compare/unet_s_l1_p96 ...
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def run_record(run: Path) -> dict[str, Any]:
    record: dict[str, Any] = {"run": run.as_posix()}
    if (run / "config.yaml").exists():
        record["config"] = yaml.safe_load((run / "config.yaml").read_text())
    if (run / "summary.json").exists():
        record["summary"] = json.loads((run / "summary.json").read_text())
    if (run / "best.json").exists() or (run / "best_fp16.json").exists():
        meta = json.loads(((run / "best.json") if (run / "best.json").exists() else run / "best_fp16.json").read_text())
        record["best"] = meta.get("training", {})
    if (run / "log.csv").exists():
        with open(run / "log.csv", newline="") as f:
            record["log"] = list(csv.DictReader(f))
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "runs")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for run in a.runs:
        name = run.relative_to("runs").as_posix().replace("/", "__") if run.is_relative_to("runs") else run.name
        (a.out / f"{name}.json").write_text(json.dumps(run_record(run), indent=1) + "\n")
        print(a.out / f"{name}.json")


if __name__ == "__main__":
    main()
