"""``actions.validate``'s compiled pass (``kernels.validate_actions``) against the numpy
code it replaced (kept here as an oracle, before 2026-12-02): random batches full of what
validation must mend (factories unknown or out of range, upgrades not paid for, targets
that are oneself, dead, negative or beyond the pool, merges with allies, gifts of zero,
negative, NaN or more than is held, messages to the dead) give the same actions, the same
flags in the same order, and the same messages kept."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same_actions
from test_social_kernels import _dense_social_life, _states

from civa_env.world.actions import EVERYONE, ActionBatch, drop_undeliverable, validate
from civa_env.world.arrays import index
from civa_env.world.catalogue import is_allied
from civa_env.world.config import Config
from civa_env.world.kinds import P, Primary, S, Secondary
from civa_env.world.state import Message, WorldState


def reference_validate(batch: ActionBatch, state: WorldState, cfg: Config) -> None:
    """Replace content that cannot be carried out by its nearest valid meaning (flagged)."""
    n, m = state.n_pool, cfg.n_factories
    p, f = batch.primary, batch.factory
    fac = np.minimum(np.maximum(f, 0), m - 1)  # np.clip, with less overhead
    rows = index(n)
    needs_factory = state.alive & ((p == P.WORK) | (p == P.UPGRADE_FACTORY))
    bad = needs_factory & ((f < 0) | (f >= m))
    asks = (needs_factory & ~bad).nonzero()[0]  # (gathered from known for these rows only)
    bad_known = np.zeros(n, bool)
    bad_known[asks] = ~state.known[asks, fac[asks]]
    if np.count_nonzero(bad):
        batch.flag_many(bad.nonzero()[0], "unknown factory: idle")
    if np.count_nonzero(bad_known):
        batch.flag_many(bad_known.nonzero()[0], "factory not known to the resident: idle")
    p[bad | bad_known] = P.IDLE
    upgrading = state.alive & ((p == P.UPGRADE_SELF) | (p == P.UPGRADE_FACTORY))
    poor = upgrading & (state.wealth < cfg.upgrade_cost)
    if np.count_nonzero(poor):
        batch.flag_many(poor.nonzero()[0], f"upgrade costs {cfg.upgrade_cost}: idle")
        p[poor] = P.IDLE
    f[(p != P.WORK) & (p != P.UPGRADE_FACTORY)] = -1

    s, t = batch.secondary, batch.target
    has_sec = state.alive & (s != S.NONE)
    tgt = np.minimum(np.maximum(t, 0), n - 1)
    bad_t = has_sec & ((t < 0) | (t >= n) | ~state.alive[tgt] | (t == rows))
    if np.count_nonzero(bad_t):
        batch.flag_many((bad_t & (t == rows)).nonzero()[0], "cannot target oneself: none")
        batch.flag_many((bad_t & (t != rows)).nonzero()[0],
                        "target is dead or unknown: no secondary action")
        s[bad_t] = S.NONE
    merge = state.alive & (s == S.MERGE)
    if np.count_nonzero(merge):
        mi = merge.nonzero()[0]
        already = is_allied(state, mi, t[mi])
        if np.count_nonzero(already):
            batch.flag_many(mi[already], "already allied: no secondary action")
            s[mi[already]] = S.NONE
    gift = state.alive & (s == S.GIFT)
    a = batch.amount
    bad_amount = gift & ~(a > 0)  # also catches NaN
    if np.count_nonzero(bad_amount):
        batch.flag_many(bad_amount.nonzero()[0], "gift amount must be > 0: no gift")
        s[bad_amount] = S.NONE
    gift &= ~bad_amount
    too_big = gift & (a > np.maximum(state.wealth, 0.0) + 1e-9)
    if np.count_nonzero(too_big):
        batch.flag_many(too_big.nonzero()[0], "gift larger than wealth held: cut")
        a[too_big] = np.maximum(state.wealth[too_big], 0.0)
    t[s == S.NONE] = -1
    a[s != S.GIFT] = 0.0
    drop_undeliverable(batch, state)  # (unchanged: not the kernel's)


def _messy_batch(state, rng: np.random.Generator) -> ActionBatch:
    n = state.n_pool
    b = ActionBatch.idle(n)
    b.primary[:] = rng.integers(0, len(Primary), n)
    b.factory[:] = rng.integers(-2, state.known.shape[1] + 2, n)
    b.secondary[:] = rng.integers(0, len(Secondary), n)
    living = state.alive.nonzero()[0]
    pick = rng.random(n)
    b.target[:] = np.where(pick < 0.6, rng.choice(living, n), np.where(
        pick < 0.7, index(n), rng.integers(-3, n + 3, n)))
    b.amount[:] = np.where(pick < 0.5, rng.random(n) * 30, rng.choice(
        [0.0, -1.0, np.nan, 1e9, 1e-12], n))
    b.messages = [Message(1, int(i), int(j), "hi") for i, j in zip(
        rng.choice(living, 20), rng.choice(np.r_[living, [EVERYONE, -7, n + 4]], 20),
        strict=True)]
    return b


@pytest.mark.parametrize("num_envs", [1, 4])
def test_the_kernel_mends_as_the_numpy_validation_did(num_envs):
    rng = np.random.default_rng(num_envs)
    flagged = set()
    for day, (state, cfg) in enumerate(_states(num_envs, 8, 3, n_agents=25)):
        st = _dense_social_life(state, rng, 4, 6) if day % 2 else state
        st.wealth = np.where(rng.random(st.n_pool) < 0.1, -0.0, st.wealth)
        want = _messy_batch(st, np.random.default_rng(day))
        got = _messy_batch(st, np.random.default_rng(day))
        reference_validate(want, st, cfg)
        validate(got, st, cfg)
        assert_same_actions(got, want, f"day {day}")
        flagged |= {r for reasons in want.invalid.values() for r in reasons}
    assert len(flagged) >= 9  # every reason was met
