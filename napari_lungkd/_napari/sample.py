"""npe2 sample data: a synthetic chest CT with its LIDC-format reader annotations.

``File > Open Sample > napari-lungkd > Synthetic chest CT with LIDC annotations``. The case is
generated on first use (a few seconds) and cached (see :mod:`napari_lungkd.phantom.sample`); it is
then opened through the same path as real data: ``load_ct`` on the DICOM folder and the LIDC
parser on its XML, giving the CT, one Labels layer per reader, the consensus and the truth.
"""

from __future__ import annotations


def sample_chest_ct() -> list:
    """Layer data tuples: the CT (lung window), each reader's outlines, the consensus, the truth."""
    from napari_lungkd._napari.layers import aligned_kwargs, ct_layer_data
    from napari_lungkd._napari.lidc_reader import lidc_layers_for_ct
    from napari_lungkd.io import load_ct
    from napari_lungkd.io.masks import read_mask
    from napari_lungkd.phantom.sample import ensure_sample_case

    paths = ensure_sample_case()
    ct = load_ct(paths["series_dir"])
    layers = [ct_layer_data(ct)]
    layers += lidc_layers_for_ct(ct, paths["xml"])
    truth = read_mask(paths["truth_mask"], ct)
    kwargs = dict(aligned_kwargs(ct), name="phantom truth", opacity=0.6, visible=False)
    layers.append((truth, kwargs, "labels"))
    return layers
