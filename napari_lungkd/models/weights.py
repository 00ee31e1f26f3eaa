"""Weights files: where they are found, verified, downloaded and installed.

The file format (safetensors + JSON header + content hash) lives in :mod:`napari_lungkd.models.weights_file`;
its names are re-exported here (``save_weights``, ``load_weights``, ``WeightsInfo``...).

Where weights for a model name are found (:func:`resolve_weights`), first hit wins:
an explicit path -> the user's weights folder (``platformdirs.user_data_dir("napari-lungkd")/weights``,
``<name>.safetensors``; ``LUNGKD_WEIGHTS_DIR`` overrides it) -> weights bundled in
``napari_lungkd/models/weights_data/`` (listed in its ``registry.json`` as ``{name: {file, sha256, url?}}``)
-> a registry entry with a ``url``, fetched with pooch into the user cache and checked against its
pinned SHA-256.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from napari_lungkd.errors import WeightsError
from napari_lungkd.files import atomic_path
from napari_lungkd.models.specs import get_spec
from napari_lungkd.models.weights_checks import BUNDLED_DIR, pinned_sha256s
from napari_lungkd.models.weights_file import (
    FORMAT_VERSION,
    METADATA_KEY,
    PICKLE_SUFFIXES,
    SUFFIX,
    WeightsInfo,
    file_sha256,
    load_state_into,
    load_weights,
    save_weights,
    tensors_sha256,
)

__all__ = [
    "FORMAT_VERSION",
    "METADATA_KEY",
    "PICKLE_SUFFIXES",
    "SUFFIX",
    "WeightsInfo",
    "cache_dir",
    "download",
    "file_sha256",
    "install",
    "list_weights",
    "load_state_into",
    "load_weights",
    "pinned_sha256s",
    "read_registry",
    "resolve_weights",
    "save_weights",
    "tensors_sha256",
    "user_weights_dir",
    "verify",
]


# ---- where weights live ----------------------------------------------------------------------


def user_weights_dir() -> Path:
    """The user's weights folder (``LUNGKD_WEIGHTS_DIR`` overrides it)."""
    env = os.environ.get("LUNGKD_WEIGHTS_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("napari-lungkd")) / "weights"


def cache_dir() -> Path:
    env = os.environ.get("LUNGKD_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-lungkd")) / "weights"


def read_registry(path=None) -> dict[str, dict[str, str]]:
    """``{name: {"file", "sha256", "url"?}}`` from the bundled ``registry.json`` (or ``path``)."""
    path = Path(path) if path is not None else BUNDLED_DIR / "registry.json"
    if not path.is_file():
        return {}
    try:
        reg = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError) as exc:
        raise WeightsError(f"Weights registry {path} cannot be read ({exc}).") from exc
    if not isinstance(reg, dict):
        raise WeightsError(f"Weights registry {path} is not a JSON object of name -> entry.")
    for name, entry in reg.items():
        if not isinstance(entry, dict) or "file" not in entry or "sha256" not in entry:
            raise WeightsError(f"Weights registry {path} entry {name!r} needs 'file' and 'sha256'.")
    return reg


def download(url: str, sha256: str | None, fname: str | None = None, dest=None) -> Path:
    """Fetch ``url`` with pooch into the cache, checked against ``sha256`` (refused if it differs)."""
    import pooch

    dest = Path(dest) if dest is not None else cache_dir()
    fname = fname or url.rstrip("/").rsplit("/", 1)[-1] or "weights.safetensors"
    try:
        got = pooch.retrieve(
            url,
            known_hash=f"sha256:{sha256}" if sha256 else None,
            fname=fname,
            path=dest,
            progressbar=False,
        )
    except ValueError as exc:  # pooch: hash mismatch
        raise WeightsError(
            f"Download of {url} was refused: its SHA-256 is not the pinned {sha256} ({exc})."
        ) from exc
    except Exception as exc:  # requests/urllib errors
        raise WeightsError(f"Download of {url} failed ({type(exc).__name__}: {exc}).") from exc
    return Path(got)


def resolve_weights(model_name: str, path=None, registry=None) -> Path:
    """Find the weights file for ``model_name``: explicit path, user folder, bundled, registry URL."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsError(f"Weights file {p} does not exist.")
        return p.absolute()  # provenance names the file every result came from
    name = get_spec(model_name).name
    looked = []
    user = user_weights_dir() / f"{name}{SUFFIX}"
    looked.append(str(user))
    if user.is_file():
        return user
    reg = read_registry(registry)
    entry = reg.get(name)
    if entry is not None:
        base = Path(registry).parent if registry is not None else BUNDLED_DIR
        bundled = base / entry["file"]
        looked.append(str(bundled))
        if bundled.is_file():
            return bundled
        if entry.get("url"):
            return download(entry["url"], entry["sha256"], fname=Path(entry["file"]).name)
    raise WeightsError(
        f"No weights for model {name!r} were found (looked in {', '.join(looked)}); train them with "
        f"src_training and install them with `lungkd weights install FILE`, or pass a weights file path."
    )


def expected_hash_for(path: Path, registry=None) -> str | None:
    """The pinned SHA-256 of a bundled file, if the registry lists it."""
    reg = read_registry(registry)
    base = Path(registry).parent if registry is not None else BUNDLED_DIR
    for entry in reg.values():
        if (base / entry["file"]).resolve() == Path(path).resolve():
            return entry["sha256"]
    return None


def verify(path, registry=None) -> WeightsInfo:
    """Check one weights file fully (own content hash, pinned hash if bundled, builds and loads)."""
    from napari_lungkd.models.specs import build_model

    path = Path(path)
    state, info = load_weights(
        path, expected_sha256=expected_hash_for(path, registry), registry=registry
    )
    load_state_into(build_model(info.spec), state, path)
    return info


def install(
    source: str, sha256: str | None = None, dest_dir=None, overwrite: bool = True
) -> WeightsInfo:
    """Copy (or download) a weights file into the user folder as ``<model>.safetensors``, verified.

    With ``overwrite=False`` an installed file with other contents is kept and a WeightsError
    says so (installing the same file again is fine)."""
    dest_dir = Path(dest_dir) if dest_dir is not None else user_weights_dir()
    if source.startswith(("http://", "https://")):
        src = download(source, sha256)
    else:
        src = Path(source).expanduser()
        if not src.is_file():
            raise WeightsError(f"Weights file {src} does not exist.")
        if sha256 and file_sha256(src) != sha256.lower():
            raise WeightsError(
                f"Weights file {src} does not have the SHA-256 given ({sha256[:12]}...)."
            )
    if src.suffix != SUFFIX:
        raise WeightsError(f"Weights file {src} is not a {SUFFIX} file; export it first.")
    info = verify(src)
    target = dest_dir / f"{info.spec.name}{SUFFIX}"
    if not overwrite and target.is_file() and file_sha256(target) != info.sha256:
        raise WeightsError(
            f"{target} is already installed (SHA-256 {file_sha256(target)[:12]}...); it was kept. "
            "Install with overwrite to replace it."
        )
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)
    return replace(info, path=target)


def list_weights(registry=None) -> list[dict[str, Any]]:
    """Every weights file known: user folder and bundled ones, and registry entries not yet fetched."""
    rows: list[dict[str, Any]] = []
    udir = user_weights_dir()
    for p in sorted(udir.glob(f"*{SUFFIX}")) if udir.is_dir() else []:
        rows.append({"name": p.stem, "where": "user", "path": str(p), "sha256": file_sha256(p)})
    base = Path(registry).parent if registry is not None else BUNDLED_DIR
    for name, entry in read_registry(registry).items():
        p = base / entry["file"]
        where = "bundled" if p.is_file() else ("registry" if entry.get("url") else "missing")
        rows.append(
            {
                "name": name,
                "where": where,
                "path": str(p) if p.is_file() else entry.get("url", ""),
                "sha256": entry["sha256"],
            }
        )
    return rows
