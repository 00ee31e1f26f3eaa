"""The napari widget and its panels: the only code in napari-lungkd that imports Qt (qtpy, magicgui)."""
