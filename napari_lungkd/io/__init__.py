"""Reading CT and writing masks: load_ct, the input table (sniff), image files, masks, DICOM."""

from napari_lungkd.io.load import load_ct
from napari_lungkd.io.masks import save_mask
from napari_lungkd.io.sniff import IMAGE_FILE_SUFFIXES, is_image_file_name

__all__ = ["load_ct", "save_mask", "IMAGE_FILE_SUFFIXES", "is_image_file_name"]
