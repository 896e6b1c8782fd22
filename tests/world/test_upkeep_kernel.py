"""``rules.apply_upkeep``'s compiled pass (``kernels.pay_upkeep``) against the numpy code it
replaced (kept here as an oracle, before 2026-12-02): batches whose communities are on
different days (before and after a stress day, on a shock day), idlers and workers, the
dead, and wealth at -0.0 and NaN, give the same costs and wealth bit for bit, and draw the
same numbers."""

from __future__ import annotations

import numpy as np
import pytest
from test_social_kernels import _states

from civa_env.world import rules
from civa_env.world.actions import ActionBatch
from civa_env.world.config import Config
from civa_env.world.kinds import P
from civa_env.world.state import WorldState


def reference_upkeep(state: WorldState, batch: ActionBatch, rng: np.random.Generator,
                     cfg: Config) -> np.ndarray:
    upkeep = cfg.upkeep * rules.upkeep_factor(cfg, state.day + 1)
    if state.communities > 1:
        upkeep = np.repeat(upkeep, state.n_per)
    cost = upkeep * np.exp(cfg.upkeep_noise * rng.standard_normal(state.n_pool))
    cost = np.where(batch.primary == P.IDLE, cost * cfg.idle_upkeep_factor, cost)
    cost = np.where(state.alive, cost, 0.0)
    state.wealth -= cost
    return cost


@pytest.mark.parametrize("num_envs", [1, 5])
def test_the_kernel_charges_as_the_numpy_upkeep_did(num_envs, numpy_like_libm):
    config = {"n_agents": 25, "stress_day": 3, "stress_upkeep": 1.7, "shock_day": 5,
              "shock_upkeep": 2.5, "upkeep": 1.3, "upkeep_noise": 0.4}
    rng = np.random.default_rng(num_envs)
    for day, (state, cfg) in enumerate(_states(num_envs, 7, 2, **config)):
        st = state.copy()
        if num_envs > 1:  # communities on different days
            st.day = np.minimum(np.arange(num_envs, dtype=np.int64) + day, cfg.max_days - 1)
        odd = rng.random(st.n_pool)
        st.wealth = np.where(odd < 0.05, -0.0, np.where(odd < 0.08, np.nan, st.wealth))
        batch = ActionBatch.idle(st.n_pool)
        batch.primary[:] = rng.choice([P.IDLE, P.WORK, P.EXPLORE], st.n_pool)
        want_state, got_state = st.copy(), st.copy()
        r1, r2 = np.random.default_rng(day), np.random.default_rng(day)
        want = reference_upkeep(want_state, batch, r1, cfg)
        got = rules.apply_upkeep(got_state, batch, r2, cfg)
        np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
        np.testing.assert_array_equal(got_state.wealth.view(np.uint64),
                                      want_state.wealth.view(np.uint64))
        assert r1.bit_generator.state == r2.bit_generator.state
