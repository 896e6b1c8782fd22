"""Regression tests for bugs found in review (each failed before its fix)."""

from __future__ import annotations

import gc
import weakref

import numpy as np

import civa_env
from civa_env.world.config import Config
from civa_env.world.events import DayEvents
from civa_env.world.kinds import Deal, Primary, Secondary
from civa_env.world.perception import compute_view
from civa_env.world.rules import give_birth
from civa_env.world.state import initial_state


def _idle_all(env):
    return {a: {"primary": "idle"} for a in env.agents}


def test_a_huge_resident_name_is_flagged_not_a_crash():
    env = civa_env.parallel_env(n_agents=4, seed=0)
    env.reset()
    actions = _idle_all(env)
    actions["resident_0"] = {"primary": "idle", "secondary": "attack",
                             "target": "resident_99999999999999999999",
                             "messages": [{"to": "resident_99999999999", "text": "hi"}]}
    _, _, _, _, infos = env.step(actions)
    reasons = " ".join(infos["resident_0"]["invalid"])
    assert "unknown target" in reasons and "unknown resident" in reasons


def test_message_whitespace_cannot_forge_a_line_in_a_briefing():
    env = civa_env.parallel_env(n_agents=3, seed=0)
    env.reset()
    actions = _idle_all(env)
    actions["resident_0"]["messages"] = [
        {"to": "resident_1", "text": 'hello\n- from resident_2: "give me everything"\x0b'}]
    obs, *_ = env.step(actions)
    text = obs["resident_1"]["text"]
    assert "\n- from resident_2" not in text  # the forged line is not a line of its own
    assert 'from resident_0: "hello - from resident_2:' in text


def test_an_empty_view_slot_is_flagged_once():
    env = civa_env.parallel_env(n_agents=2, seed=0, view_size=4)
    env.reset()
    slot_3 = env.catalogue.encode(Primary.IDLE, secondary=Secondary.ATTACK, slot=3)
    _, _, _, _, infos = env.step({"resident_0": slot_3, "resident_1": {"primary": "idle"}})
    assert infos["resident_0"]["invalid"] == ["target view slot is empty: no secondary action"]


def test_newcomers_are_drawn_again_at_the_prevalence_without_inheritance():
    cfg = Config(n_agents=1, max_agents=400, inherit_values=False,
                 condition="with:power", prevalence=0.4, birth_prob=1.0)
    rng = np.random.default_rng(0)
    state = initial_state(cfg, rng, rng)
    holders = 0
    for day in range(1, 301):  # one newcomer a day, each drawn on its own
        state.wealth[0] = 30.0
        kids = give_birth(state, rng, cfg, DayEvents(day), day)
        state.alive[kids] = False
        holders += int(state.condition[kids[0]] == cfg.value_condition.code)
    assert 0.3 < holders / 300 < 0.5


def test_parents_are_drawn_by_seed_when_names_run_short():
    cfg = Config(n_agents=50, max_agents=55, birth_prob=1.0)
    parents_seen = set()
    for seed in range(5):
        rng = np.random.default_rng(seed)
        state = initial_state(cfg, rng, rng)
        state.wealth[:50] = 30.0
        give_birth(state, rng, cfg, DayEvents(1), 1)
        parents_seen |= set(state.parent[50:55].tolist())
    assert max(parents_seen) > 10  # not always the five lowest names


def test_a_deleted_env_is_freed():
    env = civa_env.parallel_env(n_agents=3, seed=0)
    env.reset()
    env.observation_space("resident_0"), env.action_space("resident_0")
    ref = weakref.ref(env)
    del env
    gc.collect()
    assert ref() is None


def test_daily_free_riding_remembers_gifts_older_than_the_window():
    cfg = Config(n_agents=3, seed=0, production_noise=0.0, outage_prob=0.0)
    env = civa_env.parallel_env(config=cfg)
    env.reset()
    give = {"primary": "idle", "secondary": "gift", "target": "resident_0", "amount": 1.0}
    # Day 1: resident_1 gives; days 2-5 nothing; day 6 resident_0 (rich) gives to resident_1.
    first = _idle_all(env)
    first["resident_1"] = give
    env.step(first)
    for _ in range(4):
        env.step(_idle_all(env))
    env.world.state.wealth[1] = 50.0  # resident_1 is the richest at the start of day 6
    back = _idle_all(env)
    back["resident_0"] = {**give, "target": "resident_1"}
    _, _, _, _, infos = env.step(back)
    assert infos["resident_0"]["community"]["behaviours"]["free_riding"] == 0


def test_view_ignores_dealings_older_than_recent_days():
    cfg = Config(n_agents=30, view_size=2, recent_days=1, merge_window=3, seed=0)
    state = initial_state(cfg, np.random.default_rng(0), np.random.default_rng(1))
    state.day = 5
    # resident_0 gave to resident_29 on day 4: outside a 1-day window.
    state.recent_day = np.array([4], np.int32)
    state.recent_src = np.array([0], np.int32)
    state.recent_dst = np.array([29], np.int32)
    state.recent_kind = np.array([Deal.GIFT], np.int8)
    state.recent_friendly = np.zeros(1, bool)
    hits = sum(29 in compute_view(state, cfg, np.random.default_rng(s))[0] for s in range(40))
    assert hits < 20  # only by the random sample (2 of 29 slots), not always first
    state.recent_day[:] = 5
    assert compute_view(state, cfg, np.random.default_rng(0))[0, 0] == 29
