"""Paired effects in the sweep report: differences over shared seeds."""

from __future__ import annotations

import numpy as np

from civa_env.experiments.report import paired_effects


def rows_with_shared_world_noise(effect: float, seeds: int = 8,
                                 noise: float = 0.01) -> list[dict]:
    """Baseline and one cell whose per-seed values share a large world term."""
    rng = np.random.default_rng(0)
    world = rng.normal(0, 0.3, seeds)  # seed-to-seed differences between worlds
    rows = []
    for s in range(seeds):
        rows.append({"condition": "baseline", "prevalence": 0.0, "seed": s,
                     "nAUP": 1.0 + world[s]})
        rows.append({"condition": "with:power", "prevalence": 0.5, "seed": s,
                     "nAUP": 1.0 + world[s] + effect + rng.normal(0, noise)})
        rows.append({"condition": "with:power", "prevalence": 0.0, "seed": s,
                     "nAUP": 1.0 + world[s]})  # prevalence 0 is baseline: not an effect
    return rows


def test_paired_difference_cancels_the_shared_world_noise():
    (eff,) = paired_effects(rows_with_shared_world_noise(-0.1), "nAUP")
    assert (eff["condition"], eff["prevalence"], eff["n"]) == ("with:power", 0.5, 8)
    assert abs(eff["diff"] + 0.1) < 0.01
    assert eff["clear"] and eff["lo"] < eff["diff"] < eff["hi"] < 0
    # The paired interval is far narrower than the unpaired one over the same runs.
    assert eff["width"] < 0.2 * eff["unpaired_width"]


def test_no_effect_is_not_clear_and_unshared_seeds_are_left_out():
    rows = rows_with_shared_world_noise(0.0, noise=0.0)
    rows.append({"condition": "with:power", "prevalence": 0.5, "seed": 99, "nAUP": 5.0})
    (eff,) = paired_effects(rows, "nAUP")
    assert eff["n"] == 8 and eff["diff"] == 0.0 and not eff["clear"]
    assert paired_effects([r for r in rows if r["condition"] != "baseline"], "nAUP") == []
