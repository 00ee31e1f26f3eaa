"""The real hosts of the training mix in one small file, for a machine without ``$LUNGKD_REALDATA``.

    python -m src_training.hosts_pack --out data/hosts_pack.npz \
        --hosts pyradiomics_lung2,Lung_Dx-A0001,elastix_baseline,elastix_followup

A GPU machine gets the working tree and at most 64 MiB of other files (``carry``), not the real
chests. This packs the trainable hosts (:mod:`src_training.real_chests`; the CC BY-NC scans are
refused) into one compressed ``.npz``: per host the HU volume (int16) cropped to the lungs' box
(:func:`~napari_lungkd.inference.lung_region.find_lung_region`) plus :data:`MARGIN_MM`, its
geometry (spacing, the origin moved to the crop's first voxel, direction), patient and the
lesion mask of :func:`~src_training.real_chests.lesion_mask` (what training must ignore) packed as
bits. HU is stored as differences along x (:data:`CODEC`), which deflate squeezes a little better
than raw int16 (the four trainable hosts: 22.2 MiB against 24.2). A pack over the limit is refused and not written.
``python -m src_training.mix --hosts-pack FILE`` reads it back with :func:`load_pack`.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_lungkd.errors import TrainingError
from napari_lungkd.progress import Progress, run_with_tqdm
from src_training import run_main

PACK_FORMAT = 1
LIMIT_BYTES = 64 * 2**20
"""What one carried file may weigh on the GPU machine (its whole carry is 64 MiB)."""
MARGIN_MM = 10.0
"""The crop keeps this much around the lungs (chest wall, pleura: where juxtapleural nodules go)."""
CODEC = "int16-diff-x"
"""HU stored as ``np.diff(hu, axis=2, prepend=0)`` (int16, wrapping); ``cumsum`` undoes it exactly."""


@dataclass(frozen=True, eq=False)
class PackedHost:
    """One real host read back from a pack: the cropped CT and its ignore mask."""

    name: str
    patient: str
    ct: object  # napari_lungkd.ct.CtVolume
    ignore: np.ndarray  # bool (z, y, x): the host's own lesions
    crop_zyx: tuple[int, int, int]  # where the crop starts in the original scan


def crop_box(hu: np.ndarray, spacing_mm) -> tuple[slice, slice, slice]:
    """The lungs' box of ``hu`` plus :data:`MARGIN_MM` (the whole volume when no lung is found)."""
    from napari_lungkd.inference.lung_region import find_lung_region

    margin_slices = int(np.ceil(MARGIN_MM / float(spacing_mm[0])))
    region = find_lung_region(hu, spacing_mm, MARGIN_MM, margin_slices, multiple=1)
    if not region.found:
        return (slice(None),) * 3
    y0, y1, x0, x1 = region.box_yx
    z = region.z_indices
    return slice(int(z[0]), int(z[-1]) + 1), slice(y0, y1), slice(x0, x1)


def _encode(hu: np.ndarray) -> np.ndarray:
    hu = np.asarray(hu)
    if hu.dtype != np.int16:
        hu = np.clip(np.round(hu), -32768, 32767).astype(np.int16)
    return np.diff(hu, axis=2, prepend=np.int16(0)).astype(np.int16)


def _decode(diff: np.ndarray) -> np.ndarray:
    return np.cumsum(diff, axis=2, dtype=np.int16)


def pack_ct(name: str, patient: str, ct, marked, source: str = "") -> tuple[dict, dict]:
    """``(meta, arrays)`` of one host: its HU cropped to the lungs (int16, :data:`CODEC`), the
    ``marked`` lesions as bits, and the crop's geometry."""
    spacing = tuple(float(s) for s in ct.spacing_mm)
    box = crop_box(ct.hu, spacing)
    hu = np.asarray(ct.hu)[box]
    ignore = np.asarray(marked, dtype=bool)[box]
    start = tuple(int(s.start or 0) for s in box)
    meta = {
        "name": name,
        "patient": patient,
        "source": source,
        "shape": list(hu.shape),
        "original_shape": list(ct.hu.shape),
        "crop_start_zyx": list(start),
        "spacing_mm": list(spacing),
        "origin_mm": [float(v) for v in ct.index_to_lps(np.asarray(start, float))],
        "direction": np.asarray(ct.direction, float).tolist(),
        "ignored_voxels": int(ignore.sum()),
        "series_uid": ct.series_uid,
    }
    return meta, {f"{name}/hu": _encode(hu), f"{name}/ignore": np.packbits(ignore.ravel())}


def pack_chest(chest, root=None) -> tuple[dict, dict]:
    """:func:`pack_ct` of a real chest of :mod:`src_training.real_chests` (its lesions marked)."""
    from napari_lungkd.io import load_ct
    from src_training.real_chests import check_trainable, lesion_mask

    check_trainable(chest)
    if not chest.path(root).exists():
        raise TrainingError(f"Real host {chest.name} is not here: {chest.path(root)} is missing.")
    ct = load_ct(chest.path(root))
    return pack_ct(chest.name, chest.patient, ct, lesion_mask(chest, ct, root), str(chest.image))


def write_pack(out, metas: list[dict], arrays: dict, limit_bytes: int = LIMIT_BYTES) -> int:
    """Write the pack atomically; returns its bytes. TrainingError (nothing written) when it
    weighs more than ``limit_bytes``."""
    from napari_lungkd.files import atomic_path

    header = {"format": PACK_FORMAT, "codec": CODEC, "margin_mm": MARGIN_MM, "hosts": metas}
    arrays = {**arrays, "meta": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    with atomic_path(Path(out)) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        size = tmp.stat().st_size
        if size > limit_bytes:
            names = ", ".join(m["name"] for m in metas)
            raise TrainingError(
                f"The pack of {names} weighs {size / 2**20:.1f} MiB, over the "
                f"{limit_bytes / 2**20:.0f} MiB a GPU machine can be carried; pack fewer hosts."
            )
    return size


def iter_pack(out, names, root=None, limit_bytes: int = LIMIT_BYTES):
    """Generator: pack the real hosts ``names`` into ``out`` (yields Progress); returns its bytes.

    TrainingError (nothing written) for an unknown, absent or CC BY-NC host, or a pack over
    ``limit_bytes``."""
    from src_training.real_chests import CHESTS, check_trainable

    by_name = {c.name: c for c in CHESTS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise TrainingError(f"Unknown real host {unknown[0]} (known: {', '.join(by_name)}).")
    if not names:
        raise TrainingError("No hosts to pack: give --hosts.")
    for name in names:
        check_trainable(by_name[name])
    metas, arrays = [], {}
    for k, name in enumerate(names):
        yield Progress(k, len(names), "pack", name)
        meta, arr = pack_chest(by_name[name], root)
        metas.append(meta)
        arrays.update(arr)
    size = write_pack(out, metas, arrays, limit_bytes)
    yield Progress(len(names), len(names), "pack")
    return size


def load_pack(path) -> list[PackedHost]:
    """The hosts of a pack written by :func:`iter_pack` (TrainingError if it is not one)."""
    from napari_lungkd.ct import CtVolume

    path = Path(path)
    if not path.is_file():
        raise TrainingError(
            f"Hosts pack {path} does not exist (python -m src_training.hosts_pack)."
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(z["meta"].tobytes().decode())
            if header.get("format") != PACK_FORMAT or header.get("codec") != CODEC:
                raise TrainingError(f"Hosts pack {path} is of another format than this code reads.")
            out = []
            for m in header["hosts"]:
                shape = tuple(m["shape"])
                hu = _decode(z[f"{m['name']}/hu"])
                bits = np.unpackbits(z[f"{m['name']}/ignore"], count=int(np.prod(shape)))
                ct = CtVolume(
                    hu=hu,
                    spacing_mm=tuple(m["spacing_mm"]),
                    origin_mm=tuple(m["origin_mm"]),
                    direction=np.asarray(m["direction"], float),
                    series_uid=m.get("series_uid"),
                    patient_id=m["patient"],
                    source=f"{path}#{m['name']}",
                    metadata={"hosts_pack": str(path), "crop_start_zyx": m["crop_start_zyx"]},
                )
                ignore = bits.reshape(shape).astype(bool)
                start = tuple(m["crop_start_zyx"])
                out.append(PackedHost(m["name"], m["patient"], ct, ignore, start))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise TrainingError(f"Hosts pack {path} cannot be read ({exc}).") from exc
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.hosts_pack", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--out", required=True, help="the .npz to write")
    ap.add_argument("--hosts", required=True, help="real hosts (names in src_training.real_chests)")
    ap.add_argument("--limit-mib", type=float, default=LIMIT_BYTES / 2**20, help="refuse above")
    args = ap.parse_args(argv)
    names = [h for h in args.hosts.split(",") if h]
    size = run_with_tqdm(iter_pack(args.out, names, None, int(args.limit_mib * 2**20)), "pack")
    print(f"{args.out}: {len(names)} hosts, {size / 2**20:.1f} MiB ({size} bytes)")
    return 0


if __name__ == "__main__":
    run_main(main)
