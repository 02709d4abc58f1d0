"""The packages of seq2seq form layers: every import between two of them points down.

A cycle between packages (padding <-> models, training <-> inference were two) means neither can be
read, tested or replaced without the other; a shared piece then belongs in a lower layer.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from seq2seq.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "seq2seq"

# Bottom first. A package imports only from the layers below its own, never from its own layer.
LAYERS = [
    {"errors", "config", "ops"},
    {"files"},  # its atomic writers raise DiskFull
    {"data"},
    {"padding"},
    {"models"},
    {"training"},
    {"inference", "tracking"},
    {"serving"},
    {"train", "cli", "sweeps"},
]


def unit(module: str) -> str:
    """seq2seq.models.decoder -> models; seq2seq.errors -> errors."""
    return module.split(".")[1]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports_between_units() -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) -> the files with such an import."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = unit(module_name(path)) if path.parent != PACKAGE else path.stem
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("seq2seq.") and unit(name) != source:
                    found.setdefault((source, unit(name)), []).append(str(path.relative_to(PROJECT_ROOT)))
    return found


def find_cycle(edges: set[tuple[str, str]]) -> list[str] | None:
    """A cycle in the directed graph as [a, b, ..., a], or None."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == ["a", "b", "c", "a"]
    assert find_cycle({("a", "b"), ("b", "c"), ("a", "c")}) is None


def test_no_cycle_between_packages() -> None:
    found = imports_between_units()
    cycle = find_cycle(set(found))
    assert cycle is None, (
        "import cycle "
        + " -> ".join(cycle)
        + ": "
        + "; ".join(
            f"{a} -> {b} in {', '.join(sorted(set(found[(a, b)])))}" for a, b in itertools.pairwise(cycle)
        )
    )


def test_every_import_points_down_the_layers() -> None:
    layer = {name: depth for depth, names in enumerate(LAYERS) for name in names}
    found = imports_between_units()
    assert ("models", "padding") in found and ("cli", "inference") in found  # the walk sees imports
    unknown = {name for pair in found for name in pair} - set(layer)
    assert not unknown, f"place {sorted(unknown)} in LAYERS"
    upward = {pair: files for pair, files in found.items() if layer[pair[0]] <= layer[pair[1]]}
    assert not upward, "imports that do not point down: " + "; ".join(
        f"{a} -> {b} in {', '.join(sorted(set(files)))}" for (a, b), files in sorted(upward.items())
    )
