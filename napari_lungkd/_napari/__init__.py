"""napari's face of napari-lungkd: the only package that imports napari, Qt, qtpy or magicgui.

One module per contribution in ``napari.yaml`` (reader, LIDC reader, writer, sample, widget), plus
:mod:`.layers`, which turns a CtVolume into layer data and gives every derived layer the CT's
placement (scale, translate, metadata) so that masks and annotations line up with it.
"""
