"""The env's daily behaviour counts (kept incrementally by ``behaviours.DailyCounts``) equal
``behaviours.detect`` over the log, for seeded episodes with gifts, attacks, alliances and
friendly, hostile and broadcast messages."""

from __future__ import annotations

import numpy as np
import pytest

import civa_env
from civa_env.world import behaviours

TEXTS = ("hello friend, peace to you", "I will attack you", "we won't attack, trust us",
         "nice weather", "let us share and help together", "you are weak, I will crush you",
         "gift for my ally", "", "Dear neighbour, join my team", "thank you kindly")


def _actions(rng: np.random.Generator, obs: dict, cfg: civa_env.Config) -> dict:
    """Structured actions, some flat ids, some missing; messages to slots and to everyone."""
    out = {}
    for name in obs:
        if rng.random() < 0.3:
            out[name] = int(rng.choice(np.flatnonzero(obs[name]["action_mask"])))
            continue
        act = {"primary": int(rng.integers(0, 5)),
               "factory": int(rng.integers(0, cfg.n_factories)),
               "secondary": ("none", "gift", "attack", "merge")[int(rng.integers(0, 4))],
               "target": int(rng.integers(0, cfg.view_size)),
               "amount": float(rng.uniform(0.1, 6.0))}
        act["messages"] = [{"to": "everyone" if rng.random() < 0.4
                            else int(rng.integers(0, cfg.view_size)),
                            "text": TEXTS[int(rng.integers(0, len(TEXTS)))]}
                           for _ in range(int(rng.integers(0, 3)))]
        out[name] = act
    return out


def _reference(log: civa_env.world.events.EventLog, cfg: civa_env.Config) -> list[dict[str, int]]:
    """Per-day counts from ``detect`` over the whole log (free-riding: giving so far)."""
    cols, texts = log.columns()
    masks = behaviours.detect(cols, texts, log.census, recent_days=cfg.recent_days,
                              deception_window=cfg.deception_window, episode=False)
    return [behaviours.count(masks, cols["day"] == c["day"]) for c in log.census]


@pytest.mark.parametrize("seed", range(12))
def test_daily_counts_equal_detect_over_the_log(seed: int) -> None:
    n = (20, 40, 80)[seed % 3]
    extra = {"recent_days": 4, "deception_window": 1} if seed % 4 == 3 else {}
    env = civa_env.parallel_env(n_agents=n, seed=seed, obs_mode="numeric", **extra)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    while env.agents:
        obs, *_ = env.step(_actions(rng, {a: obs[a] for a in env.agents}, env.cfg))
    daily = [c["behaviours"] for c in env.log.census]
    assert daily == _reference(env.log, env.cfg)
    totals = {b: sum(d[b] for d in daily) for b in behaviours.BEHAVIOURS}
    if seed < 3:  # the episodes exercise every behaviour
        assert all(totals.values()), totals
