"""Generators of hostile LIDC XML and weights files for tests/fuzz/ (CT inputs: hostile_inputs.py).

XML cases say what ``annotate`` must do: ``"refuse"`` (one LidcXmlError sentence naming the file
and containing ``says``) or ``"warn"`` (it finishes, quickly, with a warning containing ``says``).
Weights cases are all refused (one WeightsError sentence naming the file).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from hostile_inputs import Case
from lidc_xml_builders import (
    SERIES,
    Z,
    lidc_xml,
    nodule_xml,
    roi_xml,
    session_xml,
    square,
)

# ---- LIDC XML --------------------------------------------------------------------------------


def _xml(text: str):
    def build(tmp: Path) -> Path:
        path = tmp / "read.xml"
        path.write_bytes(text.encode("utf-8"))
        return path

    return build


def _one(*rois, series=SERIES):
    """A file of one reader and one large nodule, plus a sound nodule on z = -10 that must stay."""
    good = nodule_xml("good", [roi_xml(-10.0, square(100, 100, 6))])
    return lidc_xml([session_xml([nodule_xml("N1", list(rois)), good])], series=series)


def _many_rois(n: int) -> str:
    tri = [(100, 100), (104, 100), (102, 104)]
    return lidc_xml([session_xml([nodule_xml("N1", [roi_xml(Z[i % 5], tri) for i in range(n)])])])


def _many_nodules(n: int) -> str:
    tri = [(100, 100), (104, 100), (102, 104)]
    nodules = [nodule_xml(f"N{i}", [roi_xml(-10.0, tri)]) for i in range(n)]
    return lidc_xml([session_xml(nodules)])


def _encoding(name: str) -> str:
    return lidc_xml([session_xml()]).replace('encoding="UTF-8"', f'encoding="{name}"')


def _foreign_uids() -> str:
    rois = [roi_xml(z, square(60, 60, 5), sop=f"9.9.9.{i}") for i, z in enumerate(Z[1:4])]
    return lidc_xml([session_xml([nodule_xml("N1", rois)])], series="")


def _nan_locus() -> str:
    nn = (
        "<nonNodule><nonNoduleID>nn</nonNoduleID><imageZposition>-10</imageZposition>"
        "<locus><xCoord>NaN</xCoord><yCoord>5</yCoord></locus></nonNodule>"
    )
    good = nodule_xml("good", [roi_xml(-10.0, square(100, 100, 6))])
    return lidc_xml([session_xml([good], [nn])])


def _inf_rating() -> str:
    chars = {"subtlety": "inf", "malignancy": "nan"}
    return lidc_xml([session_xml([nodule_xml("N1", [roi_xml(-10.0, square(9, 9, 4))], chars)])])


XML_CASES = [
    Case("xml-coordinate-1e8", _xml(_one(roi_xml(-12.5, [(1e8, 5), (5, 1e8), (5, 5)]))), "warn", "left out"),
    Case("xml-coordinate-50000", _xml(_one(roi_xml(-12.5, [(50000, 5), (5, 50000), (5, 5)]))), "warn", "far outside"),
    Case("xml-coordinate-nan", _xml(_one(roi_xml(-12.5, [("NaN", 5), (9, 9), (5, 9)]))), "warn", "left out"),
    Case("xml-coordinate-inf", _xml(_one(roi_xml(-12.5, [("inf", 5), (9, 9), (5, 9)]))), "warn", "left out"),
    Case("xml-coordinate-negative-1e8", _xml(_one(roi_xml(-12.5, [(-1e8, -1e8), (9, 9), (5, 9)]))), "warn", "left out"),
    Case("xml-partly-off-grid", _xml(_one(roi_xml(-12.5, square(250, 250, 20)))), "warn", "beyond"),
    Case("xml-z-nan", _xml(_one(roi_xml(0.0, square(9, 9, 4), z_text="NaN"))), "warn", "left out"),
    Case("xml-z-inf", _xml(_one(roi_xml(0.0, square(9, 9, 4), z_text="-inf"))), "warn", "left out"),
    Case("xml-non-nodule-nan", _xml(_nan_locus()), "warn", "left out"),
    Case("xml-rating-inf", _xml(_inf_rating()), "warn", ""),
    Case("xml-no-series-foreign-uids", _xml(_foreign_uids()), "warn", "placed by z alone"),
    Case("xml-100000-rois", _xml(_many_rois(100_000)), "refuse", "ROIs"),
    Case("xml-2500-nodules", _xml(_many_nodules(2500)), "refuse", "nodule outlines"),
    Case("xml-encoding-x-bogus", _xml(_encoding("x-bogus")), "refuse", "encoding"),
    Case("xml-encoding-utf-7", _xml(_encoding("UTF-7")), "refuse", "encoding"),
    Case("xml-encoding-ebcdic", _xml(_encoding("ebcdic-cp-us")), "refuse", "XML"),
]  # fmt: skip


# ---- weights ---------------------------------------------------------------------------------


def tiny_state(seed: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    return {"conv.weight": torch.randn(4, 1, 3, 3, generator=g), "conv.bias": torch.zeros(4)}


def write_weights(path: Path, state: dict, header: dict, rehash: bool = True) -> Path:
    """A safetensors file with ``header`` as given; ``rehash`` recomputes both hashes, as an
    attacker who knows the format would (the checks must then still refuse impossible values)."""
    from safetensors.torch import save_file

    from napari_lungkd.models.weights_file import header_sha256, tensors_sha256

    header = dict(header)
    if rehash:
        header["tensors_sha256"] = tensors_sha256(state)
        header.pop("header_sha256", None)
        if header.get("format", 1) >= 2:
            try:
                header["header_sha256"] = header_sha256(header)
            except ValueError:  # NaN/inf cannot be hashed as canonical JSON: left without
                pass
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(path),
        metadata={"lungkd": json.dumps(header)},
    )
    return path


def _saved(tmp: Path) -> tuple[Path, dict]:
    """A sound format-2 file written by save_weights, and its header."""
    from safetensors import safe_open

    from napari_lungkd.models.specs import get_spec
    from napari_lungkd.models.weights_file import save_weights

    path = tmp / "student.safetensors"
    save_weights(path, tiny_state(), get_spec("student"))
    with safe_open(str(path), framework="pt") as f:
        return path, json.loads(f.metadata()["lungkd"])


def _header_edit(edit, rehash: bool):
    def build(tmp: Path) -> Path:
        path, header = _saved(tmp)
        edit(header)
        return write_weights(path, tiny_state(), header, rehash=rehash)

    return build


def _spec(**values):
    return _header_edit(lambda h: h["spec"].update(values), rehash=True)


def _state_edit(edit):
    def build(tmp: Path) -> Path:
        path, header = _saved(tmp)
        state = tiny_state()
        edit(state)
        return write_weights(path, state, header, rehash=True)

    return build


def _int8(scale_shape, value=0.01):
    import torch

    def edit(state):
        w = state.pop("conv.weight")
        state["conv.weight.__int8__"] = torch.zeros(w.shape, dtype=torch.int8)
        state["conv.weight.__scale__"] = torch.full(scale_shape, value)

    return _state_edit(edit)


def _set(name, value):
    def edit(state):
        state[name] = state[name].clone()
        state[name].view(-1)[0] = value

    return _state_edit(edit)


def _v1_unpinned(tmp: Path) -> Path:
    path, header = _saved(tmp)
    header["format"] = 1
    header.pop("header_sha256")
    return write_weights(path, tiny_state(), header, rehash=True)


def _zip_bomb(tmp: Path) -> Path:
    """A PyTorch-style zip whose directory declares 4 GB for an entry of a few bytes."""
    import struct

    path = tmp / "student.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data/0", b"\0" * 4096)
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.index(signature)
        struct.pack_into("<I", raw, at + offset, 4_000_000_000)
    path.write_bytes(bytes(raw))
    return path


def _truncated(tmp: Path) -> Path:
    path, _ = _saved(tmp)
    path.write_bytes(path.read_bytes()[:200])
    return path


def _not_object(tmp: Path) -> Path:
    from safetensors.torch import save_file

    path = tmp / "student.safetensors"
    save_file(tiny_state(), str(path), metadata={"lungkd": "[1, 2, 3]"})
    return path


WEIGHTS_CASES = [
    Case("weights-threshold-edited", _header_edit(lambda h: h["spec"].update(threshold=0.999), rehash=False), "refuse", "header check"),
    Case("weights-metrics-edited", _header_edit(lambda h: h.update(metrics={"dice": 0.99}), rehash=False), "refuse", "header check"),
    Case("weights-header-hash-removed", _header_edit(lambda h: h.pop("header_sha256"), rehash=False), "refuse", "header_sha256"),
    Case("weights-format-1-unpinned", _v1_unpinned, "refuse", "format 1"),
    Case("weights-format-99", _header_edit(lambda h: h.update(format=99), rehash=True), "refuse", "newer"),
    Case("weights-std-zero", _spec(std_hu=0.0), "refuse", "std_hu"),
    Case("weights-std-negative", _spec(std_hu=-5.0), "refuse", "std_hu"),
    Case("weights-size-multiple-zero", _spec(size_multiple=0), "refuse", "size_multiple"),
    Case("weights-size-multiple-negative", _spec(size_multiple=-32), "refuse", "size_multiple"),
    Case("weights-size-multiple-float", _spec(size_multiple=32.5), "refuse", "size_multiple"),
    Case("weights-hu-window-inf", _spec(hu_window=[-1000.0, 1e400]), "refuse", "header"),
    Case("weights-mean-nan", _spec(mean_hu=float("nan")), "refuse", "header"),
    Case("weights-target-spacing-negative", _spec(target_spacing_mm=-1.0), "refuse", "target_spacing_mm"),
    Case("weights-threshold-one", _spec(threshold=1.0), "refuse", "threshold"),
    Case("weights-nan-tensor", _set("conv.weight", float("nan")), "refuse", "NaN or infinite"),
    Case("weights-inf-tensor", _set("conv.bias", float("inf")), "refuse", "NaN or infinite"),
    Case("weights-int8-scale-wrong-shape", _int8((4, 9)), "refuse", "scale"),
    Case("weights-int8-scale-zero", _int8((4, 1, 1, 1), 0.0), "refuse", "scale"),
    Case("weights-int8-scale-nan", _int8((4, 1, 1, 1), float("nan")), "refuse", "scale"),
    Case("weights-pt-zip-bomb", _zip_bomb, "refuse", "zip bomb"),
    Case("weights-truncated", _truncated, "refuse", "not a readable"),
    Case("weights-header-not-object", _not_object, "refuse", "not a JSON object"),
]  # fmt: skip

__all__ = ["XML_CASES", "WEIGHTS_CASES", "write_weights", "tiny_state", "np"]
