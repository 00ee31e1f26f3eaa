"""DICOM: series discovery, headers and tags, pixels to HU, slice geometry, DICOM-SEG masks."""
