"""kbroker's modules import one another without a circle.

Every import counts, wherever it stands: at the top, inside a function (an import moved there to dodge a
circle is still one) and under ``if TYPE_CHECKING`` (a type that needs a circle says the modules are cut
in the wrong place). Packages count as the modules their ``__init__`` is; importing ``kbroker.x.y`` also
runs ``kbroker/__init__.py`` and ``kbroker/x/__init__.py``, but that is Python's order, not a dependency,
so it is not an edge. Nor are the handler modules the handler table imports by name on first use
(handlers/__init__.py): each is a leaf that the dispatch reaches, never the other way round.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kbroker

PACKAGE_DIR = Path(kbroker.__file__).resolve().parent


def kbroker_modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (its file, whether it is a package's __init__)."""
    out = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


def imports_of(name: str, path: Path, is_package: bool, modules) -> set[str]:
    """The kbroker modules ``name`` imports anywhere in its file."""
    package = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # ``from . import x``: x is a module if there is one by that name
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = kbroker_modules()
    return {name: imports_of(name, path, is_package, modules) for name, (path, is_package) in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (a depth-first search, without recursion)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path = [start]
        on_path = {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
            elif nxt in on_path:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_no_import_cycle_among_kbroker_modules():
    graph = import_graph()
    assert len(graph) > 50 and "kbroker.server" in graph["kbroker.broker_server"]  # the walk sees the package
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),  # a diamond is no circle
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
])
def test_find_cycle_finds_circles_and_only_circles(graph, expected):
    assert find_cycle(graph) == expected


def test_imports_seen_in_functions_and_type_checking_blocks(tmp_path):
    """The circle issue 14 cut ran through both: a lazy import in faults.py and a TYPE_CHECKING one in
    handlers/context.py."""
    pkg = tmp_path / "kbroker"
    (pkg / "handlers").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "server.py").write_text("")
    (pkg / "broker.py").write_text("")
    (pkg / "handlers" / "__init__.py").write_text("")
    (pkg / "faults.py").write_text("def f():\n    from .server import X\n")
    (pkg / "handlers" / "context.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..broker import B\nfrom . import x\n")
    modules = {"kbroker": None, "kbroker.server": None, "kbroker.broker": None, "kbroker.handlers": None,
               "kbroker.faults": None, "kbroker.handlers.context": None}
    assert imports_of("kbroker.faults", pkg / "faults.py", False, modules) == {"kbroker.server"}
    assert imports_of("kbroker.handlers.context", pkg / "handlers" / "context.py", False, modules) == \
        {"kbroker.broker", "kbroker.handlers"}
