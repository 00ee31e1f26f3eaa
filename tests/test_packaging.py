"""The package as a user installs it: light import, a valid npe2 manifest, a wheel that carries it."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GUI_MODULES = {
    "napari",
    "qtpy",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6",
    "magicgui",
    "superqt",
    "vispy",
}


def test_import_is_light():
    code = (
        "import sys, napari_lungkd;"
        "heavy = sorted(m for m in ('torch', 'napari', 'qtpy', 'PyQt5', 'PyQt6', 'SimpleITK') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import napari_lungkd pulled in: {out.stdout.strip()}"


def test_public_names_resolve():
    import napari_lungkd

    for name in (
        "load_ct",
        "read_lidc_xml",
        "segment",
        "Segmenter",
        "run_to_end",
        "make_phantom",
        "CtVolume",
    ):
        assert callable(getattr(napari_lungkd, name)), name


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_compute_core_never_imports_gui():
    offenders = {}
    for path in (REPO / "napari_lungkd").rglob("*.py"):
        if "_napari" in path.relative_to(REPO).parts:
            continue
        bad = _imported_modules(path) & GUI_MODULES
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert not offenders, f"core modules import GUI packages: {offenders}"


def test_manifest_is_valid_and_found():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-lungkd")
    assert manifest.name == "napari-lungkd"
    contrib = manifest.contributions
    assert contrib.readers and any(r.accepts_directories for r in contrib.readers)
    assert contrib.writers and contrib.sample_data and contrib.widgets
    # every command points at an importable callable
    for command in contrib.commands:
        module, _, attr = command.python_name.partition(":")
        mod = __import__(module, fromlist=[attr])
        assert callable(getattr(mod, attr)), command.python_name


def test_wheel_carries_manifest(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        pytest.fail(f"wheel build failed: {out.stderr[-2000:]}")
    (wheel,) = tmp_path.glob("napari_lungkd-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "napari_lungkd/napari.yaml" in names
        assert zf.read("napari_lungkd/napari.yaml") == (REPO / "napari.yaml").read_bytes()
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        assert "napari_lungkd:napari.yaml" in zf.read(entry).decode()
