"""Bones of the synthetic chest: vertebrae (body, discs, canal, arch), sternum and ribs.

Every bone has a cortical rim (dense) around cancellous bone or marrow, as on real CT.
Coordinates are the body frame of :mod:`napari_lungkd.phantom.anatomy` (mm).
"""

from __future__ import annotations

import numpy as np

HU_CORTICAL = 620.0
HU_CANCELLOUS = 230.0
HU_DISC = 85.0
HU_CSF = 15.0
HU_CARTILAGE = 120.0


def paint_spine_and_sternum(a, hu, z_mm, yy, xx, scale, front_r_mm, front_wall_mm) -> None:
    """Vertebral bodies with discs, the spinal canal with its arch, and the sternum.

    ``front_r_mm`` and ``front_wall_mm`` are the body outline radius and the chest-wall thickness
    straight in front (theta = -pi/2), where the sternum sits.
    """
    z = np.asarray(z_mm, np.float32)
    rs = a.spine_radius_mm
    ys = a.spine_y_mm
    rho = np.hypot(xx / (rs * 1.1), (yy - ys) / rs)
    body = rho < 1.0
    rim = body & (rho > 0.9)
    disc_phase = ((z + 7.0) / 27.0) % 1.0
    is_disc = (disc_phase < 0.2)[:, None, None]
    body_val = np.where(is_disc, HU_DISC, HU_CANCELLOUS).astype(np.float32)
    rim_val = np.where(is_disc, HU_DISC + 40.0, HU_CORTICAL).astype(np.float32)
    hu[:, body] = np.broadcast_to(body_val[:, :, 0], (len(z), int(body.sum())))
    hu[:, rim] = np.broadcast_to(rim_val[:, :, 0], (len(z), int(rim.sum())))
    # canal and the posterior arch (lamina and spinous process)
    cy = ys + rs + 8.0
    rc = np.hypot(xx, yy - cy)
    arch = (rc < 13.0) & (rc >= 8.0) & (yy > ys + rs * 0.6)
    spinous = (np.abs(xx) < 4.0) & (yy > cy + 10.0) & (yy < cy + 34.0)
    canal = rc < 8.0
    hu[:, arch | spinous] = HU_CORTICAL * 0.8
    hu[:, canal] = HU_CSF
    # sternum: in front, between the clavicles and the xiphoid
    t = z / a.length_mm
    present = (t > 0.32) & (t < 0.86)
    if present.any():
        sy = -(float(scale[present, 0, 0].mean()) * front_r_mm - front_wall_mm - 2.0)
        e = (xx / 15.0) ** 2 + ((yy - sy) / 6.0) ** 2
        sub = hu[present]
        sub[:, e < 1.0] = HU_CORTICAL * 0.85
        sub[:, e < 0.55] = HU_CANCELLOUS
        hu[present] = sub


def paint_ribs(a, hu, z_mm, outside_cage, theta) -> None:
    """Ribs: hoops that slope down towards the front, cut as ovals in each axial slice.

    ``outside_cage`` is how far (mm) each voxel lies outside the pleura, ``(z, y, x)``; the ribs
    lie in the band 1-10 mm outside it.
    """
    z = np.asarray(z_mm, np.float32)[:, None, None]
    band = (outside_cage > 0.5) & (outside_cage < 10.0)
    band &= (z > 0.08 * a.length_mm) & (z < 0.99 * a.length_mm)
    # no ribs over the front midline (cartilage) or the spine
    ang = np.abs(np.sin(theta))
    allowed = ~(((theta < 0) & (ang > 0.93)) | ((theta > 0) & (ang > 0.975)))
    band &= allowed[None]
    k, j, i = np.nonzero(band)
    if k.size == 0:
        return
    th = theta[j, i]
    from_back = np.abs(np.angle(np.exp(1j * (th - np.pi / 2))))  # 0 at the spine, pi at the front
    drop = 130.0 * from_back / np.pi
    zz = z[k, 0, 0]
    phase = (0.97 * a.length_mm - drop - zz) / a.rib_pitch_mm
    dz = (phase - np.round(phase)) * a.rib_pitch_mm
    u = outside_cage[k, j, i] - 5.0
    e = (u / 4.0) ** 2 + (dz / 5.0) ** 2
    inside = e < 1.0
    vals = np.where(e > 0.45, HU_CORTICAL * 0.9, HU_CANCELLOUS + 40.0).astype(np.float32)
    hu[k[inside], j[inside], i[inside]] = vals[inside]
