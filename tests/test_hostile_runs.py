"""Damaged checkpoints, NaN, concurrent runs and interrupted logs: a run resumes from the newest
usable checkpoint (or the one before it) with the same result as an uninterrupted run."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from deepdenoise.errors import DeepDenoiseError
from deepdenoise.training.checkpoint import RunLock, RunLocked
from deepdenoise.training.trainer import train
from test_train import make_patches, tiny_config


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    name = json.loads((run / "checkpoint.json").read_text())["tensors"]
    return {k: v for k, v in load_file(str(run / name)).items() if k.startswith("model.")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    root = tmp_path_factory.mktemp("ref")
    make_patches(root / "patches")
    train(tiny_config(root, "full", 3), progress=False)
    return root, _final_weights(root / "full")


def _two_epochs(root: Path, name: str) -> Path:
    train(tiny_config(root, name, 2), progress=False)
    return root / name


def _newest_tensors(run: Path) -> Path:
    return run / json.loads((run / "checkpoint.json").read_text())["tensors"]


def _truncate(run: Path) -> None:
    p = _newest_tensors(run)
    p.write_bytes(p.read_bytes()[:100])


def _zero(run: Path) -> None:
    _newest_tensors(run).write_bytes(b"")


def _garbage_json(run: Path) -> None:
    (run / "checkpoint.json").write_text("{not json")


def _list_json(run: Path) -> None:
    (run / "checkpoint.json").write_text("[1, 2]")


def _escape(run: Path) -> None:
    info = json.loads((run / "checkpoint.json").read_text())
    info["tensors"] = "../../etc/passwd"
    (run / "checkpoint.json").write_text(json.dumps(info))


def _nan(run: Path) -> None:
    p = _newest_tensors(run)
    t = load_file(str(p))
    key = next(k for k in t if k.startswith("model.") and k.endswith("weight"))
    t[key] = torch.full_like(t[key], float("nan"))
    save_file(t, str(p))


def _wrong_shapes(run: Path) -> None:
    p = _newest_tensors(run)
    t = load_file(str(p))
    key = next(k for k in t if k.startswith("model."))
    t[key] = torch.zeros(3, 3)
    save_file(t, str(p))


def _missing(run: Path) -> None:
    _newest_tensors(run).unlink()


def _random_bytes(run: Path) -> None:
    _newest_tensors(run).write_bytes(bytes(range(256)) * 40)


def _step_as_text(run: Path) -> None:
    info = json.loads((run / "checkpoint.json").read_text())
    info["step"] = "twelve"
    (run / "checkpoint.json").write_text(json.dumps(info))


CORRUPTIONS = [_truncate, _zero, _garbage_json, _list_json, _escape, _nan, _wrong_shapes, _missing, _random_bytes,
               _step_as_text]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=[c.__name__.strip("_") for c in CORRUPTIONS])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(
        reference: tuple[Path, dict[str, torch.Tensor]], corrupt, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    root, final = reference
    run = _two_epochs(root, corrupt.__name__)
    corrupt(run)
    with caplog.at_level(logging.WARNING, logger="deepdenoise.training.checkpoint"):
        summary = train(tiny_config(root, corrupt.__name__, 3), resume=True, progress=False)
    assert summary["steps"] == 18
    assert any("previous checkpoint" in r.getMessage() for r in caplog.records)
    got = _final_weights(run)
    for k, v in final.items():  # same as the uninterrupted run: resumed from step 6 and redone
        assert torch.allclose(v, got[k], atol=1e-6), k
    with open(run / "log.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == [6, 12, 18]  # the rows after the fallback's step were rewritten, not repeated


def test_both_checkpoints_damaged_is_one_clear_error(reference: tuple[Path, dict[str, torch.Tensor]]) -> None:
    root, _ = reference
    run = _two_epochs(root, "both")
    (run / "checkpoint.json").write_text("{")
    (run / "checkpoint-prev.json").write_text("{")
    with pytest.raises(DeepDenoiseError, match="no usable checkpoint"):
        train(tiny_config(root, "both", 3), resume=True, progress=False)


def test_a_locked_run_folder_refuses_a_second_trainer(reference: tuple[Path, dict[str, torch.Tensor]]) -> None:
    root, _ = reference
    run = _two_epochs(root, "locked")
    with RunLock(run), pytest.raises(RunLocked, match="another training run"):
        train(tiny_config(root, "locked", 3), resume=True, progress=False)
    train(tiny_config(root, "locked", 3), resume=True, progress=False)  # free again afterwards


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
        reference: tuple[Path, dict[str, torch.Tensor]], monkeypatch: pytest.MonkeyPatch) -> None:
    import deepdenoise.training.trainer as tr

    root, _ = reference
    run = _two_epochs(root, "nan")
    before = (run / "checkpoint.json").read_text()
    real = tr.noisy_batch

    def poisoned(*args, **kwargs):  # type: ignore[no-untyped-def]
        clean, noisy, sigma = real(*args, **kwargs)
        return clean, noisy * float("nan"), sigma

    monkeypatch.setattr(tr, "noisy_batch", poisoned)
    with pytest.raises(DeepDenoiseError, match="NaN"):
        train(tiny_config(root, "nan", 3), resume=True, progress=False)
    assert (run / "checkpoint.json").read_text() == before


def test_stale_temporary_files_are_cleaned_at_start(reference: tuple[Path, dict[str, torch.Tensor]]) -> None:
    root, _ = reference
    run = _two_epochs(root, "stale")
    (run / ".checkpoint-00000018.safetensors.x1y2z3").write_bytes(b"\0" * 1000)
    train(tiny_config(root, "stale", 3), resume=True, progress=False)
    assert not list(run.glob(".checkpoint*"))
