"""The package's shape, read from the source with ``ast`` (every import counts, also those
inside functions, which is where cycles used to hide).

Nodes of the import graph are satseg's first-level units: each subpackage (``training``,
``io``...) and each top-level module (``config``, ``vocab``, ``errors``, ``dagkit``...).
``satseg/__init__.py`` is the root, not a node (``from satseg import __version__`` is no
edge); ``from satseg import versioning`` is an edge to ``versioning``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "satseg"
AIRFLOW_EDGE = ("dagkit", "alerting", "api")  # the only units that may import Airflow
IO_MAY_IMPORT = {"vocab", "config", "errors", "params"}  # leaves: satseg/io builds on them only


def _units() -> set[str]:
    return {p.stem if p.is_file() else p.name for p in PKG.iterdir() if _is_unit(p)}


def _is_unit(p: Path) -> bool:
    if p.is_dir():
        return (p / "__init__.py").is_file()
    return p.suffix == ".py" and p.name != "__init__.py"


def _unit_of(path: Path) -> str:
    first = path.relative_to(PKG).parts[0]
    return first.removesuffix(".py")


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every import in ``path``, relative ones resolved."""
    rel = path.relative_to(PKG.parent).with_suffix("").parts
    package = rel if path.name == "__init__.py" else rel[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)]
                base = ".".join([*up, *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:  # ``from satseg import training`` names a unit
                yield node.lineno, f"{base}.{alias.name}"


def _sources() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def _graph() -> dict[str, dict[str, str]]:
    """unit -> {imported unit: "file:line" of the first such import}."""
    units = _units()
    graph: dict[str, dict[str, str]] = {u: {} for u in units}
    for path in _sources():
        src = _unit_of(path)
        if src == "__init__":
            continue
        for line, mod in _imports(path):
            parts = mod.split(".")
            if parts[0] == "satseg" and len(parts) > 1 and parts[1] in units and parts[1] != src:
                where = f"{path.relative_to(PKG.parent)}:{line}"
                graph[src].setdefault(parts[1], where)
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        path.append(u)
        for v in sorted(graph.get(u, {})):
            if state.get(v) == 1:
                return [*path[path.index(v) :], v]
            if v not in state and (found := visit(v)):
                return found
        path.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (found := visit(u)):
            return found
    return None


def test_airflow_only_at_the_edge() -> None:
    leaks = [
        f"{path.relative_to(PKG.parent)}:{line} imports {mod}"
        for path in _sources()
        if _unit_of(path) not in AIRFLOW_EDGE
        for line, mod in _imports(path)
        if mod.split(".")[0] == "airflow"
    ]
    assert not leaks, "Airflow imported outside dagkit/alerting/api:\n" + "\n".join(leaks)


def test_package_import_graph_is_acyclic() -> None:
    graph = _graph()
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{a} -> {b} ({graph[a][b]})" for a, b in itertools.pairwise(cycle)]
        pytest.fail("import cycle between satseg's packages:\n" + "\n".join(steps))


def test_io_is_a_leaf() -> None:
    wrong = {v: where for v, where in _graph()["io"].items() if v not in IO_MAY_IMPORT}
    assert not wrong, f"satseg/io imports other satseg packages: {wrong}"


def test_the_checks_see_what_they_look_for() -> None:
    """The parser finds function-level and ``from satseg import x`` imports and reports cycles."""
    retrain = PKG / "training" / "retrain.py"
    found = {mod for _, mod in _imports(retrain)}
    assert {"satseg.versioning", "satseg.registry"} <= found  # module level and in a function
    assert "versioning" in _graph()["training"]
    graph = {"a": {"b": "x"}, "b": {"c": "y"}, "c": {"a": "z"}, "d": {"a": "w"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": "x"}, "b": {}}) is None
