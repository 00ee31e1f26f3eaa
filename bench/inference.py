"""Student vs teacher, per fast path, on the real LIDC-IDRI-0001 CT: one table, side by side.

    python bench/inference.py                      # whole CT, eager + onnx, student + teacher
    python bench/inference.py --quick 16           # 16 lung slices only (numbers extrapolated)
    python bench/inference.py --paths eager --models student --json out.json

Each (model, path) runs in a fresh Python process so that its peak memory (max RSS) is its own and
no cache from a previous run helps it. "End to end" is load_ct + model load + lung crop +
preprocessing + model + post-processing (mask, nodule table), i.e. what `lungkd segment` does
before writing files, in a fresh process (library imports and, on a GPU, CUDA start-up included;
Python's own start-up and `import torch` are not). "Warm" repeats load_ct + segment with the model
already loaded, as the viewer does from the second CT on. "Candidate stage" is the false-positive
stage's candidate finding (3-D components of the probability with their features,
``inference.candidates.find_candidates``) plus the model's own bundled classifier scoring them
(``inference.fp_reduction.candidate_scores``), timed on their own, and their share of the CT's time. With ``--device cuda`` a second table
gives the network alone: slices/s with the inputs already on the GPU, synchronised timing.

The weights are random by default (the network's time does not depend on their values; the
masks are then not meaningful, which is why the fast paths are compared by their agreement with
eager fp32, not with the radiologists); ``--weights bundled`` uses the trained ones, whose sparse
masks make post-processing cheaper. The "setup" column is the runner's one-time set-up (the
module's move to the device; the ONNX session, and the ONNX export when it is not cached yet -
it is cached per weights, so run once before measuring); "s per CT" includes it, "warm" does
not. "T/S (ms/slice)" is the speed-up as the viewer and the CLI show it
(napari_lungkd.scoring.speed.speedup: model seconds per slice).

On a shared machine the wall-clock columns depend on what else runs; the CPU columns (user +
system CPU time of the process, all threads) much less so, and "idle est." = CPU s / threads is
what the wall time would be with the cores to ourselves and perfect threading (an estimate).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("LUNGKD_REALDATA", REPO.parent / "shared" / "realdata"))


def find_ct() -> Path:
    hits = sorted(p.parent for p in (REALDATA / "LIDC-IDRI-0001").rglob("069.xml"))
    if not hits:
        sys.exit(f"LIDC-IDRI-0001 not found under {REALDATA} (set LUNGKD_REALDATA)")
    return hits[0]


def _cpu_s() -> float:
    """CPU seconds used by this process so far, all threads (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(args) -> dict:
    """One measurement in this process; prints a JSON line."""
    import numpy as np
    import torch

    from napari_lungkd import load_ct
    from napari_lungkd.ct import CtVolume
    from napari_lungkd.inference import RunSettings, Segmenter
    from napari_lungkd.inference.lung_region import find_lung_region
    from napari_lungkd.progress import run_to_end

    t0, c0 = time.perf_counter(), _cpu_s()
    ct = load_ct(args.ct)
    load_ct_s, load_ct_cpu_s = time.perf_counter() - t0, _cpu_s() - c0
    full_region = find_lung_region(ct.hu, ct.spacing_mm)
    n_full, n_lung_full = ct.shape[0], len(full_region.z_indices)
    if (
        args.quick
    ):  # N slices spread evenly over the lungs, so small and large lung slices both count
        pick = full_region.z_indices[
            np.linspace(0, n_lung_full - 1, args.quick).round().astype(int)
        ]
        ct = CtVolume(
            hu=ct.hu[pick], spacing_mm=ct.spacing_mm, origin_mm=ct.origin_mm, source=ct.source
        )
    settings = RunSettings(
        device=args.device,
        backend=args.path,
        num_threads=args.threads,
        batch_size=args.batch_size,
    )
    weights = None if args.weights == "bundled" else "random"
    # one Segmenter for both runs, as the viewer and `lungkd segment` keep one; its one-time
    # costs (weights, module, ONNX export + session) are paid here, not in the per-CT time
    segmenter = Segmenter(args.model, weights=weights, settings=settings).load()
    loaded = segmenter.loaded
    cpu0 = _cpu_s()

    def run(volume):
        return run_to_end(segmenter.iter_segment(volume))

    seg = run(ct)
    cpu_seg_s = _cpu_s() - cpu0
    tm = seg.timings.to_dict()
    setup_s = tm["backend_setup"]
    n = tm["slices"]
    scale_slices = n_lung_full / max(n, 1)
    scale_ct = n_full / ct.shape[0]
    est_ct_s = (
        load_ct_s
        + tm["load"]
        + tm["backend_setup"]
        + tm["preprocess"] * scale_ct
        + tm["model"] * scale_slices
        + tm["postprocess"] * scale_ct
    )
    out = {
        "model": args.model,
        "path": args.path,
        "device": seg.provenance.device,
        "threads": seg.provenance.threads,
        "batch_size": seg.provenance.batch_size,
        "params_m": round(loaded.n_parameters / 1e6, 2),
        "crop": seg.provenance.lung_region["crop_shape"],
        "slices_run": n,
        "ms_per_slice": tm["ms_per_slice"],
        "slices_per_s": tm["slices_per_s"],
        "load_ct_s": round(load_ct_s, 3),
        "timings": tm,
        "setup_s": round(setup_s, 2),
        "ct_s": round(load_ct_s + tm["load"] + tm["backend_setup"] + tm["total"], 2)
        if not args.quick
        else None,
        "ct_s_est": round(est_ct_s, 2),
        "cpu_s_est": round(load_ct_cpu_s + cpu_seg_s * scale_slices, 2),
        "cpu_ms_per_slice": round(1000 * cpu_seg_s / max(n, 1), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        "torch": torch.__version__,
    }
    # warm: the model already loaded (as in the viewer, from the second CT on): load_ct + segment
    t = time.perf_counter()
    ct2 = load_ct(args.ct) if not args.quick else ct
    seg2 = run(ct2)
    warm = time.perf_counter() - t
    out["warm_ct_s"] = round(warm, 3) if not args.quick else None
    out["warm_timings"] = seg2.timings.to_dict()
    out["warm_ms_per_slice"] = seg2.timings.ms_per_slice
    # the false-positive stage's first step (issue 13): 3-D candidates with their features, from
    # the probability the segmentation already holds (what `classifier=` adds to a run)
    from napari_lungkd.inference.candidates import find_candidates

    t = time.perf_counter()
    cands = find_candidates(seg.probability, ct.hu, ct.spacing_mm)
    out["candidates_s"] = round(time.perf_counter() - t, 3)
    out["candidates_n"] = len(cands.items)
    # its second step: the model's own bundled classifier scores every candidate (3-D patches)
    from napari_lungkd.inference.fp_reduction import candidate_scores, load_classifier

    clf = load_classifier(args.model)
    if clf is not None:
        t = time.perf_counter()
        candidate_scores(clf, cands, ct.hu, ct.spacing_mm)
        out["classifier_s"] = round(time.perf_counter() - t, 3)
    if seg2.provenance.device.startswith("cuda"):
        out.update(model_only(loaded, seg2.provenance.device, args.batch_size))
        out["gpu"] = torch.cuda.get_device_name(0)
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 0)
    if args.save_mask:
        np.save(args.save_mask, seg.mask)
    return out


def model_only(loaded, device: str, batch: int, repeats: int = 30) -> dict:
    """GPU throughput of the network alone (inputs already on the GPU, synchronised timing)."""
    import torch

    from napari_lungkd.inference.torch_runner import BatchRunner

    runner = BatchRunner(loaded, device, batch)
    res = {"model_only_batch": batch, "model_only_precision": runner.precision}
    for h, w in ((288, 384), (512, 512)):
        x = torch.randn(batch, loaded.spec.in_channels, h, w, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), runner.autocast():
            for _ in range(5):
                loaded.module(x)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(repeats):
                loaded.module(x)
            torch.cuda.synchronize()
        res[f"model_only_slices_per_s_{h}x{w}"] = round(
            batch * repeats / (time.perf_counter() - t), 1
        )
    return res


def run_one(model: str, path: str, args, mask_file: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--model",
        model,
        "--path",
        path,
        "--ct",
        str(args.ct),
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--save-mask",
        str(mask_file),
        "--weights",
        args.weights,
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.quick:
        cmd += ["--quick", str(args.quick)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"worker {model}/{path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _candidate_cell(r: dict, key: str) -> str:
    if r.get("candidates_s") is None:
        return ""
    stage = r["candidates_s"] + r.get("classifier_s", 0.0)
    parts = f"{r['candidates_s']:.2f}" + (
        f" + {r['classifier_s']:.2f} classifier" if "classifier_s" in r else ""
    )
    return f"{parts} ({100 * stage / max(r[key], 1e-9):.0f} %, {r['candidates_n']} candidates)"


def table(rows: list[dict], quick: int | None) -> str:
    from napari_lungkd.inference import Timings
    from napari_lungkd.scoring.speed import speedup

    time_col = "s per CT (est.)" if quick else "s per CT"
    head = (
        f"| model | path | params (M) | ms/slice | slices/s | {time_col} | warm s per CT "
        "| CPU s per CT (est.) | idle est. (s) | peak RSS (MB) | agree w/ eager (Dice) "
        "| T/S (ms/slice) | T/S (CT s) | T/S (CPU s) | setup (s) | candidate stage s (% of CT) |"
    )
    lines = [head, "|" + "---|" * 16]
    by = {(r["model"], r["path"]): r for r in rows}
    key = "ct_s_est" if quick else "ct_s"
    for r in rows:
        s = by.get(("student", r["path"]))
        ratio_m = ratio_ct = ratio_cpu = ""
        if r["model"] == "teacher" and s:
            ratio_m = f"{speedup(Timings(**r['timings']), Timings(**s['timings'])):.2f}"
            ratio_ct = f"{r[key] / s[key]:.2f}"
            ratio_cpu = f"{r['cpu_s_est'] / s['cpu_s_est']:.2f}"
        agree = "" if r.get("agreement") is None else f"{r['agreement']:.4f}"
        idle = r["cpu_s_est"] / max(r["threads"] or 1, 1)
        warm = "" if r.get("warm_ct_s") is None else f"{r['warm_ct_s']:.2f}"
        lines.append(
            f"| {r['model']} | {r['path']} | {r['params_m']} | {r['ms_per_slice']:.1f} "
            f"| {r['slices_per_s']:.2f} | {r[key]:.2f} | {warm} | {r['cpu_s_est']:.1f} | {idle:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {agree} | {ratio_m} | {ratio_ct} | {ratio_cpu} "
            f"| {r['setup_s']:.1f} | {_candidate_cell(r, key)} |"
        )
    gpu = [r for r in rows if "model_only_batch" in r]
    if gpu:
        lines += [
            "",
            f"Model only on {gpu[0]['gpu']} (inputs on the GPU, batch {gpu[0]['model_only_batch']}, "
            f"{gpu[0]['model_only_precision']} autocast, channels-last):",
            "",
            "| model | slices/s at 288x384 (lung crop) | slices/s at 512x512 | peak GPU memory (MB) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['model']} | {r['model_only_slices_per_s_288x384']:.0f} "
            f"| {r['model_only_slices_per_s_512x512']:.0f} | {r['peak_gpu_mb']:.0f} |"
            for r in gpu
        ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--ct", type=Path, help="CT to run on (default: LIDC-IDRI-0001 from the real data)"
    )
    p.add_argument("--models", default="student,teacher")
    p.add_argument("--paths", default="eager,onnx", help="comma list of backends: eager, onnx")
    p.add_argument(
        "--quick", type=int, metavar="N", help="run N lung slices only and extrapolate to the CT"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument(
        "--weights",
        choices=("random", "bundled"),
        default="random",
        help="random (default; timing does not depend on the values) or the bundled trained weights",
    )
    p.add_argument("--json", type=Path)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--save-mask", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.ct = args.ct or find_ct()
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    import tempfile

    import numpy as np

    from napari_lungkd.scoring.metrics import dice

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.paths.split(","):
            for model in args.models.split(","):
                mask_file = Path(tmp) / f"{model}-{path}.npy"
                row = run_one(model, path, args, mask_file)
                eager_mask = Path(tmp) / f"{model}-eager.npy"
                if path != "eager" and eager_mask.is_file():
                    row["agreement"] = dice(np.load(eager_mask), np.load(mask_file))
                rows.append(row)
                print(
                    f"  {model:8s} {path:6s} {row['ms_per_slice']:.0f} ms/slice, CT {row['ct_s'] or row['ct_s_est']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    load = os.getloadavg()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load avg {load[0]:.1f} at the end"
    if rows and rows[0].get("gpu"):
        machine = f"{rows[0]['gpu']}; host {machine}"
    print(
        f"\nLIDC-IDRI-0001 ({args.ct.name[-12:]}), {args.weights} weights, device {args.device}, batch {args.batch_size}"
        f"{f', quick: {args.quick} slices, extrapolated' if args.quick else ''}; {machine}\n"
    )
    print(table(rows, args.quick))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine, "quick": args.quick, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
