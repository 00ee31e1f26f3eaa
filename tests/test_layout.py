"""The house as DESIGN.md draws it: subsystems as subpackages, no import cycle, Qt only under _qt/.

The import graph counts every import in a module, also those inside functions (a lazy import hides
a cycle from Python but not from a reader), and resolves relative imports. An import of a package's
submodule (``from napari_lungkd.io import masks``) is an edge to that submodule.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "napari_lungkd"
QT_MODULES = {"qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt"}
SUBSYSTEMS = (
    "io",
    "io/dicom",
    "lidc",
    "models",
    "inference",
    "scoring",
    "phantom",
    "cli",
    "_napari",
    "_napari/_qt",
)
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every napari_lungkd module that ``path`` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t in known and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, name, known) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    # the checker itself must be able to fail: a -> b at module level, b -> a inside a function
    a = tmp_path / "a.py"
    b = tmp_path / "b.py"
    a.write_text("import b\n")
    b.write_text("def f():\n    from a import g\n")
    graph = {"a": _imports(a, "a", {"a", "b"}), "b": _imports(b, "b", {"a", "b"})}
    assert _cycles(graph) == [["a", "b"]]


def test_no_import_cycle_counting_imports_inside_functions():
    assert _cycles(_graph()) == []


def test_subsystems_are_subpackages():
    for sub in SUBSYSTEMS:
        assert (PACKAGE / sub / "__init__.py").is_file(), f"napari_lungkd/{sub} is not a package"
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    # the top level holds the leaf CtVolume and the shared small rooms, nothing of a subsystem
    assert top == [
        "__init__.py",
        "ct.py",
        "errors.py",
        "files.py",
        "progress.py",
        "windowing.py",
    ], top


def test_no_module_over_400_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules: {long}"


def test_qt_is_imported_only_under_napari_qt():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        if rel[:2] == ("_napari", "_qt"):
            continue
        tree = ast.parse(path.read_text())
        bad = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                if n.split(".")[0] in QT_MODULES or n.startswith("napari.qt"):
                    bad.add(n)
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert not offenders, f"Qt imported outside napari_lungkd/_napari/_qt/: {offenders}"


def test_ct_is_a_leaf():
    assert _graph()["napari_lungkd.ct"] == set()
