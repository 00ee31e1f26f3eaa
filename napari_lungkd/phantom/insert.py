"""Synthetic nodules inserted into a real chest CT: real anatomy, noise and blur around true labels.

``insert_nodules(ct, seed)`` pastes nodules from the phantom's generator
(:mod:`~napari_lungkd.phantom.nodules`: solid, part-solid, ground-glass, calcified; smooth,
lobulated, spiculated; elastically deformed) into a copy of ``ct`` at plausible places inside its
lungs, and returns the new CT with the true label volume. The same host and seed give the same
bytes.

Where (on the lung mask of :func:`~napari_lungkd.inference.lung_mask.find_lung_mask`, ~2 mm
in-plane, with the distance to the pleura and to the nearest vessel: a voxel above -400 HU inside
the lung): *isolated* nodules sit in free parenchyma (no vessel within ~0.8 radius, more than a
radius from the pleura); *juxtavascular* ones touch a vessel (vessel within a radius); and
*juxtapleural* ones touch the chest wall (centre 0.35-0.75 radius from the pleura; the nodule and
its truth stop at the pleura). Never in the *ignore* region (the host's own lesions, grown by
``IGNORE_MARGIN_MM``), never touching each other. Sizes 3-30 mm, more than half 3-6 mm.

How they are blended with the host's partial volume, blur and noise: see
:mod:`~napari_lungkd.phantom.blend`. The truth of a nodule is its 50 % partial-volume mask (before
the blur), inside the lung and outside a cavity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from napari_lungkd.ct import CtVolume
from napari_lungkd.errors import LungKDError
from napari_lungkd.phantom.blend import HostLook, composite, estimate_look, render_box
from napari_lungkd.phantom.nodules import (
    KINDS,
    LOCATIONS,
    NoduleFact,
    reach_mm,
    sample_shape,
    shape_field,
)

IGNORE_MARGIN_MM = 5.0
GAP_MM = 2.0  # least distance between two inserted nodules' surfaces
VESSEL_HU = -400.0
TEXTURE_HU = {"ground-glass": 30.0, "part-solid": 25.0}
MAX_NODULES = 60


class InsertError(LungKDError):
    """A host CT or an insertion setting that cannot be used."""


@dataclass(frozen=True, eq=False)
class Inserted:
    """A real CT with synthetic nodules, their truth, and the host's own lesions to ignore."""

    ct: CtVolume
    labels: np.ndarray
    """uint8 ``(z, y, x)``: nodule ``i`` (1-based, ``nodules[i - 1].label``) is ``i``."""
    nodules: tuple[NoduleFact, ...]
    ignore: np.ndarray
    """bool ``(z, y, x)``: the host's own lesions grown by ``IGNORE_MARGIN_MM``; never background."""
    look: HostLook | None = None
    """The host's measured noise and blur that the nodules were given."""


@dataclass(frozen=True, eq=False)
class _Host:
    """The host's lungs on the coarse grid of its lung mask, with the distances placement needs."""

    inside: np.ndarray
    crowded: np.ndarray  # hila and big vessels: no nodule is centred there
    eroded: np.ndarray
    border: np.ndarray  # mm to the pleura
    vessel: np.ndarray  # mm to the nearest vessel voxel
    avoid: np.ndarray  # mm to the ignore region (inf where there is none)
    hu: np.ndarray  # coarse HU (sampled)
    step: int
    spacing: tuple[float, float, float]  # of the coarse grid


def insert_nodules(
    ct: CtVolume,
    seed: int,
    n_nodules=None,
    ignore=None,
    kinds=None,
    places=None,
    *,
    diameters_mm=None,
) -> Inserted:
    """Paste seeded synthetic nodules into a copy of ``ct`` (see the module); ``ct`` is unchanged.

    ``n_nodules``: how many (default: drawn, 2-6; or ``len(kinds)`` / ``len(places)``);
    ``ignore``: a mask ``(z, y, x)`` of the host's own lesions (GTV, LIDC outlines, boxes);
    ``kinds``: one of :data:`~napari_lungkd.phantom.nodules.KINDS` per nodule; ``places``: per
    nodule a location (``"isolated"``, ``"juxtavascular"``, ``"juxtapleural"``) or a voxel centre
    ``(z, y, x)``; ``diameters_mm``: per nodule its nominal diameter (3-30 mm; default drawn).
    A nodule that finds no free place is left out (``len(nodules)`` says so).
    """
    hu = np.asarray(ct.hu)
    if hu.ndim != 3 or min(hu.shape) < 2:
        raise InsertError(f"the host CT must be a 3-D volume, got shape {hu.shape}.")
    count = _count(seed, n_nodules, kinds, places, diameters_mm)
    spacing = tuple(float(s) for s in ct.spacing_mm)
    grown = _grow_ignore(ignore, hu.shape, spacing)
    host = _host_maps(hu, spacing, grown)
    look = estimate_look(hu, spacing, np.flatnonzero(host.inside.any(axis=(1, 2))))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1A5E7]))
    out = hu.copy()
    labels = np.zeros(hu.shape, np.uint8)
    facts: list[NoduleFact] = []
    for i in range(count):
        kind = (
            str(kinds[i]) if kinds is not None else str(rng.choice(KINDS, p=(0.5, 0.15, 0.2, 0.15)))
        )
        place = places[i] if places is not None else None
        d_mm = float(diameters_mm[i]) if diameters_mm is not None else _diameter(rng)
        fact = _insert_one(
            rng, host, look, out, labels, grown, spacing, len(facts) + 1, kind, place, d_mm
        )
        if fact is not None:
            facts.append(replace(fact, centre_mm=_lps(ct, fact.centre_zyx)))
    note = f"{ct.source or 'CT'} + {len(facts)} synthetic nodule(s) (insert_nodules seed {seed})"
    meta = {
        **ct.metadata,
        "inserted_nodules": {"seed": int(seed), "count": len(facts), "host_look": look.to_dict()},
    }
    new_ct = replace(ct, hu=out, source=note, metadata=meta)
    return Inserted(new_ct, labels, tuple(facts), grown, look)


def _count(seed, n_nodules, kinds, places, diameters) -> int:
    if kinds is not None:
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise InsertError(f"unknown nodule kind {bad[0]!r}; choose from {', '.join(KINDS)}.")
    if places is not None:
        for p in places:
            if isinstance(p, str) and p not in LOCATIONS:
                raise InsertError(f"unknown place {p!r}; choose from {', '.join(LOCATIONS)}.")
    if diameters is not None and not all(1.0 <= float(d) <= 40.0 for d in diameters):
        raise InsertError("nodule diameters must be 1-40 mm.")
    given = [len(v) for v in (kinds, places, diameters) if v is not None]
    if n_nodules is None:
        if given:
            n = min(given)
        else:
            n = int(np.random.default_rng([int(seed), 0xC0]).integers(2, 7))
    else:
        n = int(n_nodules)
    if not 0 <= n <= MAX_NODULES or any(g < n for g in given):
        raise InsertError(
            f"n_nodules must be 0-{MAX_NODULES} and no more than the kinds or places given, got {n}."
        )
    return n


def _grow_ignore(ignore, shape, spacing) -> np.ndarray:
    if ignore is None:
        return np.zeros(shape, bool)
    mask = np.asarray(ignore)
    if mask.shape != tuple(shape):
        raise InsertError(
            f"the ignore mask has shape {mask.shape} but the host CT {tuple(shape)}; "
            "it must lie on the CT's grid."
        )
    mask = mask > 0
    if not mask.any():
        return mask
    box = _box(mask, [int(np.ceil(IGNORE_MARGIN_MM / s)) + 1 for s in spacing])
    out = np.zeros(shape, bool)
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing) <= IGNORE_MARGIN_MM
    return out


def _host_maps(hu, spacing, grown) -> _Host:
    from napari_lungkd.inference.lung_mask import find_lung_mask

    lm = find_lung_mask(hu, spacing)
    if not lm.found or lm.inside.sum() < 50:
        raise InsertError("no lungs were found in the host CT (is it a chest CT in HU?).")
    step = lm.step
    inside = _thick_parts(lm.inside, lm.border_distance_mm)
    if inside.sum() < 50:
        raise InsertError("no lungs were found in the host CT (is it a chest CT in HU?).")
    cs = (spacing[0], spacing[1] * step, spacing[2] * step)
    small = hu[:, ::step, ::step][:, : inside.shape[1], : inside.shape[2]]
    vessels = inside & (small > VESSEL_HU) & (lm.border_distance_mm > 2.0)
    # distances are only needed inside the lungs: measure them in the lungs' box (plus 20 mm)
    box = _box(inside, [int(np.ceil(20.0 / c)) for c in cs])
    vdist = np.full(inside.shape, np.inf, np.float32)
    if vessels.any():
        vdist[box] = ndimage.distance_transform_edt(~vessels[box], sampling=cs)
    avoid = np.full(inside.shape, np.inf, np.float32)
    if grown.any():
        ny, nx = inside.shape[1:]
        pooled = np.zeros(inside.shape, bool)
        for dy in range(step):
            for dx in range(step):
                part = grown[:, dy::step, dx::step][:, :ny, :nx]
                pooled[:, : part.shape[1], : part.shape[2]] |= part
        if pooled[box].any():  # a lesion outside the box is left to the check when painting
            avoid[box] = ndimage.distance_transform_edt(~pooled[box], sampling=cs)
    # the hila and big vessels: where more than a quarter of the ~10 mm around is vessel
    crowd = ndimage.uniform_filter(vessels.astype(np.float32), size=(1, 5, 5)) > 0.25
    cross = np.zeros((3, 3, 3), bool)
    cross[1] = ndimage.generate_binary_structure(2, 1)
    eroded = ndimage.binary_erosion(inside, cross)
    return _Host(inside, crowd, eroded, lm.border_distance_mm, vdist, avoid, small, step, cs)


def _box(mask: np.ndarray, pad) -> tuple[slice, ...]:
    """The bounding box of ``mask`` grown by ``pad`` voxels per axis (inside the array)."""
    nz = [np.flatnonzero(mask.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1))]
    return tuple(
        slice(max(int(a[0]) - p, 0), min(int(a[-1]) + 1 + p, n))
        for a, p, n in zip(nz, pad, mask.shape)
    )


def _thick_parts(inside: np.ndarray, border: np.ndarray, min_mm: float = 12.0) -> np.ndarray:
    """Drop thin air the lung mask may take for lung (between the back and the table, say):
    a lung is more than ``min_mm`` thick somewhere."""
    comp, n = ndimage.label(inside)
    if n <= 1:
        return inside
    keep = np.zeros(n + 1, bool)
    keep[np.unique(comp[border >= min_mm])] = True
    keep[0] = False
    return keep[comp]


def _diameter(rng) -> float:
    """3-30 mm with many small ones: 55 % log-uniform 3-6 mm, the rest log-normal around 10 mm."""
    if rng.random() < 0.55:
        return float(np.exp(rng.uniform(np.log(3.0), np.log(6.0))))
    return float(np.clip(np.exp(rng.normal(np.log(10.0), 0.45)), 6.0, 30.0))


def _candidates(host: _Host, loc: str, r: float, clear: float) -> np.ndarray:
    d, v = host.border, host.vessel
    nz = host.inside.shape[0]
    zmm = np.arange(nz) * host.spacing[0]
    z_ok = ((zmm - r) >= -0.5 * host.spacing[0]) & ((zmm + r) <= zmm[-1] + 0.5 * host.spacing[0])
    ok = host.inside & ~host.crowded & (host.avoid > clear) & z_ok[:, None, None]
    if loc == "isolated":
        ok &= (d > r + 4.0) & (v > max(0.8 * r, 1.5)) & (host.hu < -700)
    elif loc == "juxtavascular":
        ok &= (d > r + 3.0) & (v >= max(0.5 * r, 1.0)) & (v <= r + 1.5) & (host.hu < -600)
    else:
        ok &= (d >= 0.35 * r) & (d <= 0.75 * r + 1.5) & (host.hu < -500)
    return np.argwhere(ok)


def _location_at(host: _Host, cell, r: float) -> str:
    if host.border[cell] <= 0.75 * r + 1.5:
        return "juxtapleural"
    return "juxtavascular" if host.vessel[cell] <= r + 1.5 else "isolated"


def _warp(rng, r: float):
    """A smooth random displacement (mm), a few per cent of the radius: elastic deformation."""
    amp = float(rng.uniform(0.04, 0.12)) * r
    dirs = rng.normal(size=(3, 2, 3))
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    k = (2 * np.pi / (rng.uniform(1.5, 3.0, (3, 2)) * r))[..., None] * dirs
    phase = rng.uniform(0, 2 * np.pi, (3, 2))

    def warp(x, y, z):
        out = []
        for a, base in enumerate((x, y, z)):
            d = sum(
                np.sin(x * k[a, t, 0] + y * k[a, t, 1] + z * k[a, t, 2] + phase[a, t])
                for t in range(2)
            )
            out.append((base + 0.5 * amp * d).astype(np.float32))
        return tuple(out)

    return warp


def _insert_one(rng, host, look, out, labels, grown, spacing, label, kind, place, d_mm):
    loc = place if isinstance(place, str) else str(rng.choice(LOCATIONS, p=(0.45, 0.3, 0.25)))
    for attempt in range(40):
        shape = sample_shape(rng, (0.0, 0.0, 0.0), loc, kind=kind, diameter_mm=d_mm)
        r = shape.radius_mm
        clear = r * (1.0 + float(np.max(shape.lobe_gain, initial=0.0))) + 1.0
        if place is not None and not isinstance(place, str):
            centre = np.asarray(place, float)
            cell = _cell(host, centre)
            loc = _location_at(host, cell, r)
        else:
            cand = _candidates(host, loc, r, clear)
            if len(cand) == 0:
                d_mm = max(3.0, d_mm * 0.8)
                if attempt > 4:
                    loc = "isolated" if loc != "isolated" else "juxtavascular"
                continue
            cell = tuple(int(v) for v in cand[int(rng.integers(len(cand)))])
            jitter = np.r_[rng.uniform(-0.5, 0.5), rng.uniform(0, host.step, 2) - 0.5]
            centre = np.asarray(cell, float) * (1, host.step, host.step) + jitter
        shape = replace(shape, location=loc)
        fact = _paint(rng, host, look, out, labels, grown, spacing, label, shape, centre)
        if fact is not None or (place is not None and not isinstance(place, str)):
            return fact
    return None


def _cell(host: _Host, centre) -> tuple[int, int, int]:
    z, y, x = np.round(np.asarray(centre) / (1, host.step, host.step)).astype(int)
    nz, ny, nx = host.inside.shape
    return (min(max(z, 0), nz - 1), min(max(y, 0), ny - 1), min(max(x, 0), nx - 1))


def _lung_space(host: _Host, lo, hi, hu_box) -> np.ndarray:
    """Full-resolution lung space in the box: the filled lung, following the air at its rim."""
    nz, ny, nx = host.inside.shape
    ix = np.ix_(
        np.arange(lo[0], hi[0]),
        np.minimum(np.arange(lo[1], hi[1]) // host.step, ny - 1),
        np.minimum(np.arange(lo[2], hi[2]) // host.step, nx - 1),
    )
    return host.inside[ix] & (host.eroded[ix] | (hu_box < -500))


def _paint(rng, host, look, out, labels, grown, spacing, label, shape, centre):
    """Render, check and blend one nodule at ``centre`` (voxel z, y, x); its fact or None."""
    sp = np.asarray(spacing)
    reach = reach_mm(shape) + 3.0 * look.psf_sigma_mm + 1.0 + 0.5 * sp[0]
    lo = np.maximum(np.floor(centre - reach / sp).astype(int), 0)
    hi = np.minimum(np.ceil(centre + reach / sp).astype(int) + 1, out.shape)
    if np.any(hi - lo < 1):
        return None
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    warp = _warp(rng, shape.radius_mm)
    occ, weighted, cav = render_box(
        shape, centre, lo, hi, spacing, shape_field, warp, TEXTURE_HU.get(shape.kind, 0.0), rng
    )
    lung = _lung_space(host, lo, hi, out[box])
    truth = (occ >= 0.5) & (cav < 0.5) & lung
    clash = (occ >= 0.5) & (grown[box] | (labels[box] > 0))
    if truth.sum() < 1 or clash.any() or _touches(labels[box], occ, spacing):
        return None
    occ = occ * lung
    weighted = weighted * lung
    additive = shape.kind in ("ground-glass", "part-solid")
    new, _ = composite(out[box], occ, weighted, look, float(sp[1]), additive, rng)
    if np.issubdtype(out.dtype, np.integer):
        info = np.iinfo(out.dtype)
        new = np.clip(np.rint(new), info.min, info.max)
    out[box] = new.astype(out.dtype)
    labels[box][truth] = label
    n = int(truth.sum())
    subtle = {"solid": 5, "calcified": 5, "ground-glass": 2}.get(shape.kind, 3)
    subtle -= int(shape.radius_mm < 2.5)
    return NoduleFact(
        label=label,
        kind=shape.kind,
        location=shape.location,
        margin=shape.margin,
        diameter_mm=round(2 * shape.radius_mm, 2),
        centre_zyx=tuple(round(float(v), 3) for v in centre),
        centre_mm=(0.0, 0.0, 0.0),
        volume_mm3=round(n * float(np.prod(sp)), 2),
        n_voxels=n,
        mean_hu=round(float(out[box][truth].mean()), 1),
        cavity=shape.cavity_ratio > 0,
        calcification=shape.calcification,
        subtlety=max(1, min(5, subtle)),
    )


def _touches(labels_box, occ, spacing) -> bool:
    """Whether the nodule would come within ``GAP_MM`` of a nodule already inserted."""
    if not labels_box.any():
        return False
    gap = ndimage.distance_transform_edt(labels_box == 0, sampling=spacing)
    return bool(((occ > 0.02) & (gap < GAP_MM)).any())


def _lps(ct: CtVolume, zyx) -> tuple[float, float, float]:
    return tuple(round(float(v), 3) for v in ct.index_to_lps(np.asarray(zyx, float)))
