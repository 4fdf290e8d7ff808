"""The shape of lib/ that keeps it readable: no import cycle, short modules, few top modules.

Imports are read from the source (every ``import``, also inside functions), so a cycle that
an import inside a function hides is still found.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "lib"
MAX_MODULE_LINES = 500
MAX_TOP_MODULES = 8  # besides __init__ and __main__


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def imported_modules(name: str) -> set[str]:
    """The modules of lib that module ``name`` imports (``from lib.x import y``: lib.x.y if
    that is a module, else lib.x)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def room(name: str) -> str:
    """A module's subpackage (lib.train for lib.train.loop), or the module at the top."""
    parts = name.split(".")
    return ".".join(parts[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        return error.args[1]
    return None


def test_no_import_cycle_between_modules():
    graph = {name: imported_modules(name) for name in MODULES}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_no_import_cycle_between_subpackages():
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        graph.setdefault(room(name), set()).update(
            room(t) for t in imported_modules(name) if room(t) != room(name) and t != "lib"
        )
    assert _cycle(graph) is None, f"subpackages import each other: {' -> '.join(_cycle(graph))}"


def test_no_module_over_500_lines():
    long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {long}"


def test_few_modules_at_the_top_of_lib():
    top = sorted(p.stem for p in LIB.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} modules at the top of lib/: {top}"


def test_the_walker_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"a"}}) is not None
    assert imported_modules("lib.cli"), "lib.cli imports nothing of lib? the walker is broken"
