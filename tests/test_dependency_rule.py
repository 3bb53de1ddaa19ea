"""The part of the dependency rule that import-linter cannot see: bench/ holds plain scripts, not a
package, and they must use the test kit, never `tests` (the rest: `make lint`, pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def imported_modules(source: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_the_benchmarks_are_found() -> None:
    assert len(list(BENCH.glob("*.py"))) >= 5


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda path: path.name)
def test_a_benchmark_never_imports_the_tests(script: Path) -> None:
    forbidden = {m for m in imported_modules(script) if m == "tests" or m.startswith("tests.")}
    assert forbidden == set(), f"{script.name} imports {sorted(forbidden)}; use workflow_testkit"
