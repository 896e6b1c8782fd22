"""Paired worlds: a value condition changes the world only through what residents choose.

With the same seed and a value-blind policy (the first valid action of each mask), every
condition and prevalence must give the same trajectory: living residents, rewards and the
event log, day after day. Holder sets are nested across prevalences, and prevalence 0 is
the baseline world.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from civa_env import world
from civa_env.world.config import Config
from civa_env.world.events import agent_name
from civa_env.world.values import ValueCondition, all_conditions

CELLS = [("baseline", 0.0), ("with:power", 0.25), ("with:power", 1.0),
         ("without:benevolence", 0.5), ("with:tradition", 0.75)]
SEEDS = range(10)


def blind_trajectory(cfg: Config, seed: int, choice: str = "first") -> dict:
    """Play a whole episode with a value-blind policy: the first valid flat action of each
    resident's mask, or (``choice="random"``) a uniformly random valid one from a stream
    of its own (seeded by the run's seed only), which explores, gives, attacks and merges."""
    w = world.reset(cfg, seed)
    rng = np.random.default_rng([seed, 99])
    living, wealth = [], []
    while not w.done:
        seen = w.observe(w.living, text=False)
        if choice == "first":
            first = seen.masks.argmax(axis=1)  # masks are 0/1: the first valid id
        else:
            scores = rng.random(seen.masks.shape)
            first = np.where(seen.masks > 0, scores, -1.0).argmax(axis=1)
        actions = {agent_name(i): int(a) for i, a in zip(seen.rows.tolist(), first.tolist(),
                                                         strict=True)}
        w, day = world.step(w, actions)
        living.append(w.living.tolist())
        wealth.append(day.after.wealth.tobytes())  # rewards are wealth changes
    log = io.StringIO()
    for d in range(w.log.n_days):
        w.log.write_day(log, d)
    return {"living": living, "wealth": wealth, "log": log.getvalue(),
            "capacity": w.state.capacity.tobytes(), "conditions": w.state.condition.copy()}


@pytest.mark.parametrize("seed", SEEDS)
def test_value_blind_policy_gives_the_same_world_in_every_cell(seed):
    base = Config(n_agents=25, max_days=30, birth_threshold=14.0)
    runs = {cell: blind_trajectory(base.replace(condition=cell[0], prevalence=cell[1]), seed)
            for cell in CELLS}
    ref = runs[CELLS[0]]
    assert len(ref["living"]) == 30 and ref["log"]
    for cell, run in runs.items():
        assert run["living"] == ref["living"], cell
        assert run["wealth"] == ref["wealth"], cell
        assert run["log"] == ref["log"], cell
        assert run["capacity"] == ref["capacity"], cell
    # The cells do differ in who holds a value (or the test would be empty).
    assert (runs[("with:power", 1.0)]["conditions"][:25] > 0).all()
    assert (runs[("baseline", 0.0)]["conditions"] == 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_random_value_blind_actions_give_the_same_world_in_every_cell(seed):
    """Random valid actions exercise every rule (explore, gifts, attacks and their order,
    merges, views): still the same world in every cell."""
    base = Config(n_agents=25, max_days=30)
    runs = {cell: blind_trajectory(base.replace(condition=cell[0], prevalence=cell[1]), seed,
                                   "random") for cell in CELLS}
    ref = runs[CELLS[0]]
    kinds = {json.loads(line)["kind"] for line in ref["log"].splitlines()}
    assert {"explore", "gift", "attack", "merge_proposal", "death"} <= kinds
    for cell, run in runs.items():
        assert run["log"] == ref["log"], cell
        assert run["wealth"] == ref["wealth"], cell


def test_daily_stream_stays_in_step_whatever_residents_choose():
    """Two different action sets on the same seed: the daily stream is drawn by the same
    amount each day, so tomorrow's draws (outages, noise, views) stay common."""
    cfg = Config(n_agents=25, max_days=15)
    a, b = world.reset(cfg, 7), world.reset(cfg, 7)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(2)
    for _ in range(15):
        for w, rng in ((a, rng_a), (b, rng_b)):
            seen = w.observe(w.living, text=False)
            pick = np.where(seen.masks > 0, rng.random(seen.masks.shape), -1.0).argmax(axis=1)
            world.step(w, {agent_name(i): int(x) for i, x in zip(seen.rows.tolist(),
                                                                pick.tolist(), strict=True)})
        assert a.dynamics.bit_generator.state == b.dynamics.bit_generator.state
        assert (a.state.outage == b.state.outage).all()
        if a.done or b.done:
            break
    assert a.day >= 5


def test_different_seeds_give_different_worlds():
    cfg = Config(n_agents=25, max_days=10)
    assert blind_trajectory(cfg, 0)["log"] != blind_trajectory(cfg, 1)["log"]


@pytest.mark.parametrize("condition", ["with:power", "without:benevolence", "with:tradition"])
def test_holder_sets_are_nested_across_prevalences(condition):
    code = ValueCondition.parse(condition).code
    for seed in range(5):
        holders = []
        for p in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
            state = world.reset(Config(n_agents=25, condition=condition, prevalence=p),
                                seed).state
            held = set(np.flatnonzero(state.condition[:25] == code).tolist())
            assert len(held) == int(np.floor(p * 25 + 0.5))
            holders.append(held)
        for smaller, larger in zip(holders, holders[1:], strict=False):
            assert smaller <= larger


def test_the_same_founders_hold_any_condition_at_one_prevalence():
    """Who holds the condition depends on the seed and prevalence, not on the condition."""
    for seed in range(3):
        sets = set()
        for condition in all_conditions()[1:]:
            state = world.reset(Config(n_agents=25, condition=condition, prevalence=0.5),
                                seed).state
            sets.add(tuple(np.flatnonzero(state.condition[:25]).tolist()))
        assert len(sets) == 1


@pytest.mark.parametrize("condition", ["with:power", "without:benevolence"])
def test_prevalence_zero_is_the_baseline_world(condition):
    for seed in range(3):
        zero = blind_trajectory(Config(n_agents=25, condition=condition, prevalence=0.0), seed)
        base = blind_trajectory(Config(n_agents=25), seed)
        assert zero["log"] == base["log"]
        assert (zero["conditions"] == base["conditions"]).all()


def test_newcomers_drawn_again_are_nested_and_paired():
    """Without inheritance, newcomers draw from the value stream: the world is the same in
    every cell, and a newcomer who holds the condition at p holds it at every p' > p."""
    base = Config(n_agents=25, max_days=30, birth_threshold=14.0, inherit_values=False,
                  condition="with:power")
    runs = {p: blind_trajectory(base.replace(prevalence=p), 4) for p in (0.25, 0.5, 1.0)}
    assert runs[0.25]["log"] == runs[0.5]["log"] == runs[1.0]["log"]
    newcomers = slice(25, None)
    held = {p: runs[p]["conditions"][newcomers] > 0 for p in runs}
    n_born = int(runs[1.0]["conditions"][newcomers].astype(bool).sum())
    assert n_born > 0  # births happened (prevalence 1: every newcomer holds it)
    assert not (held[0.25] & ~held[0.5]).any() and not (held[0.5] & ~held[1.0]).any()


def test_world_package_loads_no_framework():
    code = ("import sys, civa_env.world, civa_env.world.day, civa_env.world.perception; "
            "import civa_env.world.metrics, civa_env.world.rules, civa_env.world.behaviours; "
            "print(json.dumps(sorted(m for m in ('gymnasium', 'pettingzoo', "
            "'stable_baselines3', 'torch') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("order", ["civa_first", "pettingzoo_first"])
def test_registry_works_in_either_import_order(order):
    imports = ("import civa_env; import pettingzoo" if order == "civa_first"
               else "import pettingzoo; import civa_env")
    code = (f"{imports}; env = pettingzoo.make('parallel', 'civa/civa-v0', n_agents=3); "
            "env.reset(seed=0); print(type(env).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "CivaEnv"


@pytest.mark.parametrize(("p", "n", "k"), [(0.5, 25, 13), (0.7, 45, 32), (0.35, 90, 32),
                                           (0.25, 25, 6), (0.0, 25, 0), (1.0, 25, 25)])
def test_holder_count_rounds_half_way_cases_up(p, n, k):
    from civa_env.world.values import holder_count

    assert holder_count(p, n) == k


def test_negative_seeds_are_refused_by_name():
    with pytest.raises(ValueError, match="seed"):
        Config(seed=-1)
    with pytest.raises(ValueError, match="seed"):
        world.reset(Config(), -3)


def test_a_world_without_a_seed_records_the_one_it_drew():
    w = world.reset(Config(n_agents=5, max_days=3))
    assert isinstance(w.seed, int) and w.seed >= 0
    again = world.reset(Config(n_agents=5, max_days=3), w.seed)
    assert (again.state.wealth == w.state.wealth).all()


def test_env_resets_without_a_seed_replay_the_sequence_after_a_seeded_reset():
    import civa_env

    env = civa_env.parallel_env(n_agents=5, max_days=3)
    runs = []
    for _ in range(2):
        env.reset(seed=5)
        first = env.world.state.wealth.copy()
        env.reset()
        runs.append((first, env.world.state.wealth.copy()))
    assert (runs[0][0] == runs[1][0]).all() and (runs[0][1] == runs[1][1]).all()
    assert not (runs[0][0] == runs[0][1]).all()  # the second episode is another world
