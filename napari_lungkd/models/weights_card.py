"""What a weights file is, in one line: what it was trained on and how it scores, synthetic and real.

    describe_weights("student") -> "student weights 1e7677ab2b5a (bundled): trained on synthetic
        phantoms only (34 training patients); held-out synthetic test (7 scans): Dice per nodule
        0.22, sensitivity 0.33 at 34.3 FP/scan; real CT: LIDC-IDRI-0001: finds the nodule ..."
    describe_provenance(provenance_dict) -> the same line for the weights a result came from

The facts come from the weights header (``data_split``, ``metrics``, ``training``) and, for the
real-CT score that the header cannot hold (it is measured after export), from the ``real_ct``
note of the file's entry in ``weights_data/registry.json``, matched by SHA-256. The CLI prints
the line once per run and writes it into ``report.json``; every mask sidecar carries it; the
widget should show it beside the model choice. Reads headers only (no tensors, no torch).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

RANDOM = "random weights (testing only): not trained, the masks mean nothing"
_MAX_HEADER = 32 << 20


def read_header(path) -> dict[str, Any]:
    """The napari-lungkd metadata of a safetensors weights file (``{}`` when there is none)."""
    from napari_lungkd.models.weights_file import METADATA_KEY

    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > _MAX_HEADER:
                return {}
            head = json.loads(fh.read(n))
        return json.loads(head.get("__metadata__", {}).get(METADATA_KEY, "{}"))
    except (OSError, ValueError, struct.error, AttributeError, TypeError):
        return {}


def _registry_entry(sha256: str | None) -> tuple[str | None, dict]:
    from napari_lungkd.errors import WeightsError
    from napari_lungkd.models.weights import read_registry

    try:
        registry = read_registry()
    except WeightsError:
        return None, {}
    for name, entry in registry.items():
        if sha256 and entry.get("sha256") == sha256:
            return name, entry
    return None, {}


def _data(metadata: dict) -> str:
    td = metadata.get("training_data") or {}
    if td.get("phantoms"):
        hosts = list(td.get("real_hosts") or ())
        text = f"trained on {td['phantoms']}"
        if hosts:
            each = td.get("inserted_per_host")
            copies = f"{each} copies each of " if each else ""
            text += (
                f" and {copies}{len(hosts)} real chests with nodules inserted ({', '.join(hosts)})"
            )
        if td.get("seed") is not None:
            text += f", seed {td['seed']}"
        return text
    patients = (metadata.get("data_split") or {}).get("patients") or {}
    train = [str(p) for p in patients.get("train") or ()]
    if not train:
        return "training data not stated in the file"
    synthetic = sum(p.startswith("LKD-PHANTOM") for p in train)
    if synthetic == len(train):
        return f"trained on synthetic phantoms only ({len(train)} training patients)"
    if synthetic == 0:
        return f"trained on real CT ({len(train)} training patients)"
    return f"trained on {synthetic} synthetic and {len(train) - synthetic} real training patients"


def _scores(metadata: dict) -> str | None:
    ev = (metadata.get("metrics") or {}).get("evaluation") or {}
    meta = (metadata.get("metrics") or {}).get("meta") or {}
    if not ev:
        return None
    parts = []
    if ev.get("nodule_dice") is not None:
        parts.append(f"Dice per nodule {float(ev['nodule_dice']):.2f}")
    if ev.get("sensitivity") is not None:
        fp = ev.get("fp_per_scan")
        at = f" at {float(fp):.1f} FP/scan" if fp is not None else ""
        parts.append(f"sensitivity {float(ev['sensitivity']):.2f}{at}")
    if not parts:
        return None
    n = meta.get("n_cases")
    test = [
        str(p) for p in ((metadata.get("data_split") or {}).get("patients") or {}).get("test") or ()
    ]
    kind = " synthetic" if test and all(p.startswith("LKD-PHANTOM") for p in test) else ""
    where = f"{n or ''} held-out{kind} {meta.get('part', 'test')} scans".strip()
    return f"{where}: {', '.join(parts)}"


def describe_metadata(
    name: str, metadata: dict | None, sha256: str | None = None, where: str | None = None
) -> str:
    """One line about weights with this header (``metadata``) and file hash."""
    metadata = metadata or {}
    _, entry = _registry_entry(sha256)
    ident = f"{name} weights {sha256[:12]}" if sha256 else f"{name} weights"
    if where:
        ident += f" ({where})"
    parts = [_data(metadata)]
    scores = _scores(metadata)
    if scores:
        parts.append(scores)
    real = entry.get("real_ct")
    parts.append(f"real CT: {real}" if real else "real CT: not measured for this file")
    return f"{ident}: {'; '.join(parts)}"


def where_label(path) -> str:
    """``bundled``, ``installed`` (the user's weights folder) or the file's path."""
    from napari_lungkd.models.weights import BUNDLED_DIR, user_weights_dir

    folder = Path(path).parent.resolve()
    if folder == BUNDLED_DIR.resolve():
        return "bundled"
    if folder == Path(user_weights_dir()).resolve():
        return "installed"
    return str(path)


def describe_weights(name: str = "student", weights=None) -> str:
    """One line about the weights that ``Segmenter(name, weights)`` would use (found as it would)."""
    from napari_lungkd.errors import LungKDError
    from napari_lungkd.models.weights import read_registry, resolve_weights
    from napari_lungkd.models.weights_file import file_sha256

    if weights == "random":
        return f"{name}: {RANDOM}"
    try:
        path = resolve_weights(name, weights)
    except LungKDError as exc:
        return f"{name}: no weights ({exc})"
    path = Path(path)
    sha, where = None, where_label(path)
    if where == "bundled":  # its SHA-256 is pinned in the registry (checked when it is loaded)
        sha = next(
            (e["sha256"] for e in read_registry().values() if e.get("file") == path.name), None
        )
    return describe_metadata(name, read_header(path), sha or file_sha256(path), where)


def describe_provenance(provenance: dict | None) -> str | None:
    """The line for the weights a result came from (its provenance dict); None if it names none."""
    prov = provenance or {}
    if prov.get("weights_description"):
        return str(prov["weights_description"])
    name, sha = prov.get("model"), prov.get("weights_sha256")
    if not name:
        return None
    if not sha or str(sha).startswith("random"):
        return f"{name}: {RANDOM}"
    path = prov.get("weights_path")
    metadata = read_header(path) if path and Path(path).is_file() else {}
    return describe_metadata(name, metadata, str(sha))
