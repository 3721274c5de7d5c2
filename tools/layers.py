"""The package's layers, lowest first, and a reader of its import graph (module level and inside
functions). A module may import from its own package and from lower layers; packages on one layer
do not import each other. ``tests/test_layers.py`` holds the code to this; ``tools/architecture.py``
draws it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "deepdenoise"

LAYERS: list[tuple[str, ...]] = [
    ("errors", "defaults"),  # the core: no torch at import
    ("fsutil", "metrics", "hardware"),
    ("models",),
    ("noise", "io"),
    ("weights",),
    ("data",),
    ("inference",),
    ("astro",),
    ("training",),
    ("evaluation",),
    ("pipeline",),
    ("web",),
    ("cli",),
]
TOP = ("__init__", "__main__")  # the package's front: lazy names and ``python -m deepdenoise``


def unit_of(module: str) -> str:
    """'deepdenoise.inference.api' -> 'inference'; 'deepdenoise.errors' -> 'errors'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(unit: str) -> int:
    if unit in TOP:
        return len(LAYERS)
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    raise KeyError(f"{unit} is on no layer: add it to tools/layers.py")


def module_name(path: Path, src: Path = SRC) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, src: Path = SRC) -> list[tuple[str, int]]:
    """(imported deepdenoise module, line) for every import in the file, wherever it stands."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path, src)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("deepdenoise")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("deepdenoise"):
                continue
            subs = [f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}", src)]
            if subs:  # from deepdenoise.models import net: the module net
                found += [(m, node.lineno) for m in subs]
            elif base != "deepdenoise":  # (from deepdenoise import __version__ names no module)
                found.append((base, node.lineno))
    return found


def _is_module(name: str, src: Path) -> bool:
    path = src.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def import_graph(src: Path = SRC) -> dict[str, list[tuple[str, int]]]:
    return {module_name(p, src): imports_of(p, src) for p in sorted(src.rglob("*.py"))}


def violations(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    """Every import that reaches up a layer or across to a sibling package on the same layer."""
    bad = []
    for mod, imports in graph.items():
        unit = unit_of(mod)
        for target, line in imports:
            other = unit_of(target)
            if other == unit or unit in TOP:
                continue
            if layer_of(other) >= layer_of(unit):
                bad.append(f"{mod}:{line} imports {target} ({other} is not below {unit})")
    return bad


def cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each an import cycle."""
    edges = {m: sorted({t for t, _ in imps if t in graph and t != m}) for m, imps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def long_functions(src: Path = SRC, limit: int = 60) -> list[str]:
    """Functions longer than ``limit`` lines (decorators and docstring included)."""
    out = []
    for p in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > limit:
                    out.append(f"{p.relative_to(src.parent)}:{node.lineno} {node.name} ({n} lines)")
    return out
