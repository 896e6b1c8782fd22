"""The view and dealing-flag kernels (``kernels.fill_view``, ``kernels.fill_features``)
against the numpy implementations they replaced.

``compute_view`` used to be some twenty numpy passes over (N, V) int64 temporaries; it is
now one compiled loop. The view decides what residents see and what they can target, so the
two must agree exactly: here on states dense with alliances and recent dealings (random
play makes few), in lone worlds and in batches, wide and narrow views, small communities.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import sample_factored

import civa_env
from civa_env.world.arrays import filled, index
from civa_env.world.config import Config
from civa_env.world.features import FeatureLayout, _dealing_offsets, features
from civa_env.world.perception import compute_view, priority_csr
from civa_env.world.state import WorldState


def reference_priority_pairs(state: WorldState, n: int,
                    recent_days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Allies (level 0) and direct recent dealings (level 1) as pairs (i sees j), each once
    at its highest priority, sorted by viewer, then level, then name: (P,) int64 each (the
    numpy code ``kernels.priority_pairs`` replaced, before 2026-12-02, as an oracle)."""
    a = state.allies
    # Direct dealings of the last `recent_days` days (memory may keep longer windows).
    direct = (state.recent_dst >= 0) & (
        state.recent_day > state.per_row(state.day, state.recent_src) - recent_days)
    src, dst = state.recent_src[direct], state.recent_dst[direct]
    ii = np.concatenate([a[:, 0], a[:, 1], src, dst]).astype(np.int64)
    jj = np.concatenate([a[:, 1], a[:, 0], dst, src]).astype(np.int64)
    level = np.zeros(len(ii), np.int64)
    level[2 * len(a):] = 1
    ok = state.alive[ii] & state.alive[jj] & (ii != jj)
    ii, jj, level = ii[ok], jj[ok], level[ok]
    if len(ii) == 0:
        return ii, jj, level
    if len(a) == 0:  # dealings only (level 1): one sort by (viewer, name), each pair once
        key = np.sort(ii * n + jj)
        first = np.ones(len(key), bool)
        first[1:] = key[1:] != key[:-1]
        key = key[first]
        return key // n, key % n, np.ones(len(key), np.int64)
    # Keep each pair once, at its highest priority (lowest level), then reorder.
    key = np.sort((ii * n + jj) * 2 + level)
    pair = key // 2
    first = np.ones(len(key), bool)
    first[1:] = pair[1:] != pair[:-1]
    pair, level = pair[first], key[first] % 2
    key = np.sort(((pair // n) * 2 + level) * n + pair % n)
    return key // (2 * n), key % n, (key // n) % 2



def reference_view(state: WorldState, cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """The numpy implementation the kernel replaced (before 2026-12-02), as an oracle."""
    n, v = state.n_pool, cfg.view_size
    view = filled((n, v), -1, np.int32)
    # One key per name, drawn whatever the population (common random numbers: the stream
    # stays in step between conditions); sorting the living residents' keys shuffles them.
    order_key = rng.random(n)
    living = state.alive.nonzero()[0]
    n_alive = len(living)
    # The random sample: row r is what perm[r] sees, the next `width` residents of the
    # permutation (cyclically, within its community), so all are alive and none is the
    # row's owner. `size` is the row's community's living count; `valid` marks the sampled
    # columns of communities narrower than `width` (None: all are).
    valid = None
    if state.communities == 1:
        if n_alive <= 1:
            return view
        width, size = min(v, n_alive - 1), n_alive
        row_width: int | np.ndarray = width
        perm = living[np.argsort(order_key[living], kind="stable")]
        ring = np.concatenate([perm, perm[:width]])[1:]
        # sample[r, c] = ring[r + c], gathered (as_strided's Python set-up costs more).
        sample = ring[index(n_alive)[:, None] + index(width)]
    else:
        comm = living // state.n_per  # ascending, as `living` is
        perm = living[np.lexsort((order_key[living], comm))]
        size_c = np.bincount(comm, minlength=state.communities)
        start = (np.cumsum(size_c) - size_c)[comm]
        width_c = np.minimum(v, np.maximum(size_c - 1, 0))
        width = int(width_c.max()) if n_alive else 0
        if width == 0:
            return view
        size, row_width = size_c[comm], width_c[comm]
        cols = index(width)
        local = index(n_alive) - start
        sample = perm[start[:, None] + (local[:, None] + 1 + cols) % size[:, None]]
        valid = cols < row_width[:, None]
    ii, jj, level = reference_priority_pairs(state, n, cfg.recent_days)
    if len(ii) == 0:
        if valid is None:
            view[perm, :width] = np.sort(sample, axis=1)
        else:
            keys = np.where(valid, sample, n)  # n sorts after every resident
            keys.sort(axis=1)
            view[perm, :width] = np.where(keys < n, keys, -1)
        return view
    # Sort each row's candidates by (level, name): level 0 ally, 1 dealing, 2 sampled, 3
    # nothing. A sampled resident already seen at a higher priority is dropped (level 3).
    rank = np.arange(len(ii)) - np.searchsorted(ii, ii, side="left")
    keep = rank < v  # ii is sorted by priority within a viewer: the rest is never seen
    pos = np.empty(n, np.int64)
    pos[perm] = index(n_alive)
    row = pos[ii]
    keys = filled((n_alive, width + min(v, int(rank.max()) + 1)), 3 * n, np.int64)
    keys[:, :width] = sample + 2 * n if valid is None else np.where(valid, sample + 2 * n,
                                                                    3 * n)
    # jj sits in column gap - 1 of row's sample, if any (both are of one community).
    if valid is None:
        gap = (pos[jj] - row) % size
        dup = (gap >= 1) & (gap <= width)
    else:
        gap = (pos[jj] - row) % size[row]
        dup = (gap >= 1) & (gap <= row_width[row])
    keys[row[dup], gap[dup] - 1] = 3 * n
    keys[row[keep], width + rank[keep]] = level[keep] * n + jj[keep]
    keys.sort(axis=1)
    keys = keys[:, :v]
    view[perm, :keys.shape[1]] = np.where(keys < 3 * n, keys % n, -1)
    return view


def reference_mark_dealings(slots: np.ndarray, layout: FeatureLayout, state: WorldState,
                   view: np.ndarray, rows: np.ndarray, cfg: Config) -> None:
    """The numpy implementation the kernel replaced (before 2026-12-02), as an oracle."""
    ally, friendly, dealt_me, i_dealt = _dealing_offsets(layout)
    a, b = state.allies[:, 0], state.allies[:, 1]
    since = state.per_row(state.day, state.recent_src) - cfg.recent_days + 1
    recent = (state.recent_day >= since) & (state.recent_dst >= 0)
    kinds = state.recent_kind[recent]
    src, dst = state.recent_src[recent], state.recent_dst[recent]
    said = state.recent_friendly[recent]  # friendly direct messages
    viewer = np.concatenate([a, b, dst, src, dst[said]])
    other = np.concatenate([b, a, src, dst, src[said]])
    channel = np.concatenate([filled(2 * len(a), ally, np.int64), dealt_me[kinds], i_dealt[kinds],
                              filled(np.count_nonzero(said), friendly, np.int64)])
    row_of = filled(state.n_pool, -1, np.int64)
    row_of[rows] = index(len(rows))
    row = row_of[viewer]
    ok = (row >= 0) & (channel >= 0)
    if not np.count_nonzero(ok):
        return
    viewer, other, channel, row = viewer[ok], other[ok], channel[ok], row[ok]
    pair, slot = (view[viewer] == other[:, None]).nonzero()
    slots[row[pair], slot, channel[pair]] = 1.0


def _dense_social_life(state: WorldState, rng: np.random.Generator, allies: int,
                       dealings: int) -> WorldState:
    """``state`` with random alliances and recent dealings among each community's living
    (some with its dead and some too old, which the view must ignore; never across
    communities, which no rule makes)."""
    st = state.copy()
    n = st.n_per
    living = st.alive.nonzero()[0]
    comm = living // n
    pairs, deals = [], []
    for c in np.unique(comm).tolist():
        members = living[comm == c]
        if len(members) < 2:
            continue
        for _ in range(allies):
            i, j = rng.choice(members, 2, replace=False)
            pairs.append((min(i, j), max(i, j)))
        for _ in range(dealings):
            i, j = rng.choice(members, 2, replace=False)
            deals.append((i, j))
    for c in range(st.communities):  # with anyone of the community, living or not
        names = np.arange(c * n, (c + 1) * n)
        for _ in range(dealings):
            deals.append(tuple(rng.choice(names, 2, replace=False)))
    st.allies = np.unique(np.array(pairs, np.int32).reshape(-1, 2), axis=0)
    d = np.array(deals, np.int32).reshape(-1, 2)
    days = st.per_row(st.day, d[:, 0]) - rng.integers(0, 6, len(d))
    st.recent_day = days.astype(np.int32)
    st.recent_src, st.recent_dst = d[:, 0].copy(), d[:, 1].copy()
    st.recent_kind = rng.integers(0, 4, len(d)).astype(np.int8)
    st.recent_friendly = rng.random(len(d)) < 0.3
    return st


def _states(num_envs: int, days: int, seed: int, **config):
    """(state, cfg) of each day of ``num_envs`` communities of ``config`` playing random
    valid factored actions, messages included."""
    venv = civa_env.vector_env(num_envs=num_envs, **config)
    obs, _ = venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(days):
        yield venv.batch.state, venv.cfg
        acts = sample_factored(obs, venv.spec, rng)
        obs, *_ = venv.step(acts)


@pytest.mark.parametrize("num_envs,n_agents,view_size", [
    (1, 25, 24), (1, 60, 6), (6, 25, 24), (5, 40, 4), (12, 8, 3), (3, 120, 24)])
def test_the_kernel_sees_what_the_numpy_view_saw(num_envs, n_agents, view_size):
    rng = np.random.default_rng(num_envs * 100 + n_agents)
    compared = with_pairs = 0
    days = _states(num_envs, 40, 5, n_agents=n_agents, view_size=view_size)
    for day, (state, cfg) in enumerate(days):
        for allies, dealings in ((0, 0), (2, 3), (view_size, 2 * view_size)):
            st = state if allies == 0 else _dense_social_life(state, rng, allies, dealings)
            key = day * 10 + allies
            want = reference_view(st, cfg, np.random.default_rng(key))
            got = compute_view(st, cfg, np.random.default_rng(key))
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=f"day {day}, {allies} allies")
            compared += 1
            ii, jj, _ = reference_priority_pairs(st, st.n_pool, cfg.recent_days)
            ptr, pair_to = priority_csr(st, cfg.recent_days)
            np.testing.assert_array_equal(np.diff(ptr), np.bincount(ii, minlength=st.n_pool))
            np.testing.assert_array_equal(pair_to, jj)
            with_pairs += bool(len(ii))
    assert compared == 120 and with_pairs >= 40  # the pairs' path was exercised


def test_a_view_row_is_pairs_first_then_the_sample_by_name():
    """A lone world of 6: resident 0 allied with 5, dealt with 3: it sees 5, 3, then the
    rest of its window in name order; nobody sees itself or the dead."""
    (state, cfg), = list(_states(1, 1, 0, n_agents=6, view_size=24))
    st = state.copy()
    st.alive[:] = False
    st.alive[:6] = True
    st.alive[4] = False
    st.allies = np.array([[0, 5]], np.int32)
    st.recent_day = np.array([int(st.day)], np.int32)
    st.recent_src, st.recent_dst = np.array([3], np.int32), np.array([0], np.int32)
    st.recent_kind, st.recent_friendly = np.zeros(1, np.int8), np.zeros(1, bool)
    view = compute_view(st, cfg, np.random.default_rng(0))
    assert view[0].tolist()[:4] == [5, 3, 1, 2] and (view[0, 4:] == -1).all()
    for i in (1, 2, 3, 5):
        seen = view[i][view[i] >= 0].tolist()
        assert i not in seen and 4 not in seen and sorted(seen) == sorted(
            {0, 1, 2, 3, 5} - {i})
    assert (view[4] == -1).all() and (view[6:] == -1).all()


@pytest.mark.parametrize("num_envs,n_agents,view_size", [(1, 25, 24), (6, 25, 24), (5, 40, 4)])
def test_the_dealing_flags_are_those_the_numpy_features_set(num_envs, n_agents, view_size):
    rng = np.random.default_rng(7 + num_envs)
    flagged = 0
    days = _states(num_envs, 25, 3, n_agents=n_agents, view_size=view_size)
    for day, (state, cfg) in enumerate(days):
        st = _dense_social_life(state, rng, 3, view_size)
        view = compute_view(st, cfg, np.random.default_rng(day))
        rows = st.alive.nonzero()[0][::2]  # some of the living, as a chunk would be
        layout = FeatureLayout.of(cfg)
        got = features(st, view, rows, np.zeros(st.n_pool, np.int64), cfg)
        slots = got[:, layout.slot_start:].reshape(len(rows), view_size, -1).copy()
        ally, friendly, dealt_me, i_dealt = _dealing_offsets(layout)
        flags = sorted({ally, friendly, *dealt_me[dealt_me >= 0], *i_dealt[i_dealt >= 0]})
        want = slots.copy()
        want[:, :, flags] = 0.0
        reference_mark_dealings(want, layout, st, view, rows, cfg)
        np.testing.assert_array_equal(slots, want, err_msg=f"day {day}")
        flagged += int(slots[:, :, flags].sum())
    assert flagged > 100  # the flags were set, not only left at zero
