"""The input edge imports nothing above it: checks, the job parser, the executors and config
each import only their own layer or lower ones, type-only imports included (a cycle through
``TYPE_CHECKING`` is still a cycle in the design)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "scheduler"
#: Low to high (the project's layer table); a module may import its own layer or lower ones.
LAYERS = {
    **dict.fromkeys(("errors", "clock", "ids", "durations", "model"), 0),
    "triggers": 1,
    **dict.fromkeys(("schedules", "checks", "jobspec"), 2),
    "executors": 3,
    "config": 4,
    **dict.fromkeys(("store", "index", "events", "views"), 5),
    "persistence": 6,
    "engine": 7,
    "service": 8,
    "observability": 9,
    "runtime": 10,
    "api": 11,
    "daemon": 12,
    "cli": 13,
}
CHECKED = (
    "checks.py",
    "jobspec.py",
    "schedules.py",
    "durations.py",
    "views.py",
    "executors",
    "config",
)


def layer(module: str) -> int | None:
    """The layer of ``scheduler.<top>...``, None for anything else."""
    parts = module.split(".")
    return LAYERS.get(parts[1]) if parts[0] == "scheduler" and len(parts) > 1 else None


def imported(tree: ast.AST) -> list[str]:
    """Every ``scheduler`` module an AST imports, wherever the import statement sits."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name.startswith("scheduler.")]


def modules() -> list[Path]:
    paths: list[Path] = []
    for name in CHECKED:
        path = PACKAGE / name
        paths.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return paths


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_a_module_of_the_input_edge_imports_nothing_above_its_layer(path: Path) -> None:
    own = layer("scheduler." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    assert own is not None
    upward = [
        name
        for name in imported(ast.parse(path.read_text(encoding="utf-8")))
        if (layer(name) or 0) > own
    ]
    assert upward == []
