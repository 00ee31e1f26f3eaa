"""Seeded synthetic chest CT with true nodule masks, and LIDC-format cases made from it.

``make_phantom(seed)`` builds a :class:`Phantom`: a chest CT in HU (int16, ``(z, y, x)``) with body
wall, ribs and spine, mediastinum and heart, two lungs with a branching vessel tree and airways,
a table, and 0-6 nodules of the kinds LIDC readers mark, plus the true nodule label volume and one
:class:`~napari_lungkd.phantom.nodules.NoduleFact` per nodule. The same seed gives byte-identical
output. ``write_case(phantom, out_dir)`` (see :mod:`napari_lungkd.phantom.case`) writes it as a
real DICOM series, an LIDC XML from simulated readers, the truth mask (NIfTI) and a JSON of facts.

How it is made (modules, each a noun): :mod:`~napari_lungkd.phantom.anatomy` (tissues on a coarse
grid), :mod:`~napari_lungkd.phantom.bones`, :mod:`~napari_lungkd.phantom.tubes` (vessels, airways),
:mod:`~napari_lungkd.phantom.nodules`, :mod:`~napari_lungkd.phantom.scanner` (spacing, PSF, noise,
field of view), :mod:`~napari_lungkd.phantom.readers` (simulated radiologists),
:mod:`~napari_lungkd.phantom.lidc_xml` and :mod:`~napari_lungkd.phantom.dicom` (file formats).
"""

from napari_lungkd.phantom.build import make_phantom
from napari_lungkd.phantom.case import write_case
from napari_lungkd.phantom.chest import Phantom
from napari_lungkd.phantom.insert import Inserted, insert_nodules
from napari_lungkd.phantom.nodules import NoduleFact

__all__ = ["Inserted", "NoduleFact", "Phantom", "insert_nodules", "make_phantom", "write_case"]
