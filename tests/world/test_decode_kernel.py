"""``factored.decode``'s compiled pass (``kernels.decode_actions``) against the numpy code
it replaced (kept here as an oracle, before 2026-12-02): random factored rows, in range and
out of every component's range, aimed at empty factory slots and empty view slots, with
gifts of every level from residents in debt, at zero (-0.0 too) and NaN, and messages, give
the same actions, the same flags in the same order and the same messages."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same_actions
from test_social_kernels import _dense_social_life, _states

from civa_env.world import factored
from civa_env.world.actions import ActionBatch, set_primary
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.factored import FactoredSpec
from civa_env.world.kinds import S
from civa_env.world.state import WorldState


def reference_decode(batch: ActionBatch, rows: np.ndarray, acts: np.ndarray,
                     state: WorldState, view: np.ndarray, cfg: Config, catalogue: Catalogue,
                     day: int | np.ndarray) -> None:
    """``factored.decode`` as numpy code (its arrays; then its unchanged message step)."""
    spec = FactoredSpec.of(cfg)
    nvec = spec.nvec
    out_of_range = (acts < 0) | (acts >= nvec)
    primary, secondary, slot, level, message, message_to = acts.T
    bad_p = out_of_range[:, 0]
    if np.count_nonzero(bad_p):
        batch.flag_many(rows[bad_p], f"primary choice outside [0, {spec.n_primary}): idle")
    p_choice = np.where(bad_p, spec.n_primary - 1, primary)  # the last choice is idle
    set_primary(batch, rows, catalogue.p_kind[p_choice], catalogue.p_factory[p_choice], state)
    bad_s = out_of_range[:, 1]
    if np.count_nonzero(bad_s):
        batch.flag_many(rows[bad_s], f"secondary outside [0, {spec.n_secondary}): none")
    sec = np.where(bad_s, S.NONE, secondary)
    targeted = sec != S.NONE
    bad_t = targeted & out_of_range[:, 2]
    if np.count_nonzero(bad_t):
        batch.flag_many(rows[bad_t], f"target slot outside [0, {spec.n_target}): "
                                     "no secondary action")
    ok = targeted & ~bad_t
    target = np.full(len(rows), -1, np.int32)
    target[ok] = view[rows[ok], slot[ok]]
    empty = ok & (target < 0)
    if np.count_nonzero(empty):
        batch.flag_many(rows[empty], "target view slot is empty: no secondary action")
    sec = np.where(bad_t | empty, S.NONE, sec)
    batch.secondary[rows] = sec
    batch.target[rows] = np.where(sec != S.NONE, target, -1)
    gift = sec == S.GIFT
    bad_l = gift & out_of_range[:, 3]
    if np.count_nonzero(bad_l):
        batch.flag_many(rows[bad_l], f"amount level outside [0, {spec.n_amount}): no gift")
        batch.secondary[rows[bad_l]] = S.NONE
        gift &= ~bad_l
    amount = np.zeros(len(rows))
    amount[gift] = catalogue.gift_levels[level[gift]] * np.maximum(state.wealth[rows[gift]], 0.0)
    batch.amount[rows] = amount
    factored.decode_messages(batch, rows, acts, state, view, cfg, day)  # (unchanged)


def _messy_acts(state: WorldState, cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """(K, C) rows of every living resident: mostly in range, some outside each component's
    range, messages to slots and to everyone."""
    spec = FactoredSpec.of(cfg)
    nvec = spec.nvec
    k = int(state.alive.sum())
    acts = (rng.random((k, len(nvec))) * nvec).astype(np.int64)
    wild = rng.random((k, len(nvec))) < 0.08
    acts[wild] = rng.choice([-5, -1, 10**6], int(wild.sum())) + np.where(
        rng.random(int(wild.sum())) < 0.5, 0, nvec[np.nonzero(wild)[1]])
    acts[rng.random(k) < 0.5, 4] = 0  # half send no message
    acts[rng.random(k) < 0.3, 1] = S.GIFT
    return acts


@pytest.mark.parametrize("num_envs,config", [
    (1, {}), (4, {}), (3, {"n_factories": 12, "factory_slots": 4, "view_size": 6})])
def test_the_kernel_decodes_as_the_numpy_decoding_did(num_envs, config):
    rng = np.random.default_rng(num_envs)
    flagged = set()
    for day, (state, cfg) in enumerate(_states(num_envs, 8, 3, n_agents=25, **config)):
        st = _dense_social_life(state, rng, 4, 6) if day % 2 else state
        odd = rng.random(st.n_pool)
        st.wealth = np.where(odd < 0.1, -0.0, np.where(odd < 0.15, np.nan, np.where(
            odd < 0.3, -3.0, st.wealth)))
        shape = (st.n_pool, cfg.view_size)
        view = np.where(rng.random(shape) < 0.1, -1, rng.integers(0, st.n_pool, shape)
                        ).astype(np.int32)
        rows = st.alive.nonzero()[0]
        acts = _messy_acts(st, cfg, np.random.default_rng(day))
        catalogue = Catalogue(cfg)
        want, got = ActionBatch.idle(st.n_pool), ActionBatch.idle(st.n_pool)
        reference_decode(want, rows, acts, st, view, cfg, catalogue, st.day + 1)
        factored.decode(got, rows, acts, st, view, cfg, catalogue, st.day + 1)
        assert_same_actions(got, want, f"day {day}")
        flagged |= {r for reasons in want.invalid.values() for r in reasons}
    # Every reason of the compiled pass was met, and messages were decoded.
    met = {r for r in flagged if r in factored.decode_reasons(FactoredSpec.of(cfg))}
    empty_slots = cfg.n_factories > cfg.factory_slot_count
    assert len(met) == 6 - (not empty_slots)


def test_decode_of_no_rows_changes_nothing():
    # (``actions.pack_actions`` passes ``np.array([])``, float64, when nobody is factored.)
    state, cfg = next(iter(_states(1, 1, 0, n_agents=10)))
    batch = ActionBatch.idle(state.n_pool)
    factored.decode(batch, np.array([]), np.zeros((0, factored.N_COMPONENTS), np.int64),
                    state, np.full((state.n_pool, cfg.view_size), -1, np.int32), cfg,
                    Catalogue(cfg), 1)
    assert not batch.invalid and (batch.primary == ActionBatch.idle(state.n_pool).primary).all()


def test_messages_off_are_flagged_and_dropped():
    state, cfg = next(iter(_states(2, 1, 0, n_agents=10)))
    cfg = cfg.replace(max_messages=0)
    rows = state.alive.nonzero()[0]
    acts = np.zeros((len(rows), factored.N_COMPONENTS), np.int64)
    acts[:, 0] = FactoredSpec.of(cfg).n_primary - 1  # idle
    acts[::2, 4] = 1  # every other one says something friendly
    view = np.zeros((state.n_pool, cfg.view_size), np.int32)
    want, got = ActionBatch.idle(state.n_pool), ActionBatch.idle(state.n_pool)
    reference_decode(want, rows, acts, state, view, cfg, Catalogue(cfg), 1)
    factored.decode(got, rows, acts, state, view, cfg, Catalogue(cfg), 1)
    assert_same_actions(got, want, "messages off")
    assert not got.messages and sorted(got.invalid) == rows[::2].tolist()
    assert {r for v in got.invalid.values() for r in v} == {
        "messages are off (max_messages = 0): dropped"}
