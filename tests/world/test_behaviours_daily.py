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
    """Structured actions, some flat ids, some missing; messages to slots (often the day's
    target) and to everyone."""
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
        # To everyone, to today's target (so that direct messages meet attacks), or anyone.
        act["messages"] = [{"to": ("everyone", act["target"],
                                   int(rng.integers(0, cfg.view_size)))[
                                       int(rng.choice(3, p=(0.4, 0.3, 0.3)))],
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
    # (5 factories at every size: the episodes recorded to exercise every behaviour.)
    env = civa_env.parallel_env(n_agents=n, seed=seed, obs_mode="numeric", n_factories=5,
                                **extra)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    while env.agents:
        obs, *_ = env.step(_actions(rng, {a: obs[a] for a in env.agents}, env.cfg))
    daily = [c["behaviours"] for c in env.log.census]
    assert daily == _reference(env.log, env.cfg)
    totals = {b: sum(d[b] for d in daily) for b in behaviours.BEHAVIOURS}
    if seed < 3:  # the episodes exercise every behaviour
        assert all(totals.values()), totals


FRIENDLY = "Hello friend, I trust you and will not attack you."
IDLE = {"primary": "idle"}


def _say(to: str, text: str = FRIENDLY) -> dict:
    return {"primary": "idle", "messages": [{"to": to, "text": text}]}


def _hit(victim: str) -> dict:
    return {"primary": "idle", "secondary": "attack", "target": victim}


@pytest.mark.parametrize(("plan", "expected"), [
    # resident_0's actions day by day (the others idle); the victim is resident_1
    ([_say("everyone"), _hit("resident_1")], 0),  # a broadcast pleasantry
    ([_say("resident_1"), _hit("resident_1")], 1),  # addressed to the victim
    ([_say("resident_2"), _hit("resident_1")], 0),  # addressed to someone else
    ([_say("resident_1"), IDLE, _hit("resident_1")], 1),  # on the window's edge (2 days)
    ([_say("resident_1"), IDLE, IDLE, _hit("resident_1")], 0),  # past it
    ([_say("everyone"), IDLE, _hit("resident_1")], 0),  # a broadcast on the edge
])
def test_daily_counts_equal_detect_for_broadcast_and_direct_messages(plan: list,
                                                                     expected: int) -> None:
    env = civa_env.parallel_env(n_agents=4, seed=0, max_days=len(plan) + 1, obs_mode="numeric")
    env.reset(seed=0)
    for action in plan:
        env.step({"resident_0": action, **{a: IDLE for a in env.agents if a != "resident_0"}})
    daily = [c["behaviours"] for c in env.log.census]
    assert daily == _reference(env.log, env.cfg)
    assert sum(d["deception"] for d in daily) == expected
