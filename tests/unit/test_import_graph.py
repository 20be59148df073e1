"""No import cycles in the bot and its storage: each module can be read, and changed, knowing only
what it imports. Imports under ``TYPE_CHECKING`` count too: they are the same coupling."""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "storage")


def module_files() -> dict[str, Path]:
    """Every module of :data:`PACKAGES`, by dotted name (a package by its ``__init__``)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_modules(path: Path, module: str, modules: Collection[str]) -> Iterator[str]:
    """The modules of ours that ``module`` imports, relative imports resolved: for ``from a
    import b``, ``a.b`` if it is a module, else ``a`` (whose ``__init__`` defines ``b``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in modules else base


def import_graph() -> dict[str, set[str]]:
    """Each module and the modules of ours it makes Python run: what it imports and, for a module
    of another package, that package's ``__init__`` on the way."""
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for imported in imported_modules(path, name, modules):
            if imported not in modules:
                continue
            graph[name].add(imported)
            parts = imported.split(".")
            for depth in range(1, len(parts)):
                parent = ".".join(parts[:depth])
                inside = name == parent or name.startswith(parent + ".")
                if parent in modules and not inside:
                    graph[name].add(parent)
    for name in graph:
        graph[name].discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_bot_and_its_storage_import_without_cycles() -> None:
    graph = import_graph()
    assert "bot.work.cycle" in graph and "storage.sqlite.store" in graph, "modules are found"
    assert cycles(graph) == []


def test_a_cycle_would_be_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
