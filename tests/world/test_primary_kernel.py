"""The primary rules' kernel (``kernels.primary_actions``: work, explore, upgrade) against
the numpy rules it replaced.

The numpy ``produce``, ``explore`` and ``upgrade`` of before 2026-12-02 are kept here as
oracles. Random valid days of lone worlds and batches (ranked factory slots with many
factories unknown, stress with outages, upgrades of factories shared by several) are
played both ways from the same state and draws: every array of the state, the income and
every event column must agree bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import sample_factored

import civa_env
from civa_env.world import rules
from civa_env.world.actions import ActionBatch
from civa_env.world.arrays import filled
from civa_env.world.config import Config
from civa_env.world.day import factored_batch
from civa_env.world.events import DayEvents
from civa_env.world.kinds import EXPLORE_FOUND, EXPLORE_REVEALED, K, P
from civa_env.world.rules import outage_prob, production
from civa_env.world.state import _ARRAY_FIELDS, WorldState


def reference_produce(state: WorldState, batch: ActionBatch, rng: np.random.Generator, cfg: Config,
            ev: DayEvents, w0: np.ndarray) -> np.ndarray:
    """Work at factories: shares of ``Y_m`` by skill, lognormal noise, outages (with the
    day's ``outage_prob``; one draw per factory whatever the probability, so stressed and
    unstressed worlds stay in step).

    Returns income (N,)."""
    m = state.capacity.shape[0]  # every community's factories
    workers_idx = (state.alive & (batch.primary == P.WORK)).nonzero()[0]
    fac = _pool_factory(state, workers_idx, batch.factory[workers_idx])
    counts = np.bincount(fac, minlength=m)
    p_out = outage_prob(cfg, state.day + 1)  # state.day: days completed
    if state.communities > 1:
        p_out = np.repeat(p_out, state.m_per)
    outage = rng.random(m) < p_out
    # lognormal(0, sigma) is exp(sigma z): one normal per name, exponentiated for the workers.
    z = rng.standard_normal(state.n_pool)
    noise = np.exp(cfg.production_noise * z[workers_idx])
    output = np.where(outage, 0.0, production(state.capacity, counts, cfg))
    skill = state.skill[workers_idx]
    skill_sum = np.bincount(fac, weights=skill, minlength=m)
    share = output[fac] * skill / np.where(skill_sum[fac] > 0, skill_sum[fac], 1.0) * noise
    income = np.zeros(state.n_pool)
    income[workers_idx] = share
    state.wealth[workers_idx] += share
    state.workers[:] = counts
    state.output[:] = np.bincount(fac, weights=share, minlength=m)
    state.outage[:] = outage
    if np.count_nonzero(outage):
        off = outage.nonzero()[0]
        ev.add(K.OUTAGE, filled(len(off), -1, np.int32), factory=off)
    ev.add(K.WORK, workers_idx, factory=fac, amount=share, wealth=w0[workers_idx])
    return income


def _pool_factory(state: WorldState, rows: np.ndarray, local: np.ndarray) -> np.ndarray:
    """The factory rows (int64) of community factory numbers ``local`` chosen by pool rows
    ``rows`` (the numbers themselves for a lone community)."""
    fac = local.astype(np.int64)
    if state.communities > 1:
        fac += rows // state.n_per * state.m_per
    return fac


def reference_explore(state: WorldState, batch: ActionBatch, rng: np.random.Generator, cfg: Config,
            ev: DayEvents, income: np.ndarray, w0: np.ndarray) -> None:
    """Explore: reveal an unknown factory (p=0.3), else find uniform [0, 3] wealth (p=0.3)."""
    # Per name: reveal?, find?, amount found, which unknown factory (uniform among them).
    u = rng.random((4, state.n_pool))
    rows = (state.alive & (batch.primary == P.EXPLORE)).nonzero()[0]
    if len(rows) == 0:
        return
    u_reveal, u_find, found = u[0, rows], u[1, rows], u[2, rows] * cfg.explore_find_max
    unknown = ~state.known[rows]  # (K, M)
    n_unknown = unknown.sum(axis=1)
    # The k-th unknown factory, k uniform in [0, n_unknown).
    k = np.minimum((u[3, rows] * n_unknown).astype(np.int64), np.maximum(n_unknown - 1, 0))
    pick = np.minimum((np.cumsum(unknown, axis=1) <= k[:, None]).sum(axis=1),
                      cfg.n_factories - 1)
    reveal = (u_reveal < cfg.explore_reveal_prob) & (n_unknown > 0)
    state.known[rows[reveal], pick[reveal]] = True
    find = ~reveal & (u_find < cfg.explore_find_prob)
    amount = np.where(find, found, 0.0)
    state.wealth[rows] += amount
    income[rows] += amount
    flag = np.where(reveal, EXPLORE_REVEALED, np.where(find, EXPLORE_FOUND, 0))
    ev.add(K.EXPLORE, rows, factory=np.where(reveal, _pool_factory(state, rows, pick), -1),
           amount=amount,
           flag=flag, wealth=w0[rows])


def reference_upgrade(state: WorldState, batch: ActionBatch, cfg: Config, ev: DayEvents,
            w0: np.ndarray) -> None:
    """``upgrade self`` (skill += 0.1) and ``upgrade factory`` (C_m += 1), each costing 3."""
    me = (state.alive & (batch.primary == P.UPGRADE_SELF)).nonzero()[0]
    if len(me):
        state.wealth[me] -= cfg.upgrade_cost
        state.skill[me] += cfg.skill_gain
        ev.add(K.UPGRADE_SELF, me, amount=state.skill[me], wealth=w0[me])
    fa = (state.alive & (batch.primary == P.UPGRADE_FACTORY)).nonzero()[0]
    if len(fa):
        fac = _pool_factory(state, fa, batch.factory[fa])
        state.wealth[fa] -= cfg.upgrade_cost
        np.add.at(state.capacity, fac, cfg.capacity_gain)
        ev.add(K.UPGRADE_FACTORY, fa, factory=fac, amount=state.capacity[fac], wealth=w0[fa])
    idle = (state.alive & (batch.primary == P.IDLE)).nonzero()[0]
    ev.add(K.IDLE, idle, wealth=w0[idle])


def reference_primary(state, batch, rng, cfg, ev, w0):
    income = reference_produce(state, batch, rng, cfg, ev, w0)
    reference_explore(state, batch, rng, cfg, ev, income, w0)
    reference_upgrade(state, batch, cfg, ev, w0)
    return income


CASES = {
    "lone": (1, dict(n_agents=25)),
    "lone, ranked, stressed": (1, dict(n_agents=60, n_factories=40, factory_slots=4,
                                       known_at_start=2, stress_day=2, stress_outage=6.0)),
    "batch": (6, dict(n_agents=25)),
    "batch, ranked": (4, dict(n_agents=50, n_factories=30, factory_slots=6,
                              known_at_start=1)),
}


def _days(num_envs, days, seed, **config):
    venv = civa_env.vector_env(num_envs=num_envs, **config)
    obs, _ = venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(days):
        acts = sample_factored(obs, venv.spec, rng)
        b = venv.batch
        yield b.state, factored_batch(b.state, b.view, acts, venv.cfg, b.catalogue, "t"), \
            venv.cfg
        obs, *_ = venv.step(acts)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_kernel_plays_the_numpy_primary_rules_bit_for_bit(case, numpy_like_libm):
    num_envs, config = CASES[case]
    seen = {P.WORK: 0, P.EXPLORE: 0, P.UPGRADE_SELF: 0, P.UPGRADE_FACTORY: 0}
    for day, (state, batch, cfg) in enumerate(_days(num_envs, 14, 2, **config)):
        for shuffle in (False, True):
            b = batch
            if shuffle:  # more of the rarer choices: upgrades and explores
                b = ActionBatch.idle(state.n_pool)
                b.primary[:] = batch.primary
                b.factory[:] = batch.factory
                rng = np.random.default_rng(day)
                who = state.alive & (rng.random(state.n_pool) < 0.5)
                b.primary[who] = rng.choice([P.EXPLORE, P.UPGRADE_SELF, P.IDLE], who.sum())
                rich = (b.primary == P.WORK) & (state.wealth >= cfg.upgrade_cost)
                b.primary[rich] = P.UPGRADE_FACTORY
            a, want_ev = state.copy(), DayEvents(1)
            c, got_ev = state.copy(), DayEvents(1)
            w0 = state.wealth.copy()
            want = reference_primary(a, b, np.random.default_rng(day), cfg, want_ev, w0)
            got = np.zeros(state.n_pool)
            rules._primary(c, b, np.random.default_rng(day), cfg, got_ev, w0, got, 7)
            np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
            for name in _ARRAY_FIELDS:
                x, y = getattr(c, name), getattr(a, name)
                assert x.dtype == y.dtype, name
                if x.dtype.kind == "f":
                    x, y = x.view(np.uint64), y.view(np.uint64)
                np.testing.assert_array_equal(x, y, err_msg=f"{case} day {day}: {name}")
            cols_got, _ = got_ev.freeze()
            cols_want, _ = want_ev.freeze()
            for key in cols_want:
                x, y = cols_got[key], cols_want[key]
                if x.dtype.kind == "f":
                    x, y = x.view(np.uint64), y.view(np.uint64)
                np.testing.assert_array_equal(x, y, err_msg=f"{case} day {day}: {key}")
            for p in seen:
                seen[p] += int(np.count_nonzero(state.alive & (b.primary == p)))
    assert min(seen.values()) > 20  # every primary rule was played


def test_the_rules_played_one_at_a_time_are_the_numpy_ones(numpy_like_libm):
    """``rules.produce``, ``explore`` and ``upgrade`` called apart (their own draws) give
    the oracle's states and events."""
    (state, batch, cfg), = list(_days(3, 1, 8, n_agents=25))
    batch.primary[state.alive & (np.arange(state.n_pool) % 3 == 0)] = P.EXPLORE
    batch.primary[state.alive & (np.arange(state.n_pool) % 7 == 0)] = P.UPGRADE_SELF
    w0 = state.wealth.copy()
    a, b = state.copy(), state.copy()
    ea, eb = DayEvents(1), DayEvents(1)
    ra, rb = np.random.default_rng(1), np.random.default_rng(1)
    inc_a = reference_produce(a, batch, ra, cfg, ea, w0)
    inc_b = rules.produce(b, batch, rb, cfg, eb, w0)
    reference_explore(a, batch, ra, cfg, ea, inc_a, w0)
    rules.explore(b, batch, rb, cfg, eb, inc_b, w0)
    reference_upgrade(a, batch, cfg, ea, w0)
    rules.upgrade(b, batch, cfg, eb, w0)
    np.testing.assert_array_equal(inc_a, inc_b)
    for name in _ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for key, col in ea.freeze()[0].items():
        np.testing.assert_array_equal(eb.freeze()[0][key], col, err_msg=key)
    assert ra.random() == rb.random()  # the same amount drawn

