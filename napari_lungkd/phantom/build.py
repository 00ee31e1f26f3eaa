"""The assembly line of :func:`napari_lungkd.phantom.make_phantom`.

Order: draw the patient and the scanner; paint the tissues and great vessels on the coarse grid;
bring them to the full matrix; grow and paint the lung vessel tree and bronchi (the varied phantom:
continuous artery and vein trees per lobe, bronchi, fissures and look-alikes, see
:mod:`~napari_lungkd.phantom.lung_detail`); place and paint the nodules (with their truth); the
varied phantom's streaks near bone; add correlated noise; pad outside the field of view; int16.
Each part draws from its own random stream (spawned from the seed), so changing how nodules are
drawn does not change the anatomy of a seed.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from napari_lungkd.phantom.anatomy import compose_anatomy, sample_anatomy
from napari_lungkd.phantom.chest import Phantom
from napari_lungkd.phantom.lookalikes import record as record_lookalikes
from napari_lungkd.phantom.lung_detail import paint_lung_detail
from napari_lungkd.phantom.nodules import (
    LOCATION_P,
    LOCATIONS,
    NoduleFact,
    paint_nodule,
    place_centres,
    sample_count,
    sample_shape,
)
from napari_lungkd.phantom.scanner import (
    PADDING_HU,
    add_noise,
    fov_mask,
    paint_table,
    sample_scanner,
    upsample2,
)
from napari_lungkd.phantom.streaks import add_streaks
from napari_lungkd.phantom.tubes import (
    Grid,
    bronchi_along,
    great_vessels,
    grow_vessel_tree,
    hilum_roots,
    paint_tube,
)


def make_phantom(
    seed: int,
    size: int = 512,
    n_slices: int | None = None,
    *,
    n_nodules: int | None = None,
    kinds: tuple[str, ...] | None = None,
    varied: bool = False,
) -> Phantom:
    """Build the synthetic chest CT for ``seed``.

    ``size`` is the in-plane matrix (512 like clinical CT; smaller for tests); ``n_slices`` fixes
    the number of slices (the slice spacing then follows from the body length), otherwise the
    spacing is drawn from clinical values (0.625-2.5 mm). ``n_nodules`` (0-6 by default, drawn)
    and ``kinds`` (one kind per nodule) override the random choice. ``varied`` randomises the
    scanner (kernel, noise level and texture, HU offset) and widens lung and fat HU per case, for
    training data, and draws the lungs anew: continuous vessel trees from the hila to the pleura,
    bronchi, fissures, streaks near bone and benign look-alikes (``Phantom.lookalikes``,
    never in ``labels``); off, the phantom is the classic one (byte-identical to earlier versions: the
    sample case and the bundled weights' training data).
    """
    if size < 32:
        raise ValueError(f"phantom size must be at least 32 pixels, got {size}")
    if n_slices is not None and n_slices < 4:
        raise ValueError(f"phantom n_slices must be at least 4, got {n_slices}")
    return build(int(seed), int(size), n_slices, n_nodules, kinds, varied)


def build(seed: int, size: int, n_slices, n_nodules, kinds, varied: bool = False):
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    rng_anat, rng_scan, rng_tree, rng_nod, rng_noise, rng_misc = streams
    anat = sample_anatomy(rng_anat, varied)
    scan = sample_scanner(rng_scan, anat, size, n_slices, varied)
    nz = scan.n_slices
    sz, pix, _ = scan.spacing_mm
    dx, dy = scan.body_offset_mm
    z_off = (anat.length_mm - nz * sz) / 2.0 + sz / 2.0
    z_body = (z_off + sz * np.arange(nz)).astype(np.float64)
    x_body = (np.arange(size) - (size - 1) / 2.0) * pix - dx
    y_body = (np.arange(size) - (size - 1) / 2.0) * pix - dy

    f = 2 if size >= 256 and size % 2 == 0 else 1
    xw, yw = x_body[::f], y_body[::f]
    work_grid = Grid((z_body[0], yw[0], xw[0]), (sz, pix * f, pix * f), (nz, len(yw), len(xw)))
    hu_w, lung_w = compose_anatomy(anat, z_body, yw, xw, work_grid.spacing_mm)
    soft_w = pix * f
    for seg, value, kind in great_vessels(anat):
        if kind == "air":
            paint_tube(hu_w, work_grid, seg, 30.0, soft_w, radius_add=1.8)
        paint_tube(hu_w, work_grid, seg, value, soft_w)
    paint_table(hu_w, yw, xw, scan.table_y_mm)
    # the point-spread function, on the coarse grid (the 2x linear upsampling adds the rest)
    sig = scan.psf_sigma_mm / (pix * f)
    gaussian_filter(hu_w, sigma=(0.0, max(sig, 0.5), max(sig, 0.5)), output=hu_w, truncate=2.5)

    hu = upsample2(hu_w, (size, size)) if f == 2 else hu_w
    del hu_w
    grid = Grid((z_body[0], y_body[0], x_body[0]), (sz, pix, pix), (nz, size, size))
    soft = float(np.hypot(pix, 2.355 * scan.psf_sigma_mm))

    wz0, wy0, wx0 = work_grid.start_mm
    wsz, wsy, wsx = work_grid.spacing_mm
    wnz, wny, wnx = work_grid.shape

    def inside(x, y, z) -> bool:
        k, j, i = round((z - wz0) / wsz), round((y - wy0) / wsy), round((x - wx0) / wsx)
        return 0 <= k < wnz and 0 <= j < wny and 0 <= i < wnx and bool(lung_w[k, j, i])

    detail = None
    if varied:  # continuous trees, bronchi, fissures, look-alikes (issue 14)
        detail = paint_lung_detail(rng_tree, anat, scan, hu, grid, work_grid, lung_w, f)
        vessels = detail.vessels
    else:
        r_min = max(0.45, 0.45 * pix)
        vessels = []
        lung_pts = np.argwhere(lung_w[:, ::4, ::4])
        for side in (-1, 1):
            roots = hilum_roots(anat, side)
            # peripheral roots: the tree's outer branches, so that vessels reach the whole lung
            hil = np.asarray(roots[0][0])
            for idx in lung_pts[rng_tree.permutation(len(lung_pts))[:600]]:
                p = (
                    np.asarray(work_grid.start_mm)[::-1]
                    + (idx * (1, 4, 4) * np.asarray(work_grid.spacing_mm))[::-1]
                )
                if np.sign(p[0]) == side and len(roots) < 45:
                    roots.append((tuple(p), tuple(p - hil), float(rng_tree.uniform(1.4, 2.8))))
            vessels += grow_vessel_tree(rng_tree, roots, inside, r_min, max_segments=4000)
        for seg in vessels:
            paint_tube(hu, grid, seg, anat.blood_hu, soft)
        for seg in bronchi_along(vessels):
            paint_tube(hu, grid, seg, 20.0, soft, radius_add=max(0.6, 0.25 * seg.r0))
            paint_tube(hu, grid, seg, -990.0, soft)

    labels = np.zeros(hu.shape, np.uint8)
    facts = _add_nodules(
        rng_nod, anat, hu, labels, grid, work_grid, lung_w, vessels, soft, f, n_nodules, kinds, scan
    )
    if detail is not None:
        add_streaks(hu, pix, detail.streaks)
    add_noise(hu, rng_noise, scan)
    hu += np.float32(scan.hu_offset)
    hu[:, ~fov_mask(size)] = PADDING_HU
    np.clip(hu, PADDING_HU, 3071, out=hu)
    hu_i16 = np.rint(hu).astype(np.int16)

    origin = (
        round(float(-(size - 1) / 2.0 * pix), 4),
        round(float(-(size - 1) / 2.0 * pix), 4),
        float(scan.z_start_mm),
    )
    facts = tuple(_locate(fact, origin, pix, sz) for fact in facts)
    distractors = _distractors(rng_misc, vessels, grid, facts)
    metadata = {
        "kernel": scan.kernel,
        "contrast": anat.contrast,
        "n_vessel_segments": len(vessels),
    }
    lookalikes = ()
    if detail is not None:
        metadata.update(detail.metadata)
        lookalikes = record_lookalikes(detail.items, grid, origin, (sz, pix), facts, labels)
    return Phantom(
        seed=seed,
        hu=hu_i16,
        spacing_mm=(float(sz), float(pix), float(pix)),
        origin_mm=origin,
        labels=labels,
        nodules=facts,
        distractors_zyx=distractors,
        scanner=scan,
        anatomy=anat,
        metadata=metadata,
        lookalikes=lookalikes,
    )


def _add_nodules(
    rng, anat, hu, labels, grid, work_grid, lung_w, vessels, soft, f, n_nodules, kinds, scan
):
    count = sample_count(rng, n_nodules if kinds is None else len(kinds))
    if count == 0:
        return []
    # distance to the lung border on a ~4 mm grid (zero-padded in z: the scan ends are borders)
    sz, wpix = work_grid.spacing_mm[0], work_grid.spacing_mm[1]
    kz, kxy = max(1, int(round(4.0 / sz))), max(1, int(round(4.0 / wpix)))
    coarse = np.pad(lung_w[::kz, ::kxy, ::kxy], ((1, 1), (0, 0), (0, 0)))
    dist = distance_transform_edt(coarse, sampling=(sz * kz, wpix * kxy, wpix * kxy))[1:-1]
    start = np.asarray(work_grid.start_mm)
    step = (sz * kz, wpix * kxy, wpix * kxy)
    locations = [str(rng.choice(LOCATIONS, p=LOCATION_P)) for _ in range(count)]
    shapes_in = [
        sample_shape(rng, (0, 0, 0), loc, kind=(kinds[i] if kinds else None))
        for i, loc in enumerate(locations)
    ]
    radii = [s.radius_mm for s in shapes_in]
    placed = place_centres(rng, count, dist, start, step, vessels, radii, locations)

    def lung_at(lo, hi):
        ix = np.ix_(
            np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1]) // f, np.arange(lo[2], hi[2]) // f
        )
        return lung_w[ix]

    facts = []
    for i, centre in placed:
        from dataclasses import replace

        shape = replace(shapes_in[i], centre=centre)
        label = len(facts) + 1
        n_vox, mean_hu = paint_nodule(hu, labels, label, shape, grid, lung_at, soft)
        if n_vox == 0:
            continue
        subtle = (
            5
            if shape.kind in ("solid", "calcified")
            else (2 if shape.kind == "ground-glass" else 3)
        )
        if shape.radius_mm < 2.5:
            subtle -= 1
        facts.append(
            NoduleFact(
                label=label,
                kind=shape.kind,
                location=shape.location,
                margin=shape.margin,
                diameter_mm=round(2 * shape.radius_mm, 2),
                centre_zyx=tuple(float(v) for v in grid.to_index(centre)),
                centre_mm=tuple(float(v) for v in centre),  # body frame for now, see _locate
                volume_mm3=round(n_vox * float(np.prod(grid.spacing_mm)), 2),
                n_voxels=n_vox,
                mean_hu=round(mean_hu, 1),
                cavity=shape.cavity_ratio > 0,
                calcification=shape.calcification,
                subtlety=max(1, min(5, subtle + int(rng.integers(-1, 1)))),
            )
        )
    return facts


def _locate(fact: NoduleFact, origin, pix, sz) -> NoduleFact:
    from dataclasses import replace

    z, y, x = fact.centre_zyx
    lps = (origin[0] + x * pix, origin[1] + y * pix, origin[2] + z * sz)
    return replace(fact, centre_mm=tuple(round(v, 3) for v in lps))


def _distractors(rng, vessels, grid, facts, n_max: int = 40) -> np.ndarray:
    """Vessel points (r 1-3 mm) away from nodules: what a reader may mark as a non-nodule."""
    cand = [s for s in vessels if 1.0 <= s.r1 <= 3.0]
    if not cand:
        return np.zeros((0, 3))
    pick = rng.permutation(len(cand))[: n_max * 2]
    pts = np.array([grid.to_index(cand[i].p1) for i in pick])
    if facts:
        centres = np.array([f.centre_zyx for f in facts])
        d = np.linalg.norm((pts[:, None, :] - centres[None]) * np.asarray(grid.spacing_mm), axis=-1)
        pts = pts[(d > 25.0).all(axis=1)]
    return np.round(pts[:n_max], 2)
