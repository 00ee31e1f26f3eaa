"""Turn a training checkpoint into the plugin's weights file (safetensors + metadata + SHA-256).

    python -m src_training.export runs/student_kd/best.pt student.safetensors [--precision fp16] \
        [--metrics results/table.json --metrics-label distilled]

The file is written by ``napari_lungkd.models.weights.save_weights`` (atomic; JSON header with the model
spec and its preprocessing, the training config, the data split with its patients, the training
history and metrics, the package version and a hash of every tensor) and then read back with
``load_weights`` into a freshly built model, so a file that the plugin could not load is never
left behind. ``--precision fp16`` stores half-precision tensors (half the size; the plugin casts them
back to float32 when it loads them); ``--precision int8`` stores large convolution weights as int8 with
one scale per output channel (a quarter of the size; :mod:`napari_lungkd.models.quant`, dequantised
by the plugin's loader). Check an int8 file's Dice against the fp32 one with ``evaluate`` before you
ship it. Only the model's own tensors are exported: the distillation adapters and the optimizer state
stay in the checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_lungkd.errors import TrainingError
from src_training import run_main
from src_training.checkpoints import read_checkpoint


def _metrics_from(results_json, label: str | None, weights_path: str | None) -> dict:
    """The row of an evaluate JSON for this model (by label, or by the file it scored)."""
    doc = json.loads(Path(results_json).read_text())
    for name, group in doc.get("groups", {}).items():
        if label is not None and name != label:
            continue
        summary = {k: v["mean"] for k, v in group["summary"].items() if v is not None}
        return {
            "label": name,
            "evaluation": summary,
            "meta": doc.get("meta", {}),
            "n_seeds": len(group["files"]),
        }
    raise TrainingError(f"Results file {results_json} has no model labelled {label!r}.")


def _write_checked(out_path, state, spec, metadata) -> dict:
    """Write the weights file, read it back the way the plugin does into a freshly built model,
    and return ``{"path", "sha256", "spec", "bytes"}``."""
    from napari_lungkd.models.specs import build_model
    from napari_lungkd.models.weights import load_state_into, load_weights, save_weights

    sha = save_weights(out_path, state, spec, metadata)
    back, info = load_weights(out_path, expected_spec=spec)
    load_state_into(build_model(info.spec), back, out_path)
    return {
        "path": str(out_path),
        "sha256": sha,
        "spec": spec.to_dict(),
        "bytes": Path(out_path).stat().st_size,
    }


def export(
    checkpoint,
    out_path,
    fp16: bool = False,
    name: str | None = None,
    metrics: dict | None = None,
    precision: str | None = None,
) -> dict:
    """Write the weights file for ``checkpoint``; returns ``{"path", "sha256", "spec", "bytes"}``."""
    from napari_lungkd.models.quant import compress
    from napari_lungkd.models.specs import ModelSpec
    from napari_lungkd.models.weights import (
        file_sha256,
    )

    precision = precision or ("fp16" if fp16 else "fp32")

    checkpoint = Path(checkpoint)
    ckpt = read_checkpoint(checkpoint)
    spec, state = ModelSpec.from_dict(ckpt["spec"]), ckpt["model"]
    if name:
        spec = spec.with_(name=name)
    try:
        state = compress(state, precision)
    except ValueError as exc:
        raise TrainingError(str(exc)) from None
    run_state = ckpt.get("state", {})
    metadata = {
        "training": {
            "config": ckpt.get("config"),
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": file_sha256(checkpoint),
            "epochs_done": run_state.get("epoch"),
            "best_epoch": run_state.get("best_epoch"),
            "history": run_state.get("history", []),
            "n_parameters": ckpt.get("n_parameters"),
            "teacher": (ckpt.get("config") or {}).get("teacher"),
        },
        "data_split": ckpt.get("data_split", {}),
        "metrics": {"val_dice_best": run_state.get("best_dice"), **(metrics or {})},
        "precision": {"fp32": "float32", "fp16": "float16", "int8": "int8 per-channel"}[precision],
    }
    return _write_checked(out_path, state, spec, metadata)


def restamp(
    src, out_path, name: str | None = None, metrics: dict | None = None, extra=None
) -> dict:
    """Write an exported weights file again with its name and metadata brought up to date.

    The tensors go through as they are stored (an int8 file stays the same int8 bytes: no second
    quantisation); ``metrics`` is merged into the header's ``metrics``, ``extra`` (a dict) into the
    header. For weights that came back from a GPU machine (:mod:`src_training.oneshot`), whose
    held-out scores are measured here afterwards. Returns what :func:`export` returns."""
    from safetensors import safe_open

    from napari_lungkd.models.specs import ModelSpec
    from napari_lungkd.models.weights import (
        file_sha256,
        load_weights,
    )
    from napari_lungkd.models.weights_file import METADATA_KEY

    src = Path(src)
    load_weights(src)  # verified first: a tampered or foreign file is refused here
    with safe_open(str(src), framework="pt") as f:
        header = json.loads((f.metadata() or {})[METADATA_KEY])
        state = {k: f.get_tensor(k) for k in f.keys()}
    spec = ModelSpec.from_dict(header["spec"])
    if name:
        spec = spec.with_(name=name)
    keep = ("format", "spec", "preprocessing", "tensors_sha256", "header_sha256")
    metadata = {k: v for k, v in header.items() if k not in keep}
    metadata["metrics"] = {**(metadata.get("metrics") or {}), **(metrics or {})}
    metadata.update(extra or {})
    metadata["restamped_from"] = {"file": src.name, "sha256": file_sha256(src)}
    return _write_checked(out_path, state, spec, metadata)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.export", description=__doc__.splitlines()[0]
    )
    ap.add_argument("checkpoint", help="best.pt or last.pt of a training run")
    ap.add_argument("out", help="weights file to write (.safetensors)")
    ap.add_argument(
        "--precision",
        choices=("fp32", "fp16", "int8"),
        default=None,
        help="tensor precision in the file (default fp32; int8 = per-channel conv weights)",
    )
    ap.add_argument("--fp16", action="store_true", help="same as --precision fp16")
    ap.add_argument(
        "--name", default=None, help="model name stored in the spec (default: the run's)"
    )
    ap.add_argument(
        "--metrics", default=None, help="an evaluate JSON whose row is stored in the metadata"
    )
    ap.add_argument(
        "--metrics-label", default=None, help="which model of --metrics (default: the first)"
    )
    args = ap.parse_args(argv)
    metrics = (
        _metrics_from(args.metrics, args.metrics_label, args.checkpoint) if args.metrics else None
    )
    done = export(
        args.checkpoint,
        args.out,
        fp16=args.fp16,
        name=args.name,
        metrics=metrics,
        precision=args.precision,
    )
    print(f"{done['path']}: {done['bytes'] / 1e6:.1f} MB, sha256 {done['sha256']}")
    return 0


if __name__ == "__main__":
    run_main(main)
