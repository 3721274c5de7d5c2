"""The package's shape: no module imports upward or across a layer, no import cycle, no function
over 60 lines (tools/layers.py holds the layer order and the import reader)."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import layers  # noqa: E402


def test_no_upward_or_sideways_import() -> None:
    assert layers.violations(layers.import_graph()) == []


def test_no_import_cycle() -> None:
    assert layers.cycles(layers.import_graph()) == []


def test_no_function_over_60_lines() -> None:
    assert layers.long_functions() == []


def test_every_package_is_on_a_layer() -> None:
    units = {layers.unit_of(m) for m in layers.import_graph()}
    for unit in units:
        layers.layer_of(unit)  # raises for a package the order does not name


def test_the_checks_catch_a_planted_violation(tmp_path: Path) -> None:
    """The same reader on a small tree with an upward import (inside a function), a sideways one,
    a cycle and a long function finds all four."""
    src = tmp_path / "deepdenoise"
    for pkg in ("models", "inference", "noise", "io"):
        (src / pkg).mkdir(parents=True)
        (src / pkg / "__init__.py").write_text("")
    (src / "__init__.py").write_text("")
    (src / "models" / "net.py").write_text("def f():\n    from deepdenoise.inference import run\n")
    (src / "inference" / "run.py").write_text("from deepdenoise.models import net\n")
    (src / "noise" / "a.py").write_text("from deepdenoise.io import b\n")
    (src / "io" / "b.py").write_text("def g():\n" + "    x = 1\n" * 70)
    graph = layers.import_graph(src)
    bad = layers.violations(graph)
    assert any("deepdenoise.models.net:2 imports deepdenoise.inference" in b for b in bad)
    assert any("deepdenoise.noise.a:1 imports deepdenoise.io" in b for b in bad)
    assert not any(b.startswith("deepdenoise.inference.run") for b in bad)  # downward is fine
    graph["deepdenoise.models.net"].append(("deepdenoise.inference.run", 2))
    assert layers.cycles(graph) == [["deepdenoise.inference.run", "deepdenoise.models.net"]]
    assert [f.split(" ")[1] for f in layers.long_functions(src)] == ["g"]
