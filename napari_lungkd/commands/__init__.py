"""Sub-commands of the ``lungkd`` CLI, one module each (see :mod:`napari_lungkd.cli`)."""
