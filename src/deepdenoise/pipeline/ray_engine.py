"""Folders larger than one machine: the folder mode through Ray Data (``--engine ray``).

Each Ray worker is an actor that loads the model once and denoises one file per call with the
same :func:`~deepdenoise.pipeline.files.denoise_file` the local path uses, so the outputs are the
local ones. Outputs that already exist are skipped, so a killed job resumes where it stopped; a
task whose worker dies is retried on another; every output is written atomically, and the hidden
temporary files of killed writers are removed before the work starts. Optional: ``pip install
'deepdenoise[ray]'``; ``--address`` joins an existing cluster, else a local one is started.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from deepdenoise.errors import DeepDenoiseError, InputError, OutputError
from deepdenoise.pipeline.files import DenoiseOptions, denoise_file, folder_jobs

log = logging.getLogger(__name__)


class _Worker:
    """A Ray actor: one per worker, holding the model between calls (the model cache is per process)."""

    def __init__(self, opts: DenoiseOptions, overwrite: bool) -> None:
        self.opts, self.overwrite = opts, overwrite

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        errors = []
        for src, dst in zip(batch["src"], batch["dst"]):
            out = Path(dst)
            try:
                if out.exists() and not self.overwrite:  # a retried task whose file was written before
                    errors.append("")
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                denoise_file(Path(src), out, self.opts, self.overwrite)
                errors.append("")
            except DeepDenoiseError as exc:
                errors.append(str(exc) or type(exc).__name__)
        return {"src": list(batch["src"]), "error": errors}


def remove_partials(jobs: list[tuple[Path, Path]]) -> int:
    """Delete the hidden temporaries (``.NAME.xxxx``) that a killed writer left beside an output."""
    n = 0
    for _, dst in jobs:
        for f in dst.parent.glob(f".{dst.name}.*") if dst.parent.is_dir() else []:
            f.unlink(missing_ok=True)
            n += 1
    return n


def denoise_folder_ray(src: Path, dst: Path, opts: DenoiseOptions = DenoiseOptions(), overwrite: bool = False,
                       workers: int = 2, address: str | None = None,
                       hidden: bool = False) -> tuple[int, list[str], list[str]]:
    """Denoise every file under ``src`` into ``dst`` on Ray; returns (number done, failure lines,
    skipped lines) as :func:`~deepdenoise.pipeline.files.denoise_folder` does."""
    try:
        import ray
    except ImportError:
        raise DeepDenoiseError("--engine ray needs Ray: pip install 'deepdenoise[ray]'") from None
    if dst.exists() and not dst.is_dir():
        raise OutputError(f"{dst}: exists and is not a folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise OutputError(f"{dst}: output folder must not be inside the input folder")
    work, skipped = folder_jobs(src, dst, hidden)
    if not work:
        raise InputError(f"{src}: no image files to denoise" + (f" ({len(skipped)} skipped)" if skipped else ""))
    todo = [(s, d) for s, d in work if overwrite or not d.exists()]
    if len(todo) < len(work):
        skipped.append(f"{len(work) - len(todo)} outputs already there (use --overwrite to redo them)")
    if remove_partials(todo):
        log.info("removed the temporary files of interrupted writes")
    if not todo:
        return 0, [], skipped
    if not ray.is_initialized():
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # Ray's C++ notes are not the user's business
        ray.init(address=address, num_cpus=None if address else max(1, workers), include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING)
    errors = _run(ray, todo, opts, overwrite, workers)
    return len(todo) - len(errors), errors, skipped


def _run(ray: Any, todo: list[tuple[Path, Path]], opts: DenoiseOptions, overwrite: bool, workers: int) -> list[str]:
    gpu = opts.device.startswith("cuda")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    items = [{"src": str(s), "dst": str(d)} for s, d in todo]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    # Ray Data restarts a dead actor and retries its task, so a killed worker's file is redone
    out = ds.map_batches(_Worker, fn_constructor_args=(opts, overwrite), batch_size=1,
                         compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
                         num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0)
    return [row["error"] for row in out.iter_rows() if row["error"]]
