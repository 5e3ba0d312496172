"""The import graph of the whole tree (botctl in src/, the edge's botctld in daemon/): no import cycle.

The graph is read from the source with `ast`, not by importing anything: every `import` / `from ... import`
of a botctl or botctld module anywhere in the tree, at module level and inside functions alike (a
function-level import is a deferred edge, not an absent one: hiding a loop in a function does not hide it
here), relative imports resolved. `from botctl import knowledge` is an edge to botctl.knowledge,
`from botctl.knowledge import add` one to the package's ``__init__``. Imports under ``if TYPE_CHECKING:``
never run: they are left out of the runtime graph and kept in the typing graph. Modules named in strings
(cli/lazy.py's table, importlib) are not seen.

The rules:
* the runtime graph has no cycle at all;
* the typing graph (runtime plus TYPE_CHECKING imports) has none either, except inside the sandbox
  (TYPING_CYCLES_ALLOWED below, and why);
* the knowledge package is in no cycle even counting typing imports, and does not import workspaces;
* the connectors import no domain module (only CONNECTORS_MAY_IMPORT);
* every module imports on its own in a fresh interpreter (slow).

    python tests/test_import_cycles.py      # lists every cycle (strongly connected component) found
"""

from __future__ import annotations

import ast
import concurrent.futures
import functools
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
DAEMON = ROOT / "daemon"
# Where each top-level package lives.
TREES = {"botctl": SRC, "botctld": DAEMON}
PACKAGE = "botctl.knowledge"

# Typing-only cycles are allowed only among these modules. The sandbox's declaration type (`Vendor`, in
# vendors/base.py) and the machinery that consumes it (the state, the credentials and seed it installs,
# the OAuth server and its routes) name each other in annotations: a vendor's hooks take the state and
# the authorization server, which hold vendors. The runtime graph between them is acyclic (checked);
# replacing those annotations by protocols would only hide the same mutual reference.
TYPING_CYCLES_ALLOWED = "botctl.sandbox."

# What a connector module may import besides other connector modules: neutral helpers, never a domain
# module (workspaces, connections, identity, oauth, actions, ...), so a connector is data plus calls.
CONNECTORS_MAY_IMPORT = {"botctl.errors", "botctl.secret", "botctl.email_addresses"}


@functools.cache
def _modules() -> dict[str, tuple[Path, bool]]:
    """dotted name -> (file, is a package's __init__)."""
    out = {}
    for top, root in TREES.items():
        for path in sorted((root / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            if is_pkg:
                parts.pop()
            out[".".join(parts)] = (path, is_pkg)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement of the tree, and whether it sits under `if TYPE_CHECKING:`."""

    def walk(node: ast.AST, typing_only: bool) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, typing_only
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from walk(child, True)
            for child in node.orelse:
                yield from walk(child, typing_only)
            return
        for child in ast.iter_child_nodes(node):
            yield from walk(child, typing_only)

    yield from walk(tree, False)


def _known(name: str, modules: dict[str, tuple[Path, bool]]) -> str | None:
    """The deepest module of a dotted name that exists (``botctl.x.y`` -> ``botctl.x`` when y is a name)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


@functools.cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@functools.cache
def import_graph(*, typing: bool = False) -> dict[str, set[str]]:
    """module -> the botctl and botctld modules it imports (with `typing`, also those imported only for type checking)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, (path, is_pkg) in modules.items():
        tree = _parsed(path)
        for node, typing_only in _imports(tree):
            if typing_only and not typing:
                continue
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [_known(a.name, modules) for a in node.names if a.name.split(".")[0] in TREES]
            else:
                if node.level:
                    package = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base_parts = package[: len(package) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] not in TREES:
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in modules else _known(base, modules))
            graph[mod].update(t for t in targets if t is not None and t != mod)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out, key=lambda c: (-len(c), c))


def shortest_cycle(graph: dict[str, set[str]], start: str) -> list[str]:
    """The shortest import chain from `start` back to itself (breadth first), [] if there is none."""
    parent: dict[str, str] = {}
    queue = [start]
    for v in queue:
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start] if v != start else [start, start]
            if w not in parent and w != start:
                parent[w] = v
                queue.append(w)
    return []


def _in_package(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _collapsed(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with the whole knowledge package as one node."""

    def node(m: str) -> str:
        return PACKAGE if _in_package(m) else m

    out: dict[str, set[str]] = {}
    for m, targets in graph.items():
        out.setdefault(node(m), set()).update(node(t) for t in targets if node(t) != node(m))
    return out


def test_the_graph_sees_both_kinds_of_import():
    graph = import_graph()
    # module level (botctl.store imports botctl.errors at the top) and inside a function
    # (workspaces.delete imports the knowledge package to purge the index)
    assert "botctl.errors" in graph["botctl.store"]
    assert PACKAGE in graph["botctl.workspaces"]
    assert any(_in_package(m) for m in graph), "the knowledge package was not found"


def test_the_graph_covers_the_whole_tree():
    graph = import_graph()
    assert {"botctl", "botctl.cli.main", "botctl.sandbox.app", "botctld", "botctld.app"} <= set(graph)
    # botctl reads the one error catalogue from the edge's package: an edge across the two trees
    assert "botctld.error_codes" in graph["botctl.actions"]


def test_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert shortest_cycle(graph, "a") == ["a", "b", "c", "a"]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _described(graph: dict[str, set[str]], found: list[list[str]]) -> list[str]:
    return [f"{len(c)} modules, e.g. " + " -> ".join(shortest_cycle(graph, c[0])) for c in found]


def test_no_import_cycle_at_run_time():
    graph = import_graph()
    found = cycles(graph)
    assert found == [], (
        "import cycles (function-level imports count: move the shared part to a module "
        "both can import, or pass it in):\n  " + "\n  ".join(_described(graph, found))
    )


def test_no_import_cycle_counting_typing_imports_outside_the_sandbox():
    graph = import_graph(typing=True)
    found = [c for c in cycles(graph) if not all(m.startswith(TYPING_CYCLES_ALLOWED) for m in c)]
    assert found == [], "import cycles through TYPE_CHECKING imports:\n  " + "\n  ".join(
        _described(graph, found)
    )


def test_connectors_import_no_domain_module():
    graph = import_graph(typing=True)
    offenders = {
        m: sorted(
            t for t in targets if not t.startswith("botctl.connectors") and t not in CONNECTORS_MAY_IMPORT
        )
        for m, targets in graph.items()
        if m.startswith("botctl.connectors")
    }
    assert not any(offenders.values()), {m: t for m, t in offenders.items() if t}


def _top_level_names(tree: ast.Module) -> set[str] | None:
    """The names a module defines at its top level (None: it has a module `__getattr__`, anything goes)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == "__getattr__" and node in tree.body:
                return None
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def test_every_import_of_ours_names_something_that_exists():
    """`from botctl.x import y` with no module botctl.x.y and no y in botctl.x, or an import of a module that
    is gone: the graph would silently point at the package and a function-level import fail only when run."""
    modules = _modules()
    trees = {m: _parsed(path) for m, (path, _) in modules.items()}
    defined = {m: _top_level_names(tree) for m, tree in trees.items()}
    missing = []
    for mod, (_path, is_pkg) in modules.items():
        for node, _ in _imports(trees[mod]):
            if isinstance(node, ast.Import):
                missing += [
                    f"{mod}: import {a.name}"
                    for a in node.names
                    if a.name.split(".")[0] in TREES and a.name not in modules
                ]
                continue
            if node.level:
                package = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = ".".join(
                    package[: len(package) - (node.level - 1)] + ([node.module] if node.module else [])
                )
            else:
                base = node.module or ""
            if base.split(".")[0] not in TREES:
                continue
            if base not in modules:
                missing.append(f"{mod}: from {base} import ...")
                continue
            names = defined[base]
            missing += [
                f"{mod}: from {base} import {a.name}"
                for a in node.names
                if a.name != "*"
                and f"{base}.{a.name}" not in modules
                and names is not None
                and a.name not in names
            ]
    assert not missing, missing


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    """Each module in a fresh interpreter (the order a test or a lazy import happens to use hides
    nothing). `__main__` modules run something when imported and are left out."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(DAEMON)])}
    names = [m for m in sorted(_modules()) if not m.endswith("__main__")]
    failed = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = pool.map(
            lambda m: (
                m,
                subprocess.run(
                    [sys.executable, "-c", f"import {m}"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                ),
            ),
            names,
        )
        for name, run in runs:
            if run.returncode != 0:
                failed[name] = run.stderr.strip().splitlines()[-1:]
    assert not failed, failed


def test_knowledge_is_in_no_import_cycle():
    for typing in (False, True):
        graph = import_graph(typing=typing)
        found = sorted(
            {
                " -> ".join(shortest_cycle(g, next(m for m in c if _in_package(m))))
                for g in (graph, _collapsed(graph))
                for c in cycles(g)
                if any(_in_package(m) for m in c)
            }
        )
        assert found == [], (
            f"import cycles through {PACKAGE} ({'with' if typing else 'without'} "
            f"TYPE_CHECKING imports), e.g.: {found}"
        )


def test_knowledge_does_not_import_workspaces():
    graph = import_graph(typing=True)
    offenders = {
        m: sorted(t for t in targets if t == "botctl.workspaces")
        for m, targets in graph.items()
        if _in_package(m)
    }
    assert not any(offenders.values()), offenders


if __name__ == "__main__":
    for label, typing in (("runtime imports", False), ("with TYPE_CHECKING imports", True)):
        found = cycles(import_graph(typing=typing))
        print(f"{label}: {len(found)} cycle(s)")
        for c in found:
            print(f"  {len(c)} modules: " + ", ".join(c))
            print("    e.g. " + " -> ".join(shortest_cycle(import_graph(typing=typing), c[0])))
