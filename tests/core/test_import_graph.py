"""The installed package's import graph points one way and has no cycles.

Read statically (``ast``) from the installed package, so it sees every import: module level, inside
functions, and under ``TYPE_CHECKING`` (a type-only cycle is still two modules that cannot be read apart).
Layers: the core (``agentkit.*``) never imports ``agentkit.envs``/``synth``/``train`` (it reaches them by
name, through the registries' entry points and the CLI's command table); ``agentkit.envs`` never imports
``synth`` or ``train``; ``agentkit.train`` never imports ``synth``.
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path

SUBPACKAGES = ("agentkit.envs", "agentkit.synth", "agentkit.train")
FORBIDDEN = {
    "agentkit": SUBPACKAGES,
    "agentkit.envs": ("agentkit.synth", "agentkit.train"),
    "agentkit.train": ("agentkit.synth",),
    "agentkit.synth": (),
}


def _folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def modules() -> dict[str, Path]:
    """Every module of the installed package, by its import name."""
    found: dict[str, Path] = {}
    for package in ("agentkit", *SUBPACKAGES):
        root = _folder(package)
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts or any(not part.isidentifier() for part in parts):
                continue
            name = ".".join((package, *parts))
            found.setdefault(name.removesuffix(".__init__"), path)
    return found


def _target(name: str, known: dict[str, Path]) -> str | None:
    """The module that ``import name`` executes last: the longest known prefix of the dotted name."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("agentkit") and (module := _target(target, known)) and module != name:
                    edges[name].add(module)
    return edges


def _layer(module: str) -> str:
    return next(
        (package for package in SUBPACKAGES if module == package or module.startswith(package + ".")),
        "agentkit",
    )


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_the_walk_sees_the_whole_package():
    known = modules()
    assert {
        "agentkit.cli",
        "agentkit.loop",
        "agentkit.envs.math.env",
        "agentkit.synth.cli",
        "agentkit.train.stages",
    } <= set(known)
    edges = graph()
    assert "agentkit.errors" in edges["agentkit.loop"]
    assert "agentkit.train.stages" in edges["agentkit.train.cli"]  # an import inside a function counts


def test_no_import_cycles():
    cycles = _cycles(graph())
    shown = ["\n  ".join(f"{m} -> {sorted(graph()[m] & set(c))}" for m in c) for c in cycles]
    assert not cycles, "import cycles:\n  " + "\n\n  ".join(shown)


def test_layers_point_one_way():
    upward = sorted(
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in targets
        if _layer(target) in FORBIDDEN[_layer(source)]
    )
    assert not upward, "upward imports:\n  " + "\n  ".join(upward)


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
