"""Measured numbers live in docs/BENCHMARKS.md only; the docs a newcomer reads link there.

A figure copied into the README, a docstring, a comment, a rule or the schema goes stale on
the next machine: these tests fail when one of BENCHMARKS.md's measured figures (a number
with a unit of time, memory, speed or ratio) appears in any of them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = r"(?:ms|s|min|minutes|h|hours|MB|GB|GiB|MiB|KB|core-hours|frames/s|clips/s|fps|x|%)"
FIGURE = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)\s?(" + UNITS + r")(?![\w/])")
#: Not measurements: the confidence level of every interval the project reports.
DEFINITIONS = {("95", "%")}


def figures(text: str) -> set[tuple[str, str]]:
    return {(m.group(1), m.group(2)) for m in FIGURE.finditer(text)} - DEFINITIONS


def docstrings_and_comments(path: Path) -> str:
    source = path.read_text()
    parts = [
        ast.get_docstring(node, clean=False) or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    parts += [line[line.index("#") :] for line in source.splitlines() if "#" in line]
    return "\n".join(parts)


def _prose() -> list[tuple[str, str]]:
    texts = [(p, p.read_text()) for p in (REPO / "README.md", REPO / "config.yaml")]
    texts += [(p, p.read_text()) for p in sorted((REPO / "workflow").rglob("*.smk"))]
    texts += [(p, p.read_text()) for p in sorted((REPO / "workflow" / "schemas").glob("*.yaml"))]
    texts += [(p, docstrings_and_comments(p)) for p in sorted((REPO / "lib").rglob("*.py"))]
    return [(str(p.relative_to(REPO)), text) for p, text in texts]


MEASURED = figures((REPO / "docs" / "BENCHMARKS.md").read_text())


def test_benchmarks_hold_measured_figures():
    assert len(MEASURED) > 20, "docs/BENCHMARKS.md lost its tables?"


@pytest.mark.parametrize("name,text", [pytest.param(n, t, id=n) for n, t in _prose()])
def test_no_measured_figure_is_copied_out_of_benchmarks(name, text):
    copies = sorted(figures(text) & MEASURED)
    assert not copies, (
        f"{name} copies measured figures of docs/BENCHMARKS.md: "
        + ", ".join(f"{n} {u}" for n, u in copies)
        + " -- link the section of docs/BENCHMARKS.md instead"
    )


HEADINGS = [
    line.lstrip("#").strip()
    for line in (REPO / "docs" / "BENCHMARKS.md").read_text().splitlines()
    if line.startswith("#")
]
#: `docs/BENCHMARKS.md, section "Demo run"`, `[docs/BENCHMARKS.md](...), "Demo run"`, ...
SECTION_REFERENCE = re.compile(r'BENCHMARKS\.md\S*?,?\s+(?:sections?\s+)?\\?"([^"\\]+)\\?"')


def _pointers() -> list[tuple[str, str]]:
    texts = _prose() + [
        (str(p.relative_to(REPO)), p.read_text())
        for p in sorted((REPO / "docs").glob("*.md")) + sorted((REPO / "configs").glob("*.yaml"))
        if p.name != "BENCHMARKS.md"
    ]
    found = []
    for name, text in texts:
        flat = re.sub(r"\s*\n\s*(?:#+\s*)?", " ", text)  # references wrap across comment lines
        found += [(name, m.group(1)) for m in SECTION_REFERENCE.finditer(flat)]
    return found


def test_pointers_to_benchmarks_name_sections_that_exist():
    pointers = _pointers()
    assert len(pointers) > 10, "the pattern no longer finds the references?"
    dangling = sorted(
        {
            (name, section)
            for name, section in pointers
            if not any(h.startswith(section) for h in HEADINGS)
        }
    )
    assert not dangling, f"sections of docs/BENCHMARKS.md that do not exist: {dangling}"
