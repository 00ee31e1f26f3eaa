"""Loading benchmark: napari-lungkd's load_ct against SimpleITK and a plain pydicom loop.

Each run happens in a fresh Python process (imports done before the clock starts) that loads the
series once and reports wall seconds and the peak resident memory added by the load (Linux VmHWM
after resetting it through /proc/self/clear_refs; ru_maxrss minus the RSS before the load where
that is not allowed). The table gives medians over ``--repeats`` runs, methods interleaved.

    .venv/bin/python bench/load_ct.py                      # LIDC-IDRI-0001 from ../shared/realdata
    .venv/bin/python bench/load_ct.py --repeats 7 PATH     # another series folder

Rows:
  * ``napari-lungkd load_ct``: the series folder -> CtVolume (int16 HU, sorted, checked);
  * the same from the patient folder (recursive search, other files present);
  * ``SimpleITK ImageSeriesReader``: GetGDCMSeriesIDs + GetGDCMSeriesFileNames + Execute (the
    ratio's reference), and the same plus ``GetArrayFromImage`` (to get a numpy array as we do);
  * ``pydicom loop``: dcmread every file, sort by ImagePositionPatient z, stack rescaled pixels.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("LUNGKD_REALDATA", REPO.parent / "shared" / "realdata"))
METHODS = {
    "ours": "napari-lungkd load_ct (series folder)",
    "ours_recursive": "napari-lungkd load_ct (patient folder, recursive)",
    "sitk": "SimpleITK ImageSeriesReader (Execute)",
    "sitk_numpy": "SimpleITK ImageSeriesReader + GetArrayFromImage",
    "pydicom": "plain pydicom loop (dcmread, sort, stack)",
}
REFERENCE = "sitk"


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _prepare(method: str):
    """Import what the method needs (outside the clock) and return the load function."""
    if method in ("ours", "ours_recursive"):
        import napari_lungkd.io.dicom.series  # noqa: F401  (load_ct imports it lazily)
        from napari_lungkd.io import load_ct

        return lambda folder: load_ct(folder).hu
    if method in ("sitk", "sitk_numpy"):
        import SimpleITK as sitk

        def load(folder):
            reader = sitk.ImageSeriesReader()
            uid = reader.GetGDCMSeriesIDs(str(folder))[0]
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), uid))
            image = reader.Execute()
            return sitk.GetArrayFromImage(image) if method == "sitk_numpy" else image

        return load
    import numpy as np
    import pydicom

    def load(folder):
        slices = [pydicom.dcmread(p) for p in sorted(Path(folder).glob("*.dcm"))]
        slices.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
        return np.stack(
            [ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices]
        ).astype(np.int16)

    return load


def worker(method: str, folder: str) -> None:
    load = _prepare(method)
    hwm_reset = _reset_peak()
    rss_before = _rss_kib("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = load(folder)
    seconds = time.perf_counter() - start
    if hwm_reset:
        peak = _rss_kib("VmHWM")
    else:
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, maxrss_before)
    shape = list(result.shape) if hasattr(result, "shape") else list(result.GetSize())[::-1]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mib": (peak - rss_before) / 1024,
                "shape": shape,
                "exact_peak": hwm_reset,
            }
        )
    )


def _series_folder(root: Path) -> Path:
    hits = sorted({p.parent for p in root.rglob("*.dcm")})
    if not hits:
        sys.exit(f"no .dcm files under {root}")
    return max(hits, key=lambda p: len(list(p.glob("*.dcm"))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT_DATA / "LIDC-IDRI-0001"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", choices=list(METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.path)
        return 0
    root = Path(args.path)
    series = _series_folder(root)
    runs: dict[str, list[dict]] = {m: [] for m in METHODS}
    for _ in range(args.repeats):
        for method in METHODS:
            folder = root if method == "ours_recursive" else series
            out = subprocess.run(
                [sys.executable, __file__, "--worker", method, str(folder)],
                check=True,
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            runs[method].append(json.loads(out.stdout.strip().splitlines()[-1]))
    shape = runs["ours"][0]["shape"]
    float32_mib = 4 * shape[0] * shape[1] * shape[2] / 2**20
    ref = statistics.median(r["seconds"] for r in runs[REFERENCE])
    print(f"Series: {series} -> shape {tuple(shape)}; float32 volume {float32_mib:.1f} MiB")
    print(f"Medians of {args.repeats} runs, each in a fresh process; CPUs: {os.cpu_count()}.\n")
    print("| loader | seconds | ratio to SimpleITK | peak memory (MiB) | peak / float32 volume |")
    print("|---|---:|---:|---:|---:|")
    for method, label in METHODS.items():
        secs = statistics.median(r["seconds"] for r in runs[method])
        peak = statistics.median(r["peak_mib"] for r in runs[method])
        print(
            f"| {label} | {secs:.3f} | {secs / ref:.2f} | {peak:.0f} | {peak / float32_mib:.2f} |"
        )
    if not all(r["exact_peak"] for rs in runs.values() for r in rs):
        print("\n(peak memory from ru_maxrss: /proc/self/clear_refs was not writable)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
