"""The house's layers: forager's packages import one way, and the modules that say they are pure load no edge.

The import graph is read from the source (every runtime import of a forager module, lazy ones inside
functions included; imports under `if TYPE_CHECKING:` are annotations only and left out). Each unit (a
subpackage, or a top-level module) sits in one layer of `LAYERS`, lowest first, and may import only its own
layer's units and lower ones; the graph between units has no cycle. A new package takes its place in the
list, and a module that has none fails the test until it does.

"Pure" is checked where it is said: every module whose docstring's first line calls it pure is imported in a
fresh interpreter, which must not load Docker's SDK, the HTTP client or the database code.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "forager"

# Lowest first. A unit may import its own layer and those below it, never above.
LAYERS: list[set[str]] = [
    # values and pure formats
    {"forager", "forager.models", "forager.jsontext"},
    {"forager.envspec", "forager.config"},
    # the edges: the container engine, git, the model's HTTP client, the SQL store
    {"forager.engine", "forager.repos", "forager.llm"},
    {"forager.store", "forager.sandbox"},
    # runners above the engine: test suites, image builds, tasks, the agent loop
    {"forager.testing"},
    {"forager.images"},
    {"forager.tasks"},
    {"forager.traces"},
    {"forager.agent", "forager.export", "forager.integrity"},
    # jobs that tie the stages together, and the tools around them
    {"forager.collect", "forager.repair", "forager.serve", "forager.dev", "forager.example_repo",
     "forager.sdist_repos"},
    # the command line: parsing and printing
    {"forager.cli"},
]
# What a pure module must not load (their own top-level names)
EDGES = ("docker", "httpx", "sqlmodel", "sqlalchemy")
PURE_RE = re.compile(r"\bpure\b", re.IGNORECASE)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, ast.Module]:
    return {_module_name(path): ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))
            if "migrations" not in path.parts}


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of import nodes that sit under `if TYPE_CHECKING:`."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(id(inner) for child in node.body for inner in ast.walk(child))
    return hidden


def _imports(module: str, tree: ast.Module) -> set[str]:
    """The forager modules `module` imports at run time (a `from package import name` may name a submodule)."""
    hidden = _type_checking_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "forager")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = module.split(".")[: -node.level or None] if not module.endswith("__init__") else module.split(".")
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == "forager":
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _unit(module: str, units: set[str]) -> str | None:
    """The layered unit a module belongs to: the longest listed prefix."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in units:
            return ".".join(parts[:end])
    return None


def _unit_graph() -> tuple[dict[str, set[str]], list[str]]:
    units = set().union(*LAYERS)
    sources = _sources()
    unplaced = sorted({module for module in sources if _unit(module, units) is None})
    graph: dict[str, set[str]] = {unit: set() for unit in units}
    for module, tree in sources.items():
        here = _unit(module, units)
        for target in _imports(module, tree):
            if target not in sources:  # `from forager.x import name` also names non-modules
                continue
            there = _unit(target, units)
            if here and there and there != here:
                graph[here].add(there)
    return graph, unplaced


def test_every_module_has_a_layer():
    _graph, unplaced = _unit_graph()
    assert not unplaced, f"modules in no layer of LAYERS (add their package to the list): {unplaced}"


def test_packages_import_only_their_layer_and_below():
    layer_of = {unit: index for index, layer in enumerate(LAYERS) for unit in layer}
    graph, _ = _unit_graph()
    upward = sorted(f"{unit} -> {target}" for unit, targets in graph.items() for target in targets
                    if layer_of[target] > layer_of[unit])
    assert not upward, f"imports that point up the layers: {upward}"


def test_the_package_graph_has_no_cycle():
    graph, _ = _unit_graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    cycles: list[list[str]] = []

    def visit(unit: str, path: list[str]) -> None:
        state[unit] = 1
        for target in sorted(graph[unit]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target] if target in path else [unit, target])
            elif target not in state:
                visit(target, [*path, target])
        state[unit] = 2

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [unit])
    assert not cycles, f"package cycles: {[' -> '.join(cycle) for cycle in cycles]}"


def _says_pure(tree: ast.Module) -> bool:
    doc = ast.get_docstring(tree) or ""
    return bool(PURE_RE.search(doc.split("\n\n")[0]))


PURE_MODULES = sorted(module for module, tree in _sources().items() if _says_pure(tree))


def test_modules_that_say_they_are_pure_exist():
    # the check below is only as good as its list: the modules the issue named are in it
    assert {"forager.testing.baseline", "forager.export.common", "forager.export.splice", "forager.tasks.catalog",
            "forager.models", "forager.envspec"} <= set(PURE_MODULES)


def _loaded_edges(module: str) -> list[str]:
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
            f"print(json.dumps(sorted(name for name in {list(EDGES)!r} if name in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pure_modules_load_no_docker_http_or_database_code():
    with ThreadPoolExecutor(max_workers=4) as pool:
        loaded = dict(zip(PURE_MODULES, pool.map(_loaded_edges, PURE_MODULES), strict=True))
    offenders = {module: edges for module, edges in loaded.items() if edges}
    assert not offenders, f"pure modules that load {EDGES}: {offenders}"


@pytest.mark.parametrize("module", ["forager.agent.loop", "forager.llm.types"])
def test_the_agent_loop_and_the_llm_values_load_no_http_client(module):
    assert "httpx" not in _loaded_edges(module)
