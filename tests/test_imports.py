"""The import graph: no cycles (lazy imports included), layers that point one way, and click only in the CLI.

Read statically from the source, so a cycle through an import inside a function (the kind that slips past
Python, as build <-> wizard once did) is caught too. Imports under ``if TYPE_CHECKING:`` are for mypy only
and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "iteratr"

# Lower layers never import upper ones: entry -> commands -> run -> session / agent / git -> base.
LAYERS = {
    "iteratr.session": {"iteratr.run", "iteratr.agent", "iteratr.commands", "iteratr.cli", "iteratr.gitrepo"},
    "iteratr.agent": {"iteratr.run", "iteratr.commands", "iteratr.cli"},
    "iteratr.run": {"iteratr.commands", "iteratr.cli"},
    "iteratr.remote": {"iteratr.run", "iteratr.commands", "iteratr.cli"},
}


def module_names() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module and node.module.split(".")[0] in ("iteratr", "click"):
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    found.add(candidate if candidate in known else node.module)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(a.name for a in node.names if a.name.split(".")[0] in ("iteratr", "click"))

    Visitor().visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def graph() -> dict[str, set[str]]:
    mods = module_names()
    return {name: imports_of(path, mods) - {name} for name, path in mods.items()}


def test_no_import_cycles_lazy_imports_included() -> None:
    edges = {name: {d for d in deps if d.startswith("iteratr")} for name, deps in graph().items()}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str], seen: set[str]) -> None:
        for dep in sorted(edges.get(node, ())):
            if dep in path:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in seen:
                seen.add(dep)
                visit(dep, [*path, dep], seen)

    for start in sorted(edges):
        visit(start, [start], {start})
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_only_the_cli_imports_click() -> None:
    users = sorted(name for name, deps in graph().items() if "click" in deps)
    assert users == ["iteratr.cli"]


def test_layers_point_one_way() -> None:
    wrong = [
        f"{name} imports {dep}"
        for name, deps in graph().items()
        for layer, forbidden in LAYERS.items()
        if name == layer or name.startswith(layer + ".")
        for dep in deps
        if any(dep == f or dep.startswith(f + ".") for f in forbidden)
    ]
    assert not wrong, wrong
