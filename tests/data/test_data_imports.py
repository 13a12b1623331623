"""The modules of softlabels.data import one way: no cycle among them (top-level or inside
functions) and none goes through a package facade (``softlabels`` or ``softlabels.data``)."""

from __future__ import annotations

import ast
from pathlib import Path

import softlabels.data

DATA = Path(softlabels.data.__file__).parent
PREFIX = "softlabels.data."


def _imports(path: Path) -> list[str]:
    """Every module an ``import`` statement of ``path`` names, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "softlabels.data":  # a submodule by name is fine, a facade name not
                found += [f"{node.module}.{a.name}" for a in node.names]
            else:
                found.append(node.module)
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(DATA.glob("*.py")):
        if path.name == "__init__.py":
            continue
        deps = {m for m in _imports(path) if m.startswith(PREFIX)}
        graph[PREFIX + path.stem] = deps
    return graph


def test_no_module_imports_a_package_facade() -> None:
    modules = {PREFIX + p.stem for p in DATA.glob("*.py")}
    for path in sorted(DATA.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for name in _imports(path):
            assert name != "softlabels", f"{path.name} imports the softlabels facade"
            if name.startswith(PREFIX):
                assert name in modules, (
                    f"{path.name} imports {name} from the softlabels.data facade"
                )


def test_data_modules_import_without_cycles() -> None:
    graph = _graph()
    assert graph[PREFIX + "_registry"] >= {PREFIX + "_spec", PREFIX + "pyspec"}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = " -> ".join([*path[path.index(dep) :], dep])
                raise AssertionError(f"import cycle: {cycle}")
            if state.get(dep) is None:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
