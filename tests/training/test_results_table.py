"""The README's results table: mean ± std over seeds and the seed-paired distilled − baseline gap."""

from __future__ import annotations

import json


def _group(dices_per_seed):
    runs = []
    for dices in dices_per_seed:
        cases = [{"case": f"c{i}", "nodule_dice": {"1": d}} for i, d in enumerate(dices)]
        runs.append({"cases": cases})
    mean = [sum(d) / len(d) for d in dices_per_seed]
    m = sum(mean) / len(mean)
    sd = (sum((v - m) ** 2 for v in mean) / (len(mean) - 1)) ** 0.5
    return {"runs": runs, "summary": {"nodule_dice": {"mean": m, "std": sd, "n": len(mean)}}}


def _write(tmp_path, distilled, baseline):
    meta = {
        "n_cases": 6,
        "part": "test",
        "split": "s.json",
        "reference": "truth",
        "device": "cpu",
        "threads": 1,
    }
    path = tmp_path / "r.json"
    path.write_text(
        json.dumps({"meta": meta, "groups": {"distilled": distilled, "baseline": baseline}})
    )
    return path


def test_a_constant_gain_is_beyond_noise_and_cells_show_the_seed_spread(tmp_path):
    from src_training.results_table import table

    base = [[0.5, 0.6, 0.4, 0.7, 0.5, 0.3], [0.4, 0.5, 0.5, 0.6, 0.4, 0.4]]
    dist = [[v + 0.1 for v in seed] for seed in base]
    text, extra = table([_write(tmp_path, _group(dist), _group(base))])
    p = extra["distilled_vs_baseline"]
    assert p["seed_pairs"] == 2 and p["n"] == 12 and abs(p["mean"] - 0.1) < 1e-9
    assert p["ci95"][0] > 0 and "beyond noise" in text and p["wins"] == 12
    assert "0.583 ± 0.024" in text  # seed means 0.600 and 0.567
    assert "mean ± std over 2 training seeds" in text


def test_a_gain_on_one_seed_and_a_loss_on_the_other_is_within_noise(tmp_path):
    from src_training.results_table import table

    base = [[0.5] * 6, [0.5] * 6]
    dist = [[0.6, 0.7, 0.55, 0.6, 0.65, 0.6], [0.4, 0.3, 0.45, 0.4, 0.35, 0.4]]
    text, extra = table([_write(tmp_path, _group(dist), _group(base))])
    lo, hi = extra["distilled_vs_baseline"]["ci95"]
    assert lo < 0 < hi and "within noise" in text
