"""Compiled (numba) kernels of the world's rules.

* ``resolve_attacks``: the contested attack loop of ``rules.attack`` (attacks one by one in a
  given order, wealth changing as they go), with the same IEEE arithmetic in the same order.
* ``strength``: a resident's fighting strength, the one formula (``rules.strength`` calls it).
* ``ally_csr``: the alliance pairs as a CSR adjacency (neighbours ascending), the form the
  kernel reads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from civa_env.world.kinds import ATTACK_ON_ALLY, ATTACK_SUCCESS

_SUCCESS = np.int8(ATTACK_SUCCESS)
_ON_ALLY = np.int8(ATTACK_ON_ALLY)


def ally_csr(allies: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR adjacency of the alliances: row ``i``'s allies are
    ``ally_idx[ally_ptr[i]:ally_ptr[i + 1]]``, ascending and without repeats (as the sets of
    ``rules.attack``). ``allies`` is (A, 2) pairs, one per alliance; both directions are entered.

    Returns ``(ally_ptr (n + 1,) int64, ally_idx (2E or fewer,) int64)``."""
    pairs = np.asarray(allies, np.int64).reshape(-1, 2)
    src = np.concatenate((pairs[:, 0], pairs[:, 1]))
    dst = np.concatenate((pairs[:, 1], pairs[:, 0]))
    keys = np.sort(src * n + dst)  # by (src, dst); np.unique is slower here
    if len(keys) > 1:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # repeats gone
    src, dst = keys // n, keys % n
    ally_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=ally_ptr[1:])
    return ally_ptr, dst.astype(np.int64)


@njit(cache=True)
def strength(skill, w, wealth_weight, wealth_cap):
    """Fighting strength ``skill + wealth_weight * min(max(w, 0), wealth_cap)`` (what
    ``rules.strength`` gives; callable from Python too)."""
    # Python's min(max(w, 0.0), cap), spelt as CPython evaluates it.
    x = 0.0 if 0.0 > w else w
    x = wealth_cap if wealth_cap < x else x
    return skill + wealth_weight * x


@njit(cache=True)
def _find(ally_ptr, ally_idx, i, j):
    """Position of ``j`` in row ``i`` of the CSR (binary search), or -1."""
    lo = ally_ptr[i]
    hi = ally_ptr[i + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        v = ally_idx[mid]
        if v < j:
            lo = mid + 1
        elif v > j:
            hi = mid
        else:
            return mid
    return -1


@njit(cache=True)
def resolve_attacks(order, target, draws, wealth, skill, alive, ally_ptr, ally_idx,
                    wealth_weight, wealth_cap, ally_defence, loot_fraction, fight_cost,
                    failed_attack_cost, looted, lost, hits):
    """Resolve the attacks one by one in ``order`` (the loop of ``rules.attack``).

    ``order`` (K,) int64 attackers in the order they act, ``target`` (K,) int64 and ``draws``
    (K,) float64 aligned with it; ``wealth``, ``skill`` (N,) float64, ``alive`` (N,) bool;
    ``ally_ptr``/``ally_idx`` the CSR of ``ally_csr``. ``wealth`` is changed in place;
    ``looted``/``lost`` (N,) float64 and ``hits`` (N,) int64 are accumulated into.

    Returns ``(loot (K,) float64, flags (K,) int8, dissolved (D, 2) int64)``, the dissolved
    alliances as (min, max) pairs in the order they broke."""
    n = wealth.shape[0]
    k_n = order.shape[0]
    attacking = np.full(n, -1, np.int64)
    for k in range(k_n):
        attacking[order[k]] = target[k]
    gone = np.zeros(ally_idx.shape[0], np.bool_)  # CSR entries dissolved today
    loot_out = np.zeros(k_n, np.float64)
    flags = np.zeros(k_n, np.int8)
    dissolved = np.empty((k_n, 2), np.int64)
    n_gone = 0
    for k in range(k_n):
        i = order[k]
        j = attacking[i]
        pos_ij = _find(ally_ptr, ally_idx, i, j)
        on_ally = pos_ij >= 0 and not gone[pos_ij]
        wi = wealth[i]
        wj = wealth[j]
        s_i = strength(skill[i], wi, wealth_weight, wealth_cap)
        s_j = strength(skill[j], wj, wealth_weight, wealth_cap)
        for p in range(ally_ptr[j], ally_ptr[j + 1]):
            if gone[p]:
                continue
            a = ally_idx[p]
            if attacking[a] != j and alive[a]:
                s_j += ally_defence * strength(skill[a], wealth[a], wealth_weight,
                                                wealth_cap)
        success = draws[k] < s_i / (s_i + s_j)
        if success:
            loot = loot_fraction * (0.0 if 0.0 > wj else wj)
            cost_i = fight_cost + 0.0
        else:
            loot = 0.0
            cost_i = fight_cost + failed_attack_cost
        wealth[i] += loot - cost_i
        wealth[j] -= loot + fight_cost
        looted[i] += loot
        lost[i] += cost_i
        lost[j] += loot + fight_cost
        hits[j] += 1
        loot_out[k] = loot
        flag = np.int8(0)
        if success:
            flag |= _SUCCESS
        if on_ally:
            flag |= _ON_ALLY
            dissolved[n_gone, 0] = min(i, j)
            dissolved[n_gone, 1] = max(i, j)
            n_gone += 1
            gone[pos_ij] = True
            pos_ji = _find(ally_ptr, ally_idx, j, i)
            if pos_ji >= 0:
                gone[pos_ji] = True
        flags[k] = flag
    return loot_out, flags, dissolved[:n_gone].copy()
