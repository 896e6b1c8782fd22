"""The feature and mask kernels (``kernels.fill_features``, ``kernels.fill_masks``) against
the numpy implementations they replaced.

``features`` and ``factored.masks`` used to be some sixty numpy passes over (K, V) and
(K, S) temporaries; each is now one compiled pass. Every policy decides on them, so the two
must agree bit for bit (the float32 bits are compared, not the values: -0.0 is not 0.0):
here on lone worlds and batches, with ranked factory slots, stress and a shock, value
conditions at half prevalence, messages in the inbox, and states dense with alliances and
recent dealings.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_social_kernels import _dense_social_life, _states, reference_mark_dealings

from civa_env.world import factored
from civa_env.world.arrays import index
from civa_env.world.catalogue import is_allied, known_slots
from civa_env.world.config import Config
from civa_env.world.features import _DIRECTION, _VALUE, FeatureLayout, _clip, features, signed_log
from civa_env.world.kinds import S
from civa_env.world.perception import compute_view, inbox_count
from civa_env.world.rules import outage_prob, upkeep_factor
from civa_env.world.state import WorldState


def reference_features(state: WorldState, view: np.ndarray, rows: np.ndarray,
                       inbox: np.ndarray, cfg: Config) -> np.ndarray:
    """The numpy ``features`` the kernel replaced (before 2026-12-02), as an oracle; each
    community's mean wealth is its living residents' ``ndarray.sum`` (what a lone world
    takes) over their count."""
    layout = FeatureLayout.of(cfg)
    k, v = len(rows), cfg.view_size
    out = np.zeros((k, layout.size), np.float32)
    if k == 0:  # (the numpy code was never called without rows)
        return out
    wealth = state.wealth
    own_wealth = wealth[rows]
    n = state.n_per
    sums, counts = [], []
    for c in range(state.communities):
        living = state.alive[c * n:(c + 1) * n]
        counts.append(max(np.count_nonzero(living), 1))
        sums.append(wealth[c * n:(c + 1) * n][living].sum())
    counts_a, means = np.array(counts), np.array(sums) / np.array(counts)
    day = np.atleast_1d(state.day)[rows // n] if state.communities > 1 else state.day
    own = {
        "wealth": own_wealth, "skill": state.skill[rows], "day": day,
        "population": counts_a[rows // n], "mean_wealth": means[rows // n],
        "allies": np.bincount(state.allies.ravel(), minlength=state.n_pool)[rows],
        "income": state.income[rows], "received": state.received[rows],
        "given": state.given[rows], "looted": state.looted[rows], "lost": state.lost[rows],
        "attacks": state.attacked_by[rows], "inbox": inbox[rows],
        "upkeep": cfg.upkeep * upkeep_factor(cfg, day + 1),
        "outage_prob": outage_prob(cfg, day + 1),
    }
    out[:, :len(layout.own)] = layout.encode("own", own, (k,))
    code = state.condition[rows]
    out[index(k), layout.slice("condition.direction").start + _DIRECTION[code]] = 1.0
    has_value = (code > 0).nonzero()[0]
    out[has_value, layout.slice("condition.value").start + _VALUE[code[has_value]]] = 1.0
    report = layout.encode("factory", {
        "known": 1.0, "capacity": state.capacity, "workers": state.workers,
        "output": state.output, "outage": state.outage}, (len(state.capacity),))
    known = known_slots(state, rows)
    table = np.maximum(state.factory_slots[rows], 0)
    if state.communities > 1:
        table = table + (rows // state.n_per * state.m_per)[:, None]
    out[:, layout.factory_start:layout.slot_start] = (
        known[:, :, None] * report[table]).reshape(k, -1)
    slots = out[:, layout.slot_start:].reshape(k, v, len(layout.slot_channels))
    vw = view[rows]
    present = vw >= 0
    rel = signed_log(wealth[np.where(present, vw, 0)]) - signed_log(own_wealth)[:, None]
    slots[:, :, layout.offset("slot.present")] = present
    slots[:, :, layout.offset("slot.wealth")] = _clip(np.where(present, rel, 0.0))
    reference_mark_dealings(slots, layout, state, view, rows, cfg)
    return out


def reference_masks(state: WorldState, view: np.ndarray, rows: np.ndarray,
                    cfg: Config) -> np.ndarray:
    """The numpy ``factored.masks`` the kernel replaced (before 2026-12-02), as an oracle."""
    spec = factored.FactoredSpec.of(cfg)
    k = len(rows)
    out = np.zeros((k, spec.mask_size), bool)
    o = spec.offsets
    wealth = state.wealth[rows]
    known = known_slots(state, rows)
    can_pay = (wealth >= cfg.upgrade_cost)[:, None]
    ones = np.ones((k, 1), bool)
    out[:, o[0]:o[1]] = np.concatenate([known, ones, can_pay, known & can_pay, ones], axis=1)
    seen = view[rows]
    present = seen >= 0
    anyone = present.any(axis=1)
    mergeable = present
    if len(state.allies) and k:
        allied = is_allied(state, np.repeat(rows, cfg.view_size), seen.ravel())
        mergeable = present & ~allied.reshape(present.shape)
    out[:, o[1]] = True
    out[:, o[1] + S.GIFT] = anyone & (wealth > 0)
    out[:, o[1] + S.ATTACK] = anyone
    out[:, o[1] + S.MERGE] = mergeable.any(axis=1)
    factored._fill_slots_and_talk(out, o, present, cfg)  # (unchanged: the flat masks' too)
    return out.view(np.int8)


def _stirred(state: WorldState, rng: np.random.Generator) -> WorldState:
    """``state`` with yesterday's flows, attacks and some wealth drawn at random (negative,
    zero and large included), so that every own channel and the clip are exercised."""
    st = state.copy()
    n = st.n_pool
    for name in ("income", "received", "given", "looted", "lost"):
        setattr(st, name, np.where(rng.random(n) < 0.5, rng.exponential(3.0, n), 0.0))
    st.attacked_by = rng.integers(0, 4, n).astype(st.attacked_by.dtype)
    pick = rng.random(n)
    st.wealth = np.where(pick < 0.1, 0.0, np.where(pick < 0.15, -rng.exponential(1.0, n),
                         np.where(pick < 0.2, rng.exponential(1e5, n), st.wealth)))
    return st


CASES = {
    "lone": (1, dict(n_agents=25)),
    "lone, ranked slots, stress": (1, dict(n_agents=60, n_factories=20, factory_slots=4,
                                           stress_day=3, stress_upkeep=1.5, stress_outage=2.0,
                                           shock_day=5, shock_upkeep=3.0)),
    "batch, conditions": (6, dict(n_agents=25, condition="without:benevolence",
                                  prevalence=0.5)),
    "batch, narrow view, no talk": (5, dict(n_agents=40, view_size=4, max_messages=0,
                                            condition="with:power", prevalence=0.5)),
    "batch, ranked slots": (3, dict(n_agents=120, n_factories=30, factory_slots=6)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_kernels_give_the_numpy_features_and_masks_bit_for_bit(case, numpy_like_libm):
    num_envs, config = CASES[case]
    rng = np.random.default_rng(len(case))
    checked = social = 0
    for day, (state, cfg) in enumerate(_states(num_envs, 12, 4, **config)):
        for dense in (False, True):
            st = state
            if dense:
                st = _stirred(_dense_social_life(state, rng, 3, cfg.view_size), rng)
            view = compute_view(st, cfg, np.random.default_rng(day))
            living = st.alive.nonzero()[0]
            inbox = inbox_count(st)
            for rows in (living, living[::3], living[:0]):
                want = reference_features(st, view, rows, inbox, cfg)
                got = features(st, view, rows, inbox, cfg)
                assert got.dtype == np.float32 and got.shape == want.shape
                np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32),
                                              err_msg=f"{case}: day {day}, dense {dense}")
                m_want = reference_masks(st, view, rows, cfg)
                m_got = factored.masks(st, view, rows, cfg, None)
                assert m_got.dtype == np.int8
                np.testing.assert_array_equal(m_got, m_want,
                                              err_msg=f"{case}: day {day}, dense {dense}")
                checked += len(rows)
            social += dense and len(st.allies) > 0
    assert checked > 300 and social >= 5  # real rows, and alliances' flags and merge masks


def test_written_in_place_only_the_rows_asked_for_change():
    """``out``/``out_rows``: the rows are written whole (stale values cleared), the others
    are left as they were."""
    (state, cfg), = list(_states(4, 1, 0, n_agents=25))
    view = compute_view(state, cfg, np.random.default_rng(0))
    living = state.alive.nonzero()[0]
    rows = living[::2]
    layout = FeatureLayout.of(cfg)
    spec = factored.FactoredSpec.of(cfg)
    feats = np.full((state.n_pool, layout.size), 7.0, np.float32)
    masks = np.full((state.n_pool, spec.mask_size), 3, np.int8)
    features(state, view, rows, inbox_count(state), cfg, out=feats, out_rows=rows)
    factored.masks(state, view, rows, cfg, None, out=masks, out_rows=rows)
    np.testing.assert_array_equal(feats[rows], features(state, view, rows,
                                                         inbox_count(state), cfg))
    np.testing.assert_array_equal(masks[rows], factored.masks(state, view, rows, cfg, None))
    others = np.setdiff1d(index(state.n_pool), rows)
    assert (feats[others] == 7.0).all() and (masks[others] == 3).all()


def test_rows_asked_twice_in_any_order_and_read_only_states(numpy_like_libm):
    """Rows may repeat and come in any order, and the state's arrays may be read-only:
    each row is the one the oracle gives."""
    *_, (state, cfg) = _states(3, 6, 1, n_agents=25)
    st = _dense_social_life(state, np.random.default_rng(0), 4, cfg.view_size)
    view = compute_view(st, cfg, np.random.default_rng(1))
    living = st.alive.nonzero()[0]
    # living[0] allied with everyone it sees (nobody left to propose to), asked twice.
    i = int(living[0])
    seen = view[i][view[i] >= 0].astype(np.int64)
    st.allies = np.unique(np.concatenate([st.allies, np.stack(
        [np.minimum(i, seen), np.maximum(i, seen)], axis=1).astype(np.int32)]), axis=0)
    rows = np.concatenate([living[::-1], living[:5]]).astype(np.int32)
    inbox = inbox_count(st)
    for name in ("wealth", "skill", "income", "known", "allies"):
        getattr(st, name).flags.writeable = False
    want = reference_features(st, view, rows, inbox, cfg)
    got = features(st, view, rows, inbox, cfg)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    masks = factored.masks(st, view, rows, cfg, None)
    np.testing.assert_array_equal(masks, reference_masks(st, view, rows, cfg))
    merge = factored.FactoredSpec.of(cfg).offsets[1] + S.MERGE
    assert masks[len(living) - 1, merge] == 0 and masks[-5, merge] == 0


def test_out_without_out_rows_is_refused():
    (state, cfg), = list(_states(1, 1, 0, n_agents=25))
    view = compute_view(state, cfg, np.random.default_rng(0))
    rows = state.alive.nonzero()[0]
    buf = np.zeros((state.n_pool, FeatureLayout.of(cfg).size), np.float32)
    with pytest.raises(ValueError, match="out_rows"):
        features(state, view, rows, inbox_count(state), cfg, out=buf)
    with pytest.raises(ValueError, match="out_rows"):
        factored.masks(state, view, rows, cfg, None, out=np.zeros((state.n_pool, 99), np.int8),
                       out_rows=rows[:1])

