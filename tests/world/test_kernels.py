"""The numba attack kernel against a pure-Python reference of ``rules.attack``'s loop
(allies iterated in ascending order): every output exactly equal."""

from __future__ import annotations

import numpy as np
import pytest

from civa_env.world.kernels import ally_csr, resolve_attacks
from civa_env.world.kinds import ATTACK_ON_ALLY, ATTACK_SUCCESS

PARAMS = dict(wealth_weight=0.05, wealth_cap=40.0, ally_defence=0.5, loot_fraction=0.5,
              fight_cost=1.0, failed_attack_cost=1.0)


def strength(skill, w, p):
    return skill + p["wealth_weight"] * min(max(w, 0.0), p["wealth_cap"])


def reference(order, target, draws, wealth, skill, alive, allies, p):
    """The loop of ``rules.attack`` on Python floats, allies in ascending order."""
    attacking = dict(zip(order.tolist(), target.tolist(), strict=True))
    allies_of: dict[int, set[int]] = {}
    for a, b in allies.tolist():
        allies_of.setdefault(a, set()).add(b)
        allies_of.setdefault(b, set()).add(a)
    wealth, skill, alive = wealth.tolist(), skill.tolist(), alive.tolist()
    n = len(wealth)
    looted, lost, hits = [0.0] * n, [0.0] * n, [0] * n
    loot_out, flags, dissolved = [], [], []
    for k, i in enumerate(order.tolist()):
        j = attacking[i]
        on_ally = j in allies_of.get(i, ())
        wi, wj = wealth[i], wealth[j]
        s_i = strength(skill[i], wi, p)
        s_j = strength(skill[j], wj, p)
        # (Name order, as the kernel adds them: the Python loop this replaced iterated a
        # set, whose order can differ; that changes a defender's strength in the last bit
        # only, and the golden digests of tests/envs/test_speed_invariance.py did not move.)
        for a in sorted(allies_of.get(j, ())):
            if attacking.get(a) != j and alive[a]:
                s_j += p["ally_defence"] * strength(skill[a], wealth[a], p)
        success = draws[k] < s_i / (s_i + s_j)
        loot = p["loot_fraction"] * max(wj, 0.0) if success else 0.0
        cost_i = p["fight_cost"] + (0.0 if success else p["failed_attack_cost"])
        wealth[i] += loot - cost_i
        wealth[j] -= loot + p["fight_cost"]
        looted[i] += loot
        lost[i] += cost_i
        lost[j] += loot + p["fight_cost"]
        hits[j] += 1
        loot_out.append(loot)
        flags.append((ATTACK_SUCCESS if success else 0) | (ATTACK_ON_ALLY if on_ally else 0))
        if on_ally:
            dissolved.append((min(i, j), max(i, j)))
            allies_of[i].discard(j)
            allies_of[j].discard(i)
    return (np.array(wealth), np.array(looted), np.array(lost), np.array(hits, np.int64),
            np.array(loot_out, np.float64), np.array(flags, np.int8),
            np.array(dissolved, np.int64).reshape(-1, 2))


def run_kernel(order, target, draws, wealth, skill, alive, allies, p):
    n = len(wealth)
    ptr, idx = ally_csr(allies, n)
    w = wealth.copy()
    looted, lost, hits = np.zeros(n), np.zeros(n), np.zeros(n, np.int64)
    loot, flags, dissolved = resolve_attacks(
        order, target, draws, w, skill, alive, ptr, idx, p["wealth_weight"], p["wealth_cap"],
        p["ally_defence"], p["loot_fraction"], p["fight_cost"], p["failed_attack_cost"],
        looted, lost, hits)
    return w, looted, lost, hits, loot, flags, dissolved


def random_case(rng: np.random.Generator):
    n = int(rng.integers(2, 61))
    alive = rng.random(n) < rng.uniform(0.5, 1.0)
    alive[rng.integers(n)] = True
    # Alliances: random pairs i < j, unique, dense enough to matter.
    m = int(rng.integers(0, 3 * n))
    a, b = rng.integers(0, n, (2, m))
    keep = a != b
    lo, hi = np.minimum(a, b)[keep], np.maximum(a, b)[keep]
    allies = np.unique(np.stack([lo, hi], 1), axis=0).astype(np.int32).reshape(-1, 2)
    allies = allies[rng.permutation(len(allies))]
    nbrs: dict[int, list[int]] = {}
    for x, y in allies.tolist():
        nbrs.setdefault(x, []).append(y)
        nbrs.setdefault(y, []).append(x)
    live = alive.nonzero()[0]
    attackers = live[rng.random(len(live)) < rng.uniform(0.2, 1.0)]
    if len(attackers) == 0:
        attackers = live[:1]
    order = rng.permutation(attackers).astype(np.int64)
    # A few popular targets, so that several attack one name and attackers are attacked.
    popular = rng.choice(n, size=min(n, 3), replace=False)
    target = np.empty(len(order), np.int64)
    for k, i in enumerate(order.tolist()):
        u = rng.random()
        if u < 0.35 and nbrs.get(i):
            target[k] = rng.choice(nbrs[i])  # an ally
        elif u < 0.6:
            target[k] = rng.choice(popular)
        elif u < 0.8:
            target[k] = rng.choice(order)  # an attacker
        else:
            target[k] = rng.integers(n)
        if target[k] == i:
            target[k] = (i + 1) % n
    draws = rng.random(len(order))
    wealth = rng.normal(10.0, 15.0, n)  # some negative
    wealth[rng.random(n) < 0.1] = 0.0
    skill = rng.uniform(0.1, 2.0, n)
    p = dict(PARAMS)
    if rng.random() < 0.5:
        p = dict(wealth_weight=rng.uniform(0, 0.2), wealth_cap=rng.uniform(1, 60),
                 ally_defence=rng.uniform(0, 1), loot_fraction=rng.uniform(0, 1),
                 fight_cost=rng.uniform(0, 3), failed_attack_cost=rng.uniform(0, 3))
    return order, target, draws, wealth, skill, alive, allies, p


def assert_same(got, want):
    names = ("wealth", "looted", "lost", "hits", "loot", "flags", "dissolved")
    for name, g, w in zip(names, got, want, strict=True):
        assert g.dtype == w.dtype, name
        assert g.shape == w.shape, name
        assert np.array_equal(g, w), name


def test_ally_csr_ascending_and_both_directions():
    allies = np.array([[3, 5], [0, 3], [1, 2], [0, 5], [3, 5]], np.int32)
    ptr, idx = ally_csr(allies, 7)
    assert ptr.dtype == np.int64 and idx.dtype == np.int64
    rows = [idx[ptr[i]:ptr[i + 1]].tolist() for i in range(7)]
    assert rows == [[3, 5], [2], [1], [0, 5], [], [0, 3], []]


def test_ally_csr_empty():
    ptr, idx = ally_csr(np.empty((0, 2), np.int32), 4)
    assert ptr.tolist() == [0, 0, 0, 0, 0] and len(idx) == 0


def test_ally_csr_random_against_sets():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        m = int(rng.integers(0, 2 * n + 1))
        pairs = rng.integers(0, n, (m, 2)).astype(np.int32)
        ptr, idx = ally_csr(pairs, n)
        sets: dict[int, set[int]] = {}
        for a, b in pairs.tolist():
            sets.setdefault(a, set()).add(b)
            sets.setdefault(b, set()).add(a)
        for i in range(n):
            assert idx[ptr[i]:ptr[i + 1]].tolist() == sorted(sets.get(i, ()))


def test_attack_on_ally_dissolves_for_the_rest_of_the_day():
    # 0 attacks its ally 1; then 2 attacks 1: 0 no longer helps defend 1, nor is on_ally.
    wealth = np.array([10.0, 20.0, 5.0])
    skill = np.array([1.0, 1.0, 1.0])
    alive = np.ones(3, bool)
    allies = np.array([[0, 1]], np.int32)
    order = np.array([0, 2], np.int64)
    target = np.array([1, 1], np.int64)
    draws = np.array([0.99, 0.0])
    got = run_kernel(order, target, draws, wealth, skill, alive, allies, PARAMS)
    assert_same(got, reference(order, target, draws, wealth, skill, alive, allies, PARAMS))
    _, _, _, hits, _, flags, dissolved = got
    assert flags.tolist() == [ATTACK_ON_ALLY, ATTACK_SUCCESS]
    assert dissolved.tolist() == [[0, 1]]
    assert hits.tolist() == [0, 2, 0]


def test_no_attacks():
    e = np.empty(0, np.int64)
    got = run_kernel(e, e, np.empty(0), np.ones(3), np.ones(3), np.ones(3, bool),
                     np.empty((0, 2), np.int32), PARAMS)
    assert got[4].shape == (0,) and got[5].shape == (0,) and got[6].shape == (0, 2)
    assert np.array_equal(got[0], np.ones(3))


@pytest.mark.parametrize("seed", range(8))
def test_kernel_equals_reference_on_random_cases(seed):
    rng = np.random.default_rng(1000 + seed)
    n_allied = 0
    for _ in range(100):
        case = random_case(rng)
        want = reference(*case)
        got = run_kernel(*case)
        assert_same(got, want)
        n_allied += len(want[6])
    assert n_allied > 0  # the cases do attack allies


def _mutual_merges_by_numpy(rows, tgt, src, dst, day, kind, merge, since, n_per, allies):
    """What ``rules._propose`` computed with numpy before ``kernels.mutual_merges``."""
    n = n_per * len(since)
    sel = (kind == merge) & (day >= since[src // n_per])
    keys = np.sort(src[sel].astype(np.int64) * n + dst[sel])
    if len(keys) == 0 or len(rows) == 0:
        return np.empty((0, 2), np.int64)
    q = tgt.astype(np.int64) * n + rows
    pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    mutual = (keys[pos] == q) & (tgt >= 0)
    lo = np.minimum(rows[mutual], tgt[mutual]).astype(np.int64)
    pairs = np.unique(lo * n + np.maximum(rows[mutual], tgt[mutual]))
    allied = np.sort(allies[:, 0].astype(np.int64) * n + allies[:, 1])
    new = ~np.isin(pairs, allied)
    return np.stack([pairs[new] // n, pairs[new] % n], axis=1)


@pytest.mark.parametrize("seed", range(40))
def test_mutual_merges_are_the_numpy_rule(seed):
    """The alliances a day's proposals form, against the numpy code they replaced: one
    community or several, dealings of every kind and day, proposals answered or not, repeated,
    to oneself's allies already, and none at all."""
    from civa_env.world.kernels import mutual_merges

    rng = np.random.default_rng(seed)
    e = int(rng.integers(1, 4))
    n_per = int(rng.integers(2, 12))
    n = e * n_per
    today = rng.integers(1, 9, e)
    since = (today - rng.integers(0, 3, e)).astype(np.int64)
    d = int(rng.integers(0, 60))
    comm = rng.integers(0, e, d)
    src = (comm * n_per + rng.integers(0, n_per, d)).astype(np.int32)
    dst = (comm * n_per + rng.integers(0, n_per, d)).astype(np.int32)
    kind = rng.integers(0, 4, d).astype(np.int8)
    dst[(kind == 3) & (rng.random(d) < 0.3)] = -1  # messages to everyone
    day = (today[comm] - rng.integers(0, 4, d)).astype(np.int32)
    k = int(rng.integers(0, 15))
    pc = rng.integers(0, e, k)
    rows = np.sort(pc * n_per + rng.integers(0, n_per, k)).astype(np.int64)
    tgt = (rows // n_per) * n_per + rng.integers(0, n_per, k)
    # today's proposals are among the dealings (as rules._remember makes them)
    src = np.concatenate([src, rows.astype(np.int32)])
    dst = np.concatenate([dst, tgt.astype(np.int32)])
    kind = np.concatenate([kind, np.full(k, 2, np.int8)])
    day = np.concatenate([day, today[rows // n_per].astype(np.int32)])
    a = rng.integers(0, n, (int(rng.integers(0, 6)), 2))
    a = a[a[:, 0] // n_per == a[:, 1] // n_per]
    a = np.unique(np.sort(a, axis=1)[a[:, 0] != a[:, 1]], axis=0).astype(np.int32).reshape(-1, 2)
    got = mutual_merges(rows, tgt, src, dst, day, kind, 2, since, n_per, a)
    want = _mutual_merges_by_numpy(rows, tgt, src, dst, day, kind, 2, since, n_per, a)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got.reshape(-1, 2), want.reshape(-1, 2))


def test_mutual_merges_form_answered_proposals_once():
    from civa_env.world.kernels import mutual_merges

    # 0 -> 1 today, 1 -> 0 yesterday (in the window), 2 -> 3 unanswered, 4 <-> 5 allied
    rows, tgt = np.array([0, 2, 4, 5]), np.array([1, 3, 5, 4])
    src = np.array([1, 0, 2, 4, 5], np.int32)
    dst = np.array([0, 1, 3, 5, 4], np.int32)
    kind = np.full(5, 2, np.int8)
    day = np.array([4, 5, 5, 5, 5], np.int32)
    allies = np.array([[4, 5]], np.int32)
    got = mutual_merges(rows, tgt, src, dst, day, kind, 2, np.array([4]), 8, allies)
    np.testing.assert_array_equal(got, [[0, 1]])
    late = mutual_merges(rows, tgt, src, dst, day, kind, 2, np.array([5]), 8, allies)
    assert late.shape == (0, 2)  # yesterday's answer is out of the window
