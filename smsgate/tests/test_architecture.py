"""
The shape DESIGN.md draws, checked on the source: every import (function-local ones too,
which hide a cycle without removing it) is an edge between project modules.

- No module imports another that imports it back, directly or around a loop.
- Apps depend one way: `conversations -> commands, delivery, templates`;
  `delivery -> templates`; `commands` and `templates` import no other app; `bulk`, `api`,
  `smpp_gateway` and `console` sit on top, as ALLOWED says.
- No app imports the project package `smsgate`, which wires them together.
- `demo` may import every app, and nothing imports `demo` (its tests aside).

Tests are modules too and must not close a cycle, but they may reach across apps (a
delivery test builds a shortcode with the commands factories) and into `smsgate`.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "commands",
    "conversations",
    "delivery",
    "templates",
    "bulk",
    "api",
    "smpp_gateway",
    "console",
    "demo",
    "smsgate",
)
# What each app may import besides itself; `smsgate` may import every app.
ALLOWED = {
    "commands": set(),
    "templates": set(),
    "delivery": {"templates"},
    "conversations": {"commands", "delivery", "templates"},
    "bulk": {"commands", "delivery", "templates"},
    "api": {"commands", "delivery", "templates", "bulk"},
    "smpp_gateway": {"commands", "conversations", "delivery", "templates"},
    "console": {"commands", "conversations", "delivery", "templates", "bulk"},
    "demo": {"commands", "conversations", "delivery", "templates", "bulk", "api", "smpp_gateway", "console"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


MODULES = _project_modules()


def _resolve(name: str) -> str | None:
    """The project module an import of `name` loads last (the longest known prefix), or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _imported_names(module: str, tree: ast.AST) -> Iterator[tuple[str, int]]:
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            for alias in node.names:
                # `from delivery import tasks` imports the module delivery.tasks.
                submodule = f"{prefix}.{alias.name}"
                yield (submodule if submodule in MODULES else prefix), node.lineno


def _import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported project module: line of the first such import}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges: dict[str, int] = {}
        for name, line in _imported_names(module, ast.parse(path.read_text(), filename=str(path))):
            target = _resolve(name)
            if target is not None and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


GRAPH = _import_graph()


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_test(module: str) -> bool:
    return ".tests" in f".{module}" or module.endswith("conftest")


def test_the_graph_sees_function_local_imports():
    # given a module known to import inside a function body
    source = "def f():\n    from delivery.models import Message\n"

    # when its imports are read
    names = [name for name, _ in _imported_names("delivery.views", ast.parse(source))]

    # then the local import counts
    assert names == ["delivery.models"]


def test_the_graph_resolves_relative_and_submodule_imports():
    source = "from . import base\nfrom .base import Provider\nfrom delivery import models\n"

    names = {name for name, _ in _imported_names("delivery.providers.twilio", ast.parse(source))}

    assert names == {"delivery.providers.base", "delivery.models"}


def test_the_cycle_finder_finds_a_loop_of_three():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}

    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = _cycles(GRAPH)

    detail = [
        " ; ".join(f"{m} -> {t} (line {GRAPH[m][t]})" for m in cycle for t in GRAPH[m] if t in cycle)
        for cycle in cycles
    ]
    assert cycles == [], "\n".join(detail)


@pytest.mark.parametrize("app", sorted(ALLOWED))
def test_apps_depend_one_way(app):
    wrong = sorted(
        f"{module} -> {target} (line {line})"
        for module, edges in GRAPH.items()
        if module.split(".")[0] == app and not _is_test(module)
        for target, line in edges.items()
        if (other := target.split(".")[0]) != app and other not in ALLOWED[app]
    )

    assert wrong == []


def test_the_graph_covers_the_apps():
    # A check that reads nothing passes; make sure the modules it must judge are there.
    assert {"delivery.models", "conversations.views", "commands.handlers", "templates.matcher"} <= set(GRAPH)
    assert {"delivery.deliver", "delivery.outbound"} <= set(GRAPH["delivery.tasks"])
    assert "delivery.outbound" in GRAPH["conversations.handling"]


def test_nothing_imports_the_demo():
    importers = sorted(
        f"{module} -> {target} (line {line})"
        for module, edges in GRAPH.items()
        if module.split(".")[0] != "demo"
        for target, line in edges.items()
        if target.split(".")[0] == "demo"
    )

    assert importers == []
