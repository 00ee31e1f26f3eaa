"""The plausibility flag (inference/plausibility.py): the rule on hand-set values, then on
measured shapes (a ball, a tube, a streak on one slice, a mass, a speck) in CT-like spacing."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np

from napari_lungkd.inference.nodules import find_nodules, nodules_to_rows, write_nodules_csv
from napari_lungkd.inference.plausibility import (
    ELONGATED_BELOW,
    FLAT_BELOW,
    MAX_DIAMETER_MM,
    MIN_DIAMETER_MM,
    is_plausible,
    plausibility,
)

CT_SPACING = (2.5, 0.7, 0.7)


def row(diameter_mm=8.0, n_slices=4, elongation=0.9, flatness=0.8):
    return SimpleNamespace(
        diameter_mm=diameter_mm, n_slices=n_slices, elongation=elongation, flatness=flatness
    )


def test_each_threshold_names_its_reason():
    assert plausibility(row()) == "" and is_plausible(row())
    assert plausibility(row(diameter_mm=MIN_DIAMETER_MM - 0.1)) == "< 3 mm"
    assert plausibility(row(diameter_mm=MIN_DIAMETER_MM)) == ""
    assert plausibility(row(diameter_mm=MAX_DIAMETER_MM)) == ""
    assert plausibility(row(diameter_mm=MAX_DIAMETER_MM + 0.1)) == "> 30 mm (mass)"
    # on one slice: flatness (thinnest / longest) decides; on several, thinnest / middle (a sheet)
    assert plausibility(row(flatness=FLAT_BELOW - 0.01, n_slices=1)) == "1 slice"
    assert plausibility(row(flatness=FLAT_BELOW + 0.01, n_slices=1)) == ""
    assert plausibility(row(flatness=0.2, elongation=0.9, n_slices=2)) == "flat"
    assert plausibility(row(flatness=0.2, elongation=0.5, n_slices=2)) == ""  # 0.4: not a sheet
    tube = row(elongation=ELONGATED_BELOW - 0.01, flatness=ELONGATED_BELOW - 0.02)
    assert plausibility(tube) == "elongated"  # a tube is thin across, but not a sheet
    both = row(diameter_mm=29.0, n_slices=1, elongation=0.1, flatness=0.05)
    assert plausibility(both) == "1 slice; elongated"
    # a row without shape measures (an older record) is judged on its size alone
    assert plausibility(SimpleNamespace(diameter_mm=8.0, n_slices=1)) == ""


def grid(shape=(16, 80, 80)):
    return np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")


def test_measured_shapes_are_flagged_as_a_radiologist_would():
    zz, yy, xx = grid()
    mm = ((zz - 8) * 2.5, (yy - 40) * 0.7, (xx - 40) * 0.7)
    ball = mm[0] ** 2 + mm[1] ** 2 + mm[2] ** 2 <= 5.0**2  # a 10 mm nodule
    (nod,) = find_nodules(ball, CT_SPACING)
    assert nod.flag == "" and nod.elongation > 0.8 and nod.flatness > 0.6
    tube = (mm[0] ** 2 + mm[1] ** 2 <= 3.0**2) & (np.abs(mm[2]) <= 12)  # a vessel, 6 x 24 mm
    (nod,) = find_nodules(tube, CT_SPACING)
    assert nod.n_slices == 3 and nod.flag == "elongated"
    thin = (mm[0] ** 2 + mm[1] ** 2 <= 1.5**2) & (np.abs(mm[2]) <= 12)  # 3 mm wide: one slice
    (nod,) = find_nodules(thin, CT_SPACING)
    assert nod.n_slices == 1 and nod.flag == "1 slice; elongated"
    streak = np.zeros_like(ball)
    streak[8, 38:44, 20:61] = True  # 29 mm x 4 mm on one slice (the "29 mm on 1 slice")
    (nod,) = find_nodules(streak, CT_SPACING)
    assert nod.n_slices == 1 and nod.diameter_mm > 28
    assert nod.flag == "1 slice; elongated"
    disc = (mm[1] ** 2 + mm[2] ** 2 <= 6.0**2) & (zz == 8)  # round, 12 mm, on one 2.5 mm slice
    (nod,) = find_nodules(disc, CT_SPACING)
    assert nod.flag == "1 slice"
    small_disc = (mm[1] ** 2 + mm[2] ** 2 <= 2.5**2) & (zz == 8)  # 5 mm on one slice: possible
    (nod,) = find_nodules(small_disc, CT_SPACING)
    assert nod.flag == ""
    speck = (mm[0] ** 2 + mm[1] ** 2 + mm[2] ** 2 <= 1.2**2) & (zz >= 8)
    (nod,) = find_nodules(speck, CT_SPACING, min_volume_mm3=0)
    assert nod.flag == "< 3 mm"


def test_a_mass_is_flagged_and_the_flag_is_in_rows_and_csv(tmp_path):
    shape = (24, 64, 64)
    zz, yy, xx = grid(shape)
    spacing = (2.5, 1.0, 1.0)
    mass = ((zz - 12) * 2.5) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 <= 17.0**2  # 34 mm
    (nod,) = find_nodules(mass, spacing)
    assert nod.flag == "> 30 mm (mass)"
    assert nodules_to_rows([nod])[0]["flag"] == "> 30 mm (mass)"
    write_nodules_csv(tmp_path / "n.csv", [nod])
    (read,) = csv.DictReader((tmp_path / "n.csv").open())
    assert read["flag"] == "> 30 mm (mass)" and read["score"] == ""
