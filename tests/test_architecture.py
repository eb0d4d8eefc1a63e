"""The layer table, held on the real import graph so the shape cannot rot silently.

Layers, low to high. A module may import its own layer or a lower one, never a higher one::

    layer  name            modules
       0   vocabulary      errors, clock, ids, durations, model, i18n
       1   triggers/
       2   input           schedules, checks, jobspec, maintenance
       3   executors/
       4   config/
       5   core            store, index, events, views
       6   persistence/
       7   engine/
       8   service/
       9   observability/
      10   cluster/
      11   runtime/
      12   api/
      13   daemon/
      14   cli/

A name ending in ``/`` is a subpackage (all of its modules); the others are modules at the top
of ``scheduler/``. ``scheduler/__init__.py`` (the package's facade) and
``scheduler/__main__.py`` (its entry point) are exempt; no other module imports the facade.

Every import counts: at the top of a module, inside a function, and under
``if TYPE_CHECKING:`` (a deferred or type-only import is still a dependency on the shape of
the higher layer). The graph also has no cycle, between modules or between the units of the
table; and ``import scheduler.config`` does not load aiohttp, so the CLI's ``check`` and
``next`` and anything else that only reads a config stay light. Cluster mode (``cluster/``: the
PostgreSQL backend, which ``runtime/`` chooses, hence below it) is the only user of its
optional driver, and nothing outside it imports it at module level, so the single box never
loads psycopg.

The table above is the one the tests use: it is parsed from this docstring.
"""

from __future__ import annotations

import ast
import itertools
import re
import subprocess
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests import ROOT

PACKAGE = ROOT / "scheduler"
FACADE = "scheduler"
EXEMPT = frozenset({"scheduler", "scheduler.__main__"})
_ROW = re.compile(r"^\s+(\d+)\s+(\w+/?)\s*(.*)$")


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    number: int
    name: str  # "triggers/" for a subpackage, else the row's label

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


def parse_table(text: str) -> dict[str, Layer]:
    """Unit (a subpackage or a top-level module's name) -> its layer, from the table's rows."""
    units: dict[str, Layer] = {}
    for line in text.splitlines():
        row = _ROW.match(line)
        if row is None:
            continue
        number, name, modules = int(row[1]), row[2], row[3]
        layer = Layer(number, name)
        if name.endswith("/"):
            names = [name.removesuffix("/")]
        elif modules:
            names = [module.strip() for module in modules.split(",")]
        else:
            names = [name]
        for unit in names:
            assert unit not in units, f"{unit} is in the layer table twice"
            units[unit] = layer
    return units


LAYERS = parse_table(__doc__ or "")
#: The table as the docstring shows it, for failure messages.
TABLE = "\n".join(
    line for line in (__doc__ or "").splitlines() if _ROW.match(line) or "layer  name" in line
)


def unit_of(module: str) -> str:
    """``scheduler.engine.loop`` -> ``engine``; ``scheduler.store`` -> ``store``."""
    return module.split(".")[1]


# --- the graph ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module: a scheduler module, or a third-party name as written
    path: Path
    line: int
    runtime: bool  # runs when the source is imported: module level, not under TYPE_CHECKING

    def where(self) -> str:
        return f"{self.path.relative_to(PACKAGE.parent)}:{self.line}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package, dotted name -> file."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _Collector(ast.NodeVisitor):
    """Every import of one module, marked runtime or deferred (function body, TYPE_CHECKING)."""

    def __init__(self, module: str, path: Path, known: Mapping[str, Path]) -> None:
        self.module = module
        self.path = path
        self.known = known
        self.package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        self.deferred = 0
        self.found: list[Import] = []

    def _add(self, target: str, node: ast.stmt) -> None:
        self.found.append(Import(self.module, target, self.path, node.lineno, not self.deferred))

    def visit(self, node: ast.AST) -> None:
        deferred = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        self.deferred += deferred
        super().visit(node)
        self.deferred -= deferred

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.deferred += 1
        for child in node.body:
            self.visit(child)
        self.deferred -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: resolved against this module's package
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in dict.fromkeys(t if t in self.known else base for t in targets):
            self._add(target, node)


@cache
def imports() -> tuple[Import, ...]:
    """Every import statement of every module of the package."""
    found: list[Import] = []
    known = modules()
    for module, path in known.items():
        collector = _Collector(module, path, known)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found.extend(collector.found)
    return tuple(found)


def internal(found: tuple[Import, ...]) -> Iterator[Import]:
    """The imports between two modules of the package, from a module the table governs."""
    for imp in found:
        if imp.source not in EXEMPT and imp.target.split(".")[0] == FACADE:
            yield imp


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


# --- the table holds ---------------------------------------------------------------------------


def test_the_table_parses_into_fifteen_layers() -> None:
    assert sorted({layer.number for layer in LAYERS.values()}) == list(range(15))
    assert LAYERS["model"] == Layer(0, "vocabulary")
    assert LAYERS["engine"] == Layer(7, "engine/")
    assert LAYERS["service"] == Layer(8, "service/")


def test_every_module_is_in_the_layer_table() -> None:
    missing = sorted(
        module for module in modules() if module not in EXEMPT and unit_of(module) not in LAYERS
    )
    assert not missing, (
        "modules in no layer (add them to the table in tests/test_architecture.py):\n  "
        + "\n  ".join(missing)
    )


def upward(found: Iterable[Import]) -> list[str]:
    """Each import of a higher layer (or of the facade), as ``file:line: from -> to``."""
    violations = []
    for imp in found:
        if imp.target == FACADE:
            violations.append(f"{imp.where()}: {imp.source} imports the facade `scheduler`")
            continue
        source, target = LAYERS.get(unit_of(imp.source)), LAYERS.get(unit_of(imp.target))
        if source is None or target is None:
            continue  # reported by test_every_module_is_in_the_layer_table
        if target.number > source.number:
            violations.append(
                f"{imp.where()}: {imp.source} -> {imp.target} (layer {source} -> {target})"
            )
    return violations


def test_no_module_imports_a_higher_layer() -> None:
    violations = upward(internal(imports()))
    assert not violations, (
        "imports of a higher layer:\n  " + "\n  ".join(violations) + "\n\nthe layers:\n" + TABLE
    )


def test_no_import_cycle_between_modules() -> None:
    edges: dict[str, set[str]] = {}
    for imp in internal(imports()):
        if imp.target != imp.source and imp.target not in EXEMPT:
            edges.setdefault(imp.source, set()).add(imp.target)
    found = cycles(edges)
    assert not found, "import cycles between modules:\n  " + "\n  ".join(
        " <-> ".join(cycle) for cycle in found
    )


def test_no_import_cycle_between_units_of_the_table() -> None:
    edges: dict[str, set[str]] = {}
    for imp in internal(imports()):
        if imp.target not in EXEMPT and unit_of(imp.source) != unit_of(imp.target):
            edges.setdefault(unit_of(imp.source), set()).add(unit_of(imp.target))
    found = cycles(edges)
    assert not found, "import cycles between units of the table:\n  " + "\n  ".join(
        " <-> ".join(cycle) for cycle in found
    )


#: The optional packages of cluster mode (``pip install 'scheduler[cluster]'``).
CLUSTER_DRIVER = frozenset({"psycopg", "psycopg_pool"})


def test_only_cluster_modules_import_the_postgresql_driver() -> None:
    outside = [
        f"{imp.where()}: {imp.source} -> {imp.target}"
        for imp in imports()
        if imp.target.split(".")[0] in CLUSTER_DRIVER and unit_of(imp.source) != "cluster"
    ]
    assert not outside, "psycopg imported outside scheduler/cluster/:\n  " + "\n  ".join(outside)


def test_nothing_outside_cluster_imports_it_at_module_level() -> None:
    eager = [
        f"{imp.where()}: {imp.source} -> {imp.target}"
        for imp in internal(imports())
        if imp.runtime
        and imp.target.startswith("scheduler.cluster")
        and unit_of(imp.source) != "cluster"
    ]
    assert not eager, "cluster mode imported at module level (import it where used):\n  " + (
        "\n  ".join(eager)
    )


# --- the checker itself ---------------------------------------------------------------------


def test_the_collector_sees_deferred_type_only_and_relative_imports(tmp_path: Path) -> None:
    source = """
from __future__ import annotations
from typing import TYPE_CHECKING
import scheduler.model
from scheduler import ids
from . import clock
if TYPE_CHECKING:
    from scheduler.engine.loop import Engine
else:
    import json
def later() -> None:
    from scheduler.api import app
class Holder:
    import scheduler.store
"""
    path = PACKAGE / "durations.py"  # any module of the package: its name anchors `from .`
    collector = _Collector("scheduler.durations", path, modules())
    collector.visit(ast.parse(source))
    assert [(imp.target, imp.line, imp.runtime) for imp in collector.found] == [
        ("__future__", 2, True),
        ("typing", 3, True),
        ("scheduler.model", 4, True),
        ("scheduler.ids", 5, True),
        ("scheduler.clock", 6, True),
        ("scheduler.engine.loop", 8, False),
        ("json", 10, True),
        ("scheduler.api.app", 12, False),
        ("scheduler.store", 14, True),
    ]


def test_an_import_of_a_higher_layer_or_the_facade_is_named_with_file_line_and_layers() -> None:
    def imp(source: str, target: str, line: int) -> Import:
        return Import(source, target, PACKAGE / "x.py", line, runtime=False)

    found = [
        imp("scheduler.engine.loop", "scheduler.store", 1),  # 7 -> 5: down
        imp("scheduler.engine.loop", "scheduler.engine.queue", 2),  # its own layer
        imp("scheduler.checks", "scheduler.executors.base", 3),  # 2 -> 3: up
        imp("scheduler.store", "scheduler", 4),
    ]
    assert upward(found) == [
        "scheduler/x.py:3: scheduler.checks -> scheduler.executors.base"
        " (layer 2 input -> 3 executors/)",
        "scheduler/x.py:4: scheduler.store imports the facade `scheduler`",
    ]


def test_cycles_finds_each_strongly_connected_group() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "f"}, "f": set()}
    assert cycles(edges) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []


# --- what importing the config loads ----------------------------------------------------------


def runtime_chain(start: str, wanted: str) -> list[Import] | None:
    """The chain of runtime imports by which importing ``start`` loads ``wanted`` (a top-level
    package name), or None. Importing a module runs its parent packages' ``__init__`` too."""
    by_source: dict[str, list[Import]] = {}
    for imp in imports():
        if imp.runtime:
            by_source.setdefault(imp.source, []).append(imp)
    came_from: dict[str, Import | None] = {}
    queue: deque[str] = deque()

    def reach(module: str, via: Import | None) -> None:
        parts = module.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[:n])
            if name not in came_from:
                came_from[name] = via
                queue.append(name)

    reach(start, None)
    while queue:
        module = queue.popleft()
        if module.split(".")[0] == wanted:
            chain: list[Import] = []
            step = came_from[module]
            while step is not None:
                chain.append(step)
                step = came_from[step.source]
            return chain[::-1]
        for imp in by_source.get(module, ()):
            reach(imp.target, imp)
    return None


def test_importing_the_config_does_not_import_aiohttp_on_the_graph() -> None:
    chain = runtime_chain("scheduler.config", "aiohttp")
    assert chain is None, "import scheduler.config loads aiohttp:\n  " + "\n  ".join(
        f"{imp.where()}: {imp.source} -> {imp.target}" for imp in chain
    )


@pytest.mark.integration
def test_importing_the_config_in_a_fresh_interpreter_does_not_load_aiohttp() -> None:
    probe = "import sys, scheduler.config; print('aiohttp' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", "import scheduler.config loaded aiohttp"


# --- the README shows this shape ---------------------------------------------------------------


def readme_tree() -> list[str]:
    """The lines of the tree under ``scheduler/`` in the README's "Architecture" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 2)[1]
    lines = block.splitlines()
    assert lines[0] == "scheduler/", "the README's architecture tree starts at scheduler/"
    return lines[1:]


#: A line of the tree: names (a folder ends in ``/``) one space apart, then two or more spaces
#: and what they are.
_TREE_LINE = re.compile(r"^  (\S+(?: \S+)*?) {2,}\S")


def readme_units() -> list[str]:
    """Each name the README's tree lists, in its order; a line that names nothing (a
    description wrapped onto a second line) fails: each folder has one line."""
    units: list[str] = []
    for line in readme_tree():
        row = _TREE_LINE.match(line)
        assert row is not None, f"the README's tree has a line that names nothing: {line!r}"
        units.extend(row[1].split(" "))
    return units


def real_units() -> set[str]:
    """The subpackages (as ``name/``) and top-level modules of ``scheduler/`` today."""
    folders = {f"{path.parent.name}/" for path in PACKAGE.glob("*/__init__.py")}
    tops = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    return folders | tops


def test_the_readme_tree_lists_every_folder_and_top_level_module_once() -> None:
    listed = readme_units()
    assert sorted(listed) == sorted(set(listed)), "the README's tree lists a name twice"
    real = real_units()
    assert set(listed) - real == set(), "the README's tree lists what scheduler/ lacks"
    assert real - set(listed) == set(), "scheduler/ has what the README's tree leaves out"


def test_the_readme_tree_is_in_the_order_of_the_layers() -> None:
    numbers = [(LAYERS[unit.removesuffix("/")].number, unit) for unit in readme_units()]
    out_of_order = [
        f"{unit} (layer {number}) after {prev} (layer {prev_number})"
        for (prev_number, prev), (number, unit) in itertools.pairwise(numbers)
        if number < prev_number
    ]
    assert not out_of_order, "the README's tree is not lowest layer first:\n  " + "\n  ".join(
        out_of_order
    )
