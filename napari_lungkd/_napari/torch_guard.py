"""Keep torch's optional ``triton`` import from crashing a running napari viewer.

``triton`` ships its own LLVM inside ``libtriton.so``. When napari draws through Mesa (llvmpipe under
Xvfb, and Intel/AMD GPUs with Mesa drivers), Mesa's ``libLLVM`` is already mapped into the process,
and loading ``libtriton.so`` afterwards segfaults (seen with triton 3.8 + Mesa LLVM 15: ``import
torchvision`` -> ``torch._dynamo`` -> ``import triton`` kills the viewer). triton only matters for
``torch.compile`` on CUDA GPUs, whose NVIDIA GL drivers do not load Mesa's LLVM. So, before the widget
first imports the model code, :func:`guard_triton` marks triton as absent (``sys.modules["triton"]
= None``: torch then sees an ImportError and goes on without it) *only* when triton has not been
imported yet and a Mesa LLVM library is mapped into this process.
"""

from __future__ import annotations

import sys


def mesa_llvm_loaded() -> bool:
    """True when a libLLVM shared library is mapped into this process (Linux; else False)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return any("libLLVM" in line for line in maps)
    except OSError:
        return False


def guard_triton() -> bool:
    """Mark triton absent if importing it now would crash the viewer; True when it did so."""
    if "triton" in sys.modules or not mesa_llvm_loaded():
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]
    return True
