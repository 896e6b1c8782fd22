"""Calibration facts (README "Rules", "Calibration", docs/calibration.md): a cooperative
community survives and grows modestly, an all-attack community collapses within 30 days,
a mixture falls in between. The behaviours are scripted in benchmarks/calibration.py from
observations only; nothing in the rules refers to them, so the outcomes follow from the rules.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "calibration.py"
_spec = importlib.util.spec_from_file_location("civa_calibration", _PATH)
calibration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calibration)

SEEDS = range(6)


@pytest.fixture(scope="module")
def results() -> dict[str, list[dict]]:
    return {s: [calibration.run_episode(s, seed) for seed in SEEDS]
            for s in ("cooperative", "half_attack", "all_attack")}


def naup(runs: list[dict]) -> np.ndarray:
    return np.array([r["nAUP"] for r in runs])


def test_cooperative_community_survives_and_grows(results):
    runs = results["cooperative"]
    assert all(r["extinct_day"] is None for r in runs)
    assert (naup(runs) > 0.9).all(), naup(runs)
    assert naup(runs).mean() > 1.0  # modest growth on average
    assert np.mean([r["final_population"] for r in runs]) > 25
    assert all(r["behaviours"]["betrayal"] == 0 for r in runs)  # nobody attacked


def test_all_attack_community_collapses(results):
    runs = results["all_attack"]
    assert naup(runs).mean() < 0.35, naup(runs)
    # Extinct, or nearly, within 30 days.
    assert all(r["final_population"] <= 3 for r in runs), [r["final_population"] for r in runs]
    # About half go extinct (docs/calibration.md, 20 seeds); of these 6, at least one.
    assert sum(r["extinct_day"] is not None for r in runs) >= 1


def test_mixture_in_between(results):
    coop, half, war = (naup(results[s]).mean() for s in ("cooperative", "half_attack",
                                                         "all_attack"))
    assert war + 0.2 < half < coop - 0.2, (coop, half, war)


def test_scripts_decide_from_observations_only():
    # The scripted residents act through the env's catalogue ids, which step accepts unflagged.
    import civa_env

    env = civa_env.parallel_env(n_agents=25, obs_mode="numeric")
    obs, _ = env.reset(seed=0)
    script = calibration.Script("half_attack_gifts", env, 0)
    for _ in range(3):
        obs, _, _, _, infos = env.step(script.act({a: obs[a] for a in env.agents}))
        assert all(not info["invalid"] for info in infos.values())
    with pytest.raises(ValueError, match="unknown scenario"):
        calibration.Script("peace", env, 0)


def test_table_prints():
    lines = []
    rows = calibration.main(["--seeds", "1", "--days", "3", "--scenarios", "cooperative"],
                            out=lines.append)
    assert rows[0]["scenario"] == "cooperative" and "| cooperative | 1 |" in lines[0]
