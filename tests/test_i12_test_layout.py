"""Issue 12, item 6: the tests mirror the code, and their helpers live in plain modules.

A helper or a table that two test files share goes into a plain module (``tests/fakes.py``,
``tests/daemon_proc.py``, a folder's ``harness.py``...), never into a ``test_*.py`` that another
one imports: importing a test module collects its tests twice over in the reader's head, ties
one file's fixtures to another's, and is what issue 12 found in twelve files. Each subpackage of
``scheduler/`` has its folder of tests, and each folder of tests is a subpackage's.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests import ROOT

TESTS = ROOT / "tests"
PACKAGE = ROOT / "scheduler"


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every absolute import of a file, the names of a ``from``
    import included (``from tests.x import test_y`` imports the module ``tests.x.test_y``)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def is_test_module(dotted: str) -> bool:
    parts = dotted.split(".")
    return parts[0] == "tests" and parts[-1].startswith("test_")


def test_the_checker_sees_every_way_of_importing_a_test_module(tmp_path: Path) -> None:
    source = tmp_path / "test_x.py"
    source.write_text(
        "import tests.fakes\n"
        "from tests.engine.test_engine import T0\n"
        "from tests.triggers import test_dst_vectors\n"
        "def later() -> None:\n"
        "    import tests.test_docs\n"
        "from tests.api.harness import Api\n"
    )
    found = [(line, name) for line, name in imported_modules(source) if is_test_module(name)]
    assert sorted(set(found)) == [
        (2, "tests.engine.test_engine"),
        (3, "tests.triggers.test_dst_vectors"),
        (5, "tests.test_docs"),
    ]


def test_no_test_file_imports_another_test_file() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: imports {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, name in sorted(set(imported_modules(path)))
        if is_test_module(name)
    ]
    assert not offenders, (
        "test files importing a test file (move what they share into a plain module):\n  "
        + "\n  ".join(offenders)
    )


def test_each_subpackage_has_its_folder_of_tests_and_each_folder_a_subpackage() -> None:
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    folders = {path.parent.name for path in TESTS.glob("*/__init__.py")}
    assert sorted(packages - folders) == [], "subpackages of scheduler/ without tests/<name>/"
    assert sorted(folders - packages) == [], "folders of tests/ that mirror no subpackage"
