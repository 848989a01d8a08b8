"""`library/` depends one way, and no module imports itself back through others.

Every import counts: module level, inside functions and under `if TYPE_CHECKING:` alike, since each of them is a
dependency a reader has to follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "library"

# Lowest first. A package may import its own layer's and lower layers' modules, never a higher layer's.
LAYERS: list[set[str]] = [
    {"errors", "atomic", "plotting", "image_files"},
    {"config", "text"},
    {"models"},
    {"data"},
    {"sampling"},
    {"plugins"},  # the training loop's plug-in interface: what regularization and validation implement
    {"regularization", "similarity", "validation"},
    {"training"},
    {"generation"},
    {"quickstart", "tiny", "sample_data", "prompts", "world", "workflows"},  # world.pretrain will use training
]


def module_name(path: Path) -> str:
    parts = ["library", *path.relative_to(LIBRARY).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The library modules `path` imports (`from . import x` names module x when x is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in modules and c != name}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(LIBRARY.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def top_level(module: str) -> str:
    return module.split(".")[1] if module != "library" else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


def test_every_package_has_a_layer():
    placed = set().union(*LAYERS)
    assert {top_level(m) for m in import_graph()} - {""} <= placed


def test_packages_depend_one_way():
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    upward = sorted(f"{a} -> {b}" for a, targets in import_graph().items() for b in targets
                    if top_level(a) and top_level(b) and top_level(a) != top_level(b)
                    and layer[top_level(b)] > layer[top_level(a)])
    assert upward == []


def test_the_checks_see_what_they_check():
    """The walk finds relative, lazy and TYPE_CHECKING imports, and `cycles` finds a cycle."""
    graph = import_graph()
    assert "library.plugins" in graph["library.training.loop"]  # `from ..plugins import ...`
    assert "library.models.sd_model" in graph["library.plugins"]  # under `if TYPE_CHECKING:`
    assert "library.sampling.generate" in graph["library.regularization.stream"]  # inside a method
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
