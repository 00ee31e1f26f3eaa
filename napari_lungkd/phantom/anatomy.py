"""The chest of a synthetic patient: body wall, bones, mediastinum, heart, lungs and abdomen.

Everything is defined in millimetres in a *body frame*: ``X`` to the patient's left, ``Y`` to the
patient's back (both LPS directions, centred on the body), ``Z`` up from the lowest slice. Most
boundaries are radial: a boundary radius ``R(theta, z) = scale(z) * R0(theta) - layers(theta)``,
so that a 3D tissue map costs a few array operations per voxel. :func:`compose_anatomy` paints the
tissues in HU on a (coarse) grid; the fine structures (vessels, airways, nodules) are painted later
at full resolution by :mod:`napari_lungkd.phantom.tubes` and :mod:`napari_lungkd.phantom.nodules`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_lungkd.phantom.bones import paint_ribs, paint_spine_and_sternum
from napari_lungkd.phantom.tubes import Grid, great_vessels, paint_tube

# Tissue densities (HU) before noise; ranges are drawn per case around these.
HU_AIR = -1000.0
HU_FAT = -105.0
HU_MUSCLE = 45.0
HU_SKIN = 25.0


@dataclass(frozen=True)
class Anatomy:
    """The random shape parameters of one synthetic patient (millimetres, HU)."""

    length_mm: float  # cranio-caudal extent covered by the scan
    half_width_mm: float  # body half width (left-right) at mid chest
    half_depth_ant_mm: float  # body centre to anterior skin
    half_depth_post_mm: float  # body centre to posterior skin (flattened back)
    shape_harmonics: tuple[float, float, float]  # small angular bumps of the outline
    fat_mm: tuple[float, float, float]  # subcutaneous fat: anterior, lateral, posterior
    muscle_mm: float  # chest-wall muscle
    paraspinal_mm: float  # extra muscle behind the ribs near the spine
    contrast: bool  # intravenous contrast (bright blood)
    blood_hu: float
    liver_hu: float
    lung_hu: float  # parenchyma at the front (non-dependent)
    gravity_hu: float  # extra density at the back (dependent lung)
    texture_hu: float
    dome_right_t: float  # height of the diaphragm domes as a fraction of the length
    dome_left_t: float
    carina_t: float
    heart_centre_mm: tuple[float, float, float]  # (X, Y, t*length)
    heart_axes_mm: tuple[float, float, float]
    spine_radius_mm: float
    mediastinum_mm: float  # half width of the mediastinal band
    rib_pitch_mm: float
    table_gap_mm: float
    seed_texture: int
    fat_texture_hu: float = 0.0  # marbling of fat (septa, small vessels); 0 in the classic phantom

    @property
    def spine_y_mm(self) -> float:
        return 0.52 * self.half_depth_post_mm


def sample_anatomy(rng: np.random.Generator, varied: bool = False) -> Anatomy:
    """One synthetic patient; ``varied`` widens the lung and fat HU to the spread of real scans
    (issue 14), otherwise the classic ranges (the same random numbers as before)."""
    contrast = bool(rng.random() < 0.55)
    half_width = rng.uniform(140.0, 178.0)
    return Anatomy(
        length_mm=rng.uniform(285.0, 345.0),
        half_width_mm=half_width,
        half_depth_ant_mm=rng.uniform(0.66, 0.78) * half_width,
        half_depth_post_mm=rng.uniform(0.6, 0.68) * half_width,
        shape_harmonics=tuple(rng.normal(0.0, 0.025, 3)),
        fat_mm=(rng.uniform(8, 24), rng.uniform(10, 30), rng.uniform(6, 16)),
        muscle_mm=rng.uniform(5, 10),
        paraspinal_mm=rng.uniform(18, 30),
        contrast=contrast,
        blood_hu=rng.uniform(220, 420) if contrast else rng.uniform(35, 50),
        liver_hu=rng.uniform(95, 130) if contrast else rng.uniform(50, 65),
        lung_hu=rng.uniform(-915, -860) if varied else rng.uniform(-925, -885),
        gravity_hu=rng.uniform(30, 110) if varied else rng.uniform(25, 70),
        texture_hu=rng.uniform(18, 36) if varied else rng.uniform(12, 24),
        dome_right_t=rng.uniform(0.36, 0.44),
        dome_left_t=rng.uniform(0.32, 0.39),
        carina_t=rng.uniform(0.70, 0.76),
        heart_centre_mm=(
            rng.uniform(12, 28),
            rng.uniform(-0.30, -0.15) * half_width,
            rng.uniform(0.45, 0.51),
        ),
        heart_axes_mm=(rng.uniform(46, 56), rng.uniform(36, 44), rng.uniform(45, 55)),
        spine_radius_mm=rng.uniform(15, 19),
        mediastinum_mm=rng.uniform(20, 28),
        rib_pitch_mm=rng.uniform(24, 30),
        table_gap_mm=rng.uniform(1.0, 8.0),
        seed_texture=int(rng.integers(2**31)),
        fat_texture_hu=22.0 if varied else 0.0,
    )


# --- outlines -------------------------------------------------------------------------------


def _outline_radius(a: Anatomy, theta: np.ndarray) -> np.ndarray:
    """Body outline R0(theta) at scale 1: a superellipse, flatter at the back."""
    c, s = np.cos(theta), np.sin(theta)
    b = np.where(s > 0, a.half_depth_post_mm, a.half_depth_ant_mm)
    p = np.where(s > 0, 2.6, 2.1)
    r = (np.abs(c / a.half_width_mm) ** p + np.abs(s / b) ** p) ** (-1.0 / p)
    h1, h2, h3 = a.shape_harmonics
    return r * (1.0 + h1 * np.cos(2 * theta) + h2 * np.sin(3 * theta) + h3 * np.cos(4 * theta))


def body_scale(a: Anatomy, z_mm: np.ndarray) -> np.ndarray:
    """How the outline grows or shrinks along the body (shoulders wider, abdomen rounder)."""
    t = np.asarray(z_mm) / a.length_mm
    return 0.95 + 0.06 * t + 0.025 * np.sin(2.0 * np.pi * t)


def _fat_thickness(a: Anatomy, theta: np.ndarray) -> np.ndarray:
    ant, lat, post = a.fat_mm
    s = np.sin(theta)
    return np.where(s < 0, ant * (-s) + lat * (1 + s), post * s + lat * (1 - s))


def _wall_thickness(a: Anatomy, theta: np.ndarray) -> np.ndarray:
    """Skin + fat + muscle between the outline and the outer surface of the ribs."""
    para = a.paraspinal_mm * np.exp(-(((theta - np.pi / 2) / 0.5) ** 2))
    return 2.0 + _fat_thickness(a, theta) + a.muscle_mm + para


def _apex_factor(a: Anatomy, z_mm: np.ndarray) -> np.ndarray:
    """How the lung cavity narrows towards the apex: a dome, 1 below 66 % of the length."""
    t = np.asarray(z_mm) / a.length_mm
    u = np.clip((t - 0.66) / 0.33, 0.0, 1.0)
    return np.sqrt(1.0 - u**2)


def diaphragm_z(a: Anatomy, x_mm: np.ndarray, y_mm: np.ndarray) -> np.ndarray:
    """Height (mm) of the diaphragm under each (X, Y): two domes, lower at the back and sides."""
    wx = 0.36 * a.half_width_mm
    wy = 1.1 * a.half_depth_post_mm
    yc = -0.2 * a.half_depth_ant_mm
    bowl_r = ((x_mm + wx) / (1.5 * wx)) ** 2 + ((y_mm - yc) / wy) ** 2
    bowl_l = ((x_mm - wx) / (1.5 * wx)) ** 2 + ((y_mm - yc) / wy) ** 2
    right = a.dome_right_t * a.length_mm - 60.0 * bowl_r
    left = a.dome_left_t * a.length_mm - 60.0 * bowl_l
    return np.where(x_mm < 0, right, left)


def _smooth_1d(rng: np.random.Generator, n: int, corr: float) -> np.ndarray:
    """A smooth random 1D curve of length ``n`` with correlation length ``corr`` samples."""
    from scipy.ndimage import gaussian_filter1d

    v = gaussian_filter1d(rng.standard_normal(n + 8), max(corr, 0.5), mode="wrap")[4:-4]
    return (v / (v.std() + 1e-9)).astype(np.float32)


def lung_texture(a: Anatomy, shape: tuple[int, int, int], spacing_mm) -> np.ndarray:
    """A smooth random density field (unit variance), a low-rank sum of separable curves."""
    rng = np.random.default_rng(a.seed_texture)
    nz, ny, nx = shape
    field = np.zeros(shape, np.float32)
    for _ in range(4):
        gz = _smooth_1d(rng, nz, 12.0 / spacing_mm[0])[:, None, None]
        gy = _smooth_1d(rng, ny, 9.0 / spacing_mm[1])[None, :, None]
        gx = _smooth_1d(rng, nx, 9.0 / spacing_mm[2])[None, None, :]
        field += gz * (gy * gx)
    return field * 0.5


def compose_anatomy(a: Anatomy, z_mm: np.ndarray, y_mm: np.ndarray, x_mm: np.ndarray, spacing_mm):
    """Paint the tissues in HU on the grid given by 1D body-frame coordinates (mm).

    Returns ``(hu, lung)``: float32 HU ``(z, y, x)`` and the boolean lung (air space) map.
    """
    nz, ny, nx = len(z_mm), len(y_mm), len(x_mm)
    yy, xx = np.meshgrid(y_mm, x_mm, indexing="ij")
    r2 = np.hypot(xx, yy).astype(np.float32)
    theta = np.arctan2(yy, xx)
    r0 = _outline_radius(a, theta).astype(np.float32)
    wall = _wall_thickness(a, theta).astype(np.float32)
    fat = _fat_thickness(a, theta).astype(np.float32)
    scale = body_scale(a, z_mm).astype(np.float32)[:, None, None]
    apex = _apex_factor(a, z_mm).astype(np.float32)[:, None, None]

    # radial depth below the skin, per voxel (mm)
    depth = scale * r0[None] - r2[None]
    hu = np.full((nz, ny, nx), HU_AIR, np.float32)
    hu[depth > 0] = HU_SKIN
    hu[depth > 2.0] = HU_FAT
    hu[depth > 2.0 + fat[None]] = HU_MUSCLE
    cage_r = (scale * r0[None] - (wall[None] + 9.0)) * apex  # inner surface of the cage (pleura)
    outside_cage = r2[None] - cage_r  # mm outside the pleura (negative inside)
    inside_cage = outside_cage < 0

    # abdomen under the diaphragm, mediastinum and lungs above it
    dz = diaphragm_z(a, xx, yy).astype(np.float32)
    above = z_mm.astype(np.float32)[:, None, None] > dz[None]
    hu[inside_cage] = HU_FAT + 15.0
    _paint_abdomen(a, hu, inside_cage & ~above, z_mm, yy, xx)

    medi = _mediastinum_2d(a, z_mm, yy, xx)  # (nz, ny, nx) bool, includes spine block and heart
    medi |= _great_vessel_space(a, z_mm, yy, xx, spacing_mm)
    lung = inside_cage & above & ~medi
    t_lung = np.clip(
        (yy + a.half_depth_ant_mm) / (a.half_depth_ant_mm + a.half_depth_post_mm), 0, 1
    )
    lung_hu = (a.lung_hu + a.gravity_hu * t_lung**1.5).astype(np.float32)
    tex = lung_texture(a, (nz, ny, nx), spacing_mm)
    lung_vals = lung_hu[None] + a.texture_hu * tex
    hu = np.where(lung, lung_vals, hu)
    # partial volume at the pleura: blend lung and chest wall over one pixel
    pix = float(spacing_mm[1])
    near = (np.abs(outside_cage) < pix) & above & ~medi
    w = np.clip(0.5 - outside_cage[near] / pix, 0.0, 1.0)
    hu[near] = HU_MUSCLE + w * (lung_vals[near] - HU_MUSCLE)

    _paint_heart(a, hu, z_mm, yy, xx, above)
    # organs and muscle are not uniform either: a gentle smooth variation
    soft = (hu > -30.0) & (hu < 160.0)
    hu[soft] += 14.0 * tex[soft]
    if a.fat_texture_hu:
        fat = (hu > -140.0) & (hu < -60.0)  # fat is marbled with septa and vessels
        hu[fat] += a.fat_texture_hu * tex[fat]
    front = np.array([-np.pi / 2])
    front_r = float(_outline_radius(a, front)[0])
    front_wall = float(_wall_thickness(a, front)[0])
    paint_spine_and_sternum(a, hu, z_mm, yy, xx, scale, front_r, front_wall)
    paint_ribs(a, hu, z_mm, outside_cage, theta)
    # partial volume at the skin
    near = np.abs(depth) < pix
    hu[near] = HU_AIR + np.clip(depth[near] / pix + 0.5, 0.0, 1.0) * (HU_SKIN - HU_AIR)
    return hu, lung


def _mediastinum_2d(a: Anatomy, z_mm, yy, xx) -> np.ndarray:
    """The region between the lungs: a central band from sternum to spine, the spine block, heart."""
    t = (np.asarray(z_mm) / a.length_mm).astype(np.float32)[:, None, None]
    width = 0.55 * a.mediastinum_mm * (1.0 + 0.35 * np.exp(-(((t - 0.5) / 0.18) ** 2)))
    xm = 6.0 + 8.0 * np.exp(-(((t - 0.45) / 0.2) ** 2))  # shifted to the patient's left
    ys = a.spine_y_mm
    front = -0.8 * a.half_depth_ant_mm
    yc, hd = (front + ys) / 2.0, (ys - front) / 2.0 + 6.0
    band = (((xx[None] - xm) / width) ** 2 + ((yy[None] - yc) / hd) ** 2) < 1.0
    spine_block = (
        ((xx / (a.spine_radius_mm + 13.0)) ** 2 + ((yy - ys) / (a.spine_radius_mm + 11.0)) ** 2)
        < 1.0
    ) | ((np.abs(xx) < a.spine_radius_mm + 8.0) & (yy > ys))
    aorta = np.hypot(xx - 24.0, yy - (ys - a.spine_radius_mm - 6.0)) < 17.0
    hx, hy, ht = a.heart_centre_mm
    ha, hb, hc = a.heart_axes_mm
    hz = ht * a.length_mm
    ez = ((np.asarray(z_mm, np.float32) - hz) / (hc + 6.0))[:, None, None] ** 2
    exy = ((xx - hx) / (ha + 6.0)) ** 2 + ((yy - hy) / (hb + 6.0)) ** 2
    heart = (exy[None] + ez) < 1.0
    return band | (spine_block | aorta)[None] | heart


def _paint_heart(a: Anatomy, hu, z_mm, yy, xx, above) -> None:
    hx, hy, ht = a.heart_centre_mm
    ha, hb, hc = a.heart_axes_mm
    hz = ht * a.length_mm
    zs = np.nonzero(np.abs(np.asarray(z_mm) - hz) < hc + 8.0)[0]
    if zs.size == 0:
        return
    sl = slice(zs[0], zs[-1] + 1)
    ez = ((np.asarray(z_mm[sl], np.float32) - hz) / hc)[:, None, None] ** 2
    e = ((xx - hx) / ha) ** 2 + ((yy - hy) / hb) ** 2 + ez
    sub = hu[sl]
    sub[(e < 1.18) & (e >= 1.0)] = HU_FAT  # pericardial fat
    myo = HU_MUSCLE + (40.0 if a.contrast else 0.0)
    sub[e < 1.0] = myo
    # chambers: two blood pools separated by the septum
    cham = (e < 0.62) & (np.abs((xx - hx) + 0.4 * (yy - hy)) > 4.0)
    sub[cham] = a.blood_hu
    hu[sl] = sub


def _paint_abdomen(a: Anatomy, hu, region, z_mm, yy, xx) -> None:
    """Liver on the right, stomach (with a gas bubble) and spleen on the left, fat between."""
    hu[region & (xx < 10.0)[None]] = a.liver_hu
    left = region & (xx >= 10.0)[None]
    hu[left] = HU_MUSCLE - 5.0
    # visceral fat between the organs on the left (spleen, stomach wall, bowel)
    hu[left & (np.abs(yy) < 0.35 * a.half_depth_ant_mm)[None]] = HU_FAT + 10.0
    top = np.asarray(z_mm, np.float32)[:, None, None]
    sx, sy = 0.45 * a.half_width_mm, -0.25 * a.half_depth_ant_mm
    bubble_z = (a.dome_left_t * a.length_mm) - 25.0
    bubble = (((xx - sx) / 40.0) ** 2 + ((yy - sy) / 30.0) ** 2)[None] + (
        (top - bubble_z) / 22.0
    ) ** 2 < 1.0
    hu[left & bubble & ((yy - sy) < 5.0)[None]] = HU_AIR


def _great_vessel_space(a: Anatomy, z_mm, yy, xx, spacing_mm) -> np.ndarray:
    """Where the great vessels, trachea and main bronchi (plus fat around them) push the lungs."""
    sp = (float(spacing_mm[0]), float(spacing_mm[1]), float(spacing_mm[2]))
    grid = Grid((float(z_mm[0]), float(yy[0, 0]), float(xx[0, 0])), sp, (len(z_mm),) + yy.shape)
    occ = np.zeros(grid.shape, np.float32)
    for seg, _, _ in great_vessels(a):
        paint_tube(occ, grid, seg, 1.0, sp[1], radius_add=5.0)
    return occ > 0.5
