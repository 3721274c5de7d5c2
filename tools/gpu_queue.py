"""Train the GPU queue (``tools/gpu_queue.txt``) on a lent GPU machine in one prepared call.

A call there runs at most 10 minutes, carries at most 64 MiB of working tree and brings back at
most 8 files, so:

    python tools/gpu_queue.py prepare [--shared ../shared]   # data into .carry/gpu, big files stashed
    # the device run (docs/gpu.md): carry [".carry"], command:
    #   PYTHONUNBUFFERED=1 python3 tools/gpu_queue.py run --out $OUT
    python tools/gpu_queue.py collect DIR                    # unpack the returned parts into runs/gpu
    python tools/gpu_queue.py restore                        # the stashed files back in place

``run`` makes the patch sets there, trains each queued config for its minutes on the GPU, scores
each on BSD68 (gray) or the first CBSD68 images (colour) at sigma 15/25/50 with the true and the
estimated level, and packs everything into one archive cut in 15 MiB parts. A run whose budget is
not spent resumes from its checkpoint on the next call while the machine is warm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".carry" / "gpu"
STASH = ROOT / ".stash"
PART = 15 * 1024 * 1024
LIMIT = 63 * 1024 * 1024  # under the 64 MiB the device takes


def read_queue(path: Path = ROOT / "tools" / "gpu_queue.txt") -> list[tuple[str, float]]:
    """(config, minutes) in priority order; minutes 0 means queued but not in this call."""
    queue = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            cfg, minutes = line.split()
            queue.append((cfg, float(minutes)))
    return queue


def _needed(queue: list[tuple[str, float]], root: Path = ROOT) -> set[Path]:
    """The tracked files the queued runs start from (their init weights)."""
    keep = set()
    for cfg, minutes in queue:
        init = yaml.safe_load((root / cfg).read_text()).get("init_from") if minutes > 0 else None
        if init:
            keep.add((root / init).resolve())
    return keep


def stashable(queue: list[tuple[str, float]], root: Path = ROOT, min_bytes: int = 512 * 1024) -> list[Path]:
    """Big files the calls do not start from (other shipped weights, resume checkpoints)."""
    keep = _needed(queue, root)
    found = []
    for folder in (root / "src" / "deepdenoise" / "weights", root / "runs" / "active"):
        for f in sorted(folder.rglob("*")) if folder.exists() else []:
            if f.is_file() and f.stat().st_size >= min_bytes and f.resolve() not in keep:
                found.append(f)
    return found


def stash_large(queue: list[tuple[str, float]], root: Path = ROOT) -> list[str]:
    """Move :func:`stashable` files into .stash/ (ignored), so the tree that travels stays under the
    limit; ``restore`` undoes it. (Stop a local run before: its checkpoint moves too.)"""
    moved = []
    for f in stashable(queue, root):
        dest = root / ".stash" / f.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(f), dest)
        moved.append(str(f.relative_to(root)))
    return moved


def travel_size(shared: Path, queue: list[tuple[str, float]], root: Path = ROOT) -> int:
    """Bytes a call would carry once prepared: the tracked tree less the stashable files, plus the data."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    files = {(root / p).resolve() for p in tracked.decode().split("\0") if p and (root / p).is_file()}
    files -= {f.resolve() for f in stashable(queue, root)}
    data = [f for split in ("train", "test", "val") for f in (shared / "data" / "BSDS500" / split).glob("*")]
    data += sorted((shared / "data" / "BSD68").glob("*.png"))[:8] + [shared / "reference-weights" / "sigma=25.mat"]
    return sum(f.stat().st_size for f in files) + sum(f.stat().st_size for f in data if f.exists())


def restore(root: Path = ROOT) -> int:
    stash = root / ".stash"
    n = 0
    for f in sorted(stash.rglob("*")) if stash.exists() else []:
        if f.is_file():
            dest = root / f.relative_to(stash)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(f), dest)
            n += 1
    shutil.rmtree(stash, ignore_errors=True)
    return n


def prepare(shared: Path, queue: list[tuple[str, float]], carry: Path = CARRY, root: Path = ROOT) -> int:
    """Copy what the calls read into ``carry`` and stash what they do not need; returns the bytes
    that will travel (the carried data plus the tracked tree), checked against the limit."""
    size = travel_size(shared, queue, root)
    if size > LIMIT:
        raise SystemExit(f"{size / 2**20:.1f} MiB would travel (limit {LIMIT / 2**20:.0f}): queue fewer runs")
    copy_data(shared, queue, carry)
    stash_large(queue, root)
    return size


def copy_data(shared: Path, queue: list[tuple[str, float]], carry: Path = CARRY) -> None:
    """The BSDS500 images (training splits, and the validation split the patch sets and the
    validation crops come from) and the queue. BSD68/CBSD68 stay here: the returned weights are
    scored on them on the CPU (``tools/ship_model.py`` decides)."""
    data = shared / "data"
    if carry.exists():
        shutil.rmtree(carry)
    for split in ("train", "test", "val"):
        shutil.copytree(data / "BSDS500" / split, carry / "data" / "BSDS500" / split)
    checks = carry / "shared"  # the GPU checks' data: 8 BSD68 images and the official sigma-25 weights
    (checks / "data" / "BSD68").mkdir(parents=True)
    for f in sorted((data / "BSD68").glob("*.png"))[:8]:
        shutil.copy(f, checks / "data" / "BSD68" / f.name)
    if (shared / "reference-weights" / "sigma=25.mat").exists():
        (checks / "reference-weights").mkdir()
        shutil.copy(shared / "reference-weights" / "sigma=25.mat", checks / "reference-weights" / "sigma=25.mat")
    (carry / "queue.json").write_text(json.dumps(queue))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepdenoise", *args]


def run(out: Path, carry: Path = CARRY, device: str = "cuda", root: Path = ROOT) -> None:
    """On the GPU machine: patches, every queued run for its minutes, scores, one archive."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    data = root / "data"
    if not data.exists():
        data.symlink_to(carry / "data")
    for color in ([], ["--color"]):
        subprocess.run(_cli("prepare", str(data / "BSDS500"), "--out", str(data / "patches"), *color), env=env,
                       cwd=root, check=True, stdout=subprocess.DEVNULL)
    runs = root / "runs" / "gpu"
    for cfg, minutes in json.loads((carry / "queue.json").read_text()):
        if minutes <= 0:
            continue
        conf = yaml.safe_load((root / cfg).read_text())
        target = runs / Path(cfg).stem
        how = ["--resume", str(target)] if (target / "checkpoint.json").exists() else ["--config", cfg]
        elapsed = json.loads((target / "summary.json").read_text())["elapsed_seconds"] / 60 \
            if (target / "summary.json").exists() else 0.0
        subprocess.run(_cli("train", *how, "--out", str(target), "--device", device, "--quiet",
                            "--max-minutes", f"{elapsed + minutes:g}"), env=env, cwd=root)
        _score(target, conf, root, env)
    _pack(runs, out)


def _score(run_dir: Path, conf: dict, root: Path, env: dict) -> None:
    """PSNR of the best weights on the 100 validation crops at sigma 15/25/50 (true level)."""
    if not (run_dir / "best.safetensors").exists():
        return
    crops = root / "data" / "patches" / ("test_crops_color.npy" if conf.get("color") else "test_crops.npy")
    subprocess.run(_cli("evaluate", "--model", str(run_dir / "best.safetensors"), "--patches", str(crops),
                        "--sigma", "15", "25", "50", "--json", str(run_dir / "eval.json")), env=env, cwd=root)


def _pack(runs: Path, out: Path) -> None:
    """runs/gpu (weights, logs, scores; no optimizer state) as results.tar, cut into parts."""
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "results.tar"
    with tarfile.open(archive, "w") as tar:
        for f in sorted(runs.rglob("*")) if runs.exists() else []:
            if f.is_file() and not f.name.startswith(("checkpoint", "previous-")):
                tar.add(f, arcname=str(f.relative_to(runs.parent.parent)))
    data = archive.read_bytes()
    archive.unlink()
    for i in range(0, max(1, len(data)), PART):
        (out / f"results.tar.{i // PART:02d}").write_bytes(data[i:i + PART])


def collect(parts_dir: Path, root: Path = ROOT) -> list[str]:
    """Join the returned parts and unpack them under ``root`` (runs/gpu/NAME/...)."""
    parts = sorted(parts_dir.glob("results.tar.*"))
    if not parts:
        raise SystemExit(f"{parts_dir}: no results.tar.NN parts")
    joined = root / ".carry" / "results.tar"
    joined.parent.mkdir(parents=True, exist_ok=True)
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(joined) as tar:
        names = tar.getnames()
        tar.extractall(root, filter="data")
    joined.unlink()
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("prepare")
    s.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    s.add_argument("--dry-run", action="store_true", help="only say how much would travel")
    s = sub.add_parser("run")
    s.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")))
    s.add_argument("--device", default="cuda")
    s = sub.add_parser("collect")
    s.add_argument("parts", type=Path)
    sub.add_parser("restore")
    a = p.parse_args()
    if a.verb == "prepare" and a.dry_run:
        print(f"{travel_size(a.shared, read_queue()) / 2**20:.1f} MiB would travel")
    elif a.verb == "prepare":
        print(f"{prepare(a.shared, read_queue()) / 2**20:.1f} MiB will travel; carry ['.carry']")
    elif a.verb == "run":
        run(a.out, device=a.device)
    elif a.verb == "collect":
        print("\n".join(collect(a.parts)))
    else:
        print(f"{restore()} files restored")


if __name__ == "__main__":
    main()
