"""Ablation: which distillation level, with or without augmentation, helps the student.

    python -m src_training.ablation src_training/configs/student_kd.yaml --out runs/ablation \
        [--seeds 0 1 2] [--levels none output features both] [--part val]

For each level and augmentation setting (and seed) it trains the student from the KD config with:

* ``none``     no distillation (the baseline student; reference row);
* ``output``   response KD only (Bernoulli KL at temperature T, weight from the config);
* ``features`` intermediate features only (attention transfer + EMKD region affinity +
  channel-wise distillation, weights from ``--feature-weights``);
* ``both``     output and features;

each ``+aug`` and ``-aug``; then scores every best checkpoint with ``evaluate`` on the split's
validation part (not the test part: the ablation chooses settings) and prints one table.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from napari_lungkd.errors import TrainingError
from napari_lungkd.files import atomic_write_bytes, write_json
from napari_lungkd.progress import run_with_tqdm
from src_training import run_main
from src_training.config import AugmentConfig, TrainConfig, load_config
from src_training.evaluate import iter_evaluate
from src_training.train import train

LEVELS = ("none", "output", "features", "both")
FEATURE_TERMS = ("attention", "region_affinity", "channel_wise")
DEFAULT_FEATURES = {"attention": 100.0, "region_affinity": 1.0, "channel_wise": 0.1}


def variant_config(
    base: TrainConfig, level: str, augment: bool, seed: int, out: Path, features: dict
) -> TrainConfig:
    """The config of one ablation run."""
    if level not in LEVELS:
        raise TrainingError(f"Ablation level {level!r} is not one of {LEVELS}.")
    if level != "none" and not base.teacher:
        raise TrainingError(
            "The ablation's base config needs a teacher (teacher: PATH) for the KD levels."
        )
    tag = f"{level}{'+aug' if augment else '-aug'}"
    kd_on = level in ("output", "both")
    features_on = level in ("features", "both")
    distill = replace(
        base.distill,
        response=(base.distill.response or 0.5) if kd_on else 0.0,
        **{t: float(features.get(t, 0.0)) if features_on else 0.0 for t in FEATURE_TERMS},
    )
    return replace(
        base,
        name=f"{tag}_s{seed}",
        out=str(out / f"{level}_{'aug' if augment else 'noaug'}_s{seed}"),
        seed=seed,
        augment=(base.augment or AugmentConfig()) if augment else None,
        distill=distill,
        teacher=None if level == "none" else base.teacher,
    )


def run_ablation(
    config_path,
    out,
    seeds=(0,),
    levels=LEVELS,
    part: str = "val",
    overrides=(),
    features=None,
    device: str = "cpu",
    resume: bool = False,
) -> dict:
    base = load_config(config_path, overrides)
    out = Path(out)
    features = DEFAULT_FEATURES if features is None else features
    groups: dict[str, list[str]] = {}
    for level in levels:
        for augment in (True, False):
            for seed in seeds:
                cfg = variant_config(base, level, augment, seed, out, features)
                run_dir = Path(cfg.out)
                if not (resume and (run_dir / "summary.json").is_file()):
                    train(cfg, resume=resume and (run_dir / "last.pt").is_file(), quiet=True)
                label = f"{level} {'+aug' if augment else '-aug'}"
                groups.setdefault(label, []).append(str(run_dir / "best.pt"))
    doc = run_with_tqdm(
        iter_evaluate(base.cache, base.split, groups, part=part, device=device), "ablation"
    )
    doc["meta"]["ablation"] = {
        "config": str(config_path),
        "levels": list(levels),
        "seeds": list(seeds),
        "feature_weights": features,
        "response": base.distill.response,
    }
    write_json(out / "ablation.json", doc)
    atomic_write_bytes(out / "ablation.md", doc["markdown"].encode())
    return doc


def _features(text: str | None) -> dict | None:
    if not text:
        return None
    pairs = dict(item.split("=", 1) for item in text.split(","))
    unknown = set(pairs) - set(FEATURE_TERMS)
    if unknown:
        raise TrainingError(
            f"--feature-weights names unknown terms {sorted(unknown)} (known: {FEATURE_TERMS})."
        )
    return {k: float(v) for k, v in pairs.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m src_training.ablation", description=__doc__.splitlines()[0]
    )
    ap.add_argument("config", help="the distilled student's config (with a teacher)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--levels", nargs="+", default=list(LEVELS), choices=LEVELS)
    ap.add_argument("--part", default="val", choices=["val", "test"])
    ap.add_argument(
        "--feature-weights",
        default=None,
        help="e.g. attention=100,region_affinity=1,channel_wise=0.1",
    )
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument(
        "--device", default="cpu", help="device for the evaluation (training uses the config's)"
    )
    ap.add_argument(
        "--resume", action="store_true", help="skip finished runs, resume unfinished ones"
    )
    args = ap.parse_args(argv)
    doc = run_ablation(
        args.config,
        args.out,
        tuple(args.seeds),
        tuple(args.levels),
        args.part,
        args.overrides,
        _features(args.feature_weights),
        args.device,
        args.resume,
    )
    print(doc["markdown"])
    return 0


if __name__ == "__main__":
    run_main(main)
