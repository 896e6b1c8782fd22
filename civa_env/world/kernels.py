"""Compiled (numba) kernels of the world's rules.

* ``resolve_attacks``: the contested attack loop of ``rules.attack`` (attacks one by one in a
  given order, wealth changing as they go), with the same IEEE arithmetic in the same order.
* ``strength``: a resident's fighting strength, the one formula (``rules.strength`` calls it).
* ``ally_csr``: the alliance pairs as a CSR adjacency (neighbours ascending), the form the
  kernel reads.
* ``fill_view``: who each living resident sees (``perception.compute_view``): its priority
  pairs, then a window of its community's shuffled order.
* ``mark_dealings``: the ally, dealing and friendly-message flags of the view slots
  (``features._mark_dealings``).
* ``segment_sums``: the sum of each contiguous segment of an array, bit for bit what
  ``ndarray.sum`` gives on the segment alone (numpy's pairwise summation).
* ``fill_streams``: one draw of E communities' generators at once (``batch.StreamBatch``),
  the numbers each generator's own ``random`` / ``standard_normal`` would give.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

try:  # numpy's ziggurat tables, as numba ships them (a private module: without it,
    # ``fill_streams`` raises and ``batch.StreamBatch`` draws generator by generator)
    from numba.np.random._constants import (
        fi_double,
        ki_double,
        wi_double,
        ziggurat_nor_inv_r,
        ziggurat_nor_r,
    )
except ImportError:  # pragma: no cover
    fi_double = ki_double = wi_double = None
    ziggurat_nor_inv_r = ziggurat_nor_r = 0.0

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
def fill_view(order_key, living, n_per, ptr, pair_to, out):
    """Fill ``out`` (N, V) int32 (all -1 on entry) with who each living resident sees.

    ``living`` (L,) int64 ascending pool rows (so each community's are contiguous, community
    ``living // n_per``); ``order_key`` (N,) float64 the day's key of every name; ``ptr``
    (N + 1,) and ``pair_to`` the viewer's priority pairs as CSR (allies, then recent
    dealings, each by name: ``perception._priority_pairs``).

    Each community's living residents are ordered by key (ties: lower row first, a stable
    sort); the resident at position p of that order samples the next ``min(V, size - 1)``
    of it (cyclically). Its row is its pairs in order, then its sample less its pairs by
    name ascending, the first V of them.
    """
    n_alive = living.shape[0]
    v = out.shape[1]
    mark = np.full(out.shape[0], -1, np.int64)  # mark[j] == i: j is one of i's pairs
    sample = np.empty(v, np.int64)
    lo = 0
    while lo < n_alive:
        c = living[lo] // n_per
        hi = lo + 1
        while hi < n_alive and living[hi] // n_per == c:
            hi += 1
        size = hi - lo
        members = living[lo:hi]
        perm = members[np.argsort(order_key[members], kind="mergesort")]
        width = min(v, size - 1)
        for p in range(size):
            i = perm[p]
            k = 0
            for q in range(ptr[i], ptr[i + 1]):
                j = pair_to[q]
                mark[j] = i
                if k < v:
                    out[i, k] = j
                    k += 1
            m = 0
            for col in range(width):
                j = perm[(p + 1 + col) % size]
                if mark[j] != i:  # insertion into sample[:m], ascending
                    t = m
                    while t > 0 and sample[t - 1] > j:
                        sample[t] = sample[t - 1]
                        t -= 1
                    sample[t] = j
                    m += 1
            t = 0
            while k < v and t < m:
                out[i, k] = sample[t]
                k += 1
                t += 1
        lo = hi


@njit(cache=True)
def mark_dealings(slots, view, row_of, viewer, other, channel):
    """Set ``slots[row_of[i], s, c] = 1`` for each pair (i = ``viewer[p]``, ``other[p]``,
    c = ``channel[p]``) whose viewer has a row (``row_of[i] >= 0``) and a channel
    (``c >= 0``), s being the slot of i's view row ``view[i]`` that holds the other (if
    any: empty slots hold -1, which no resident is)."""
    v = view.shape[1]
    for p in range(viewer.shape[0]):
        i = viewer[p]
        r = row_of[i]
        c = channel[p]
        if r < 0 or c < 0:
            continue
        j = other[p]
        for s in range(v):
            if view[i, s] == j:
                slots[r, s, c] = 1.0


@njit(cache=True)
def _pairwise_sum(a, lo, n):
    """``a[lo:lo + n]`` summed as numpy sums a contiguous float64 array: eight running sums
    over blocks of up to 128, combined pairwise, halves of longer runs summed apart (the
    ``pairwise_sum`` of numpy's ``loops_utils.h``)."""
    if n < 8:
        res = -0.0
        for i in range(n):
            res += a[lo + i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        i = 8
        stop = n - (n % 8)
        while i < stop:
            j = lo + i
            r0 += a[j]
            r1 += a[j + 1]
            r2 += a[j + 2]
            r3 += a[j + 3]
            r4 += a[j + 4]
            r5 += a[j + 5]
            r6 += a[j + 6]
            r7 += a[j + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, lo, n2) + _pairwise_sum(a, lo + n2, n - n2)


@njit(cache=True)
def segment_sums(values, bounds):
    """(S,) float64: segment s is ``values[bounds[s]:bounds[s + 1]]`` (``values`` float64,
    contiguous), summed exactly as ``values[bounds[s]:bounds[s + 1]].sum()`` is (the
    reduction starts from the identity 0.0; tests check it bit for bit)."""
    out = np.empty(bounds.shape[0] - 1)
    for s in range(out.shape[0]):
        out[s] = 0.0 + _pairwise_sum(values, bounds[s], bounds[s + 1] - bounds[s])
    return out


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


# ---- random streams of many communities --------------------------------------------------
# A batch of E communities draws, each day and purpose, the same numbers each community's
# own generator would draw alone (``batch.StreamBatch``). The fills below make those draws
# for all E generators in one call: they advance each generator through its bit generator's
# own C functions (``bitgen_t``, numpy's documented C interface: the state pointer, then
# ``next_uint64``, ``next_uint32``, ``next_double``), so a uniform is exactly
# ``Generator.random``'s, and a normal is ``Generator.standard_normal``'s ziggurat, with
# numpy's tables (which numba's own Generator support ships). ``batch.StreamBatch`` checks
# both against numpy once per process before it uses them, and draws generator by
# generator if they ever differ.


_HAVE_TABLES = ki_double is not None
_KI = np.asarray(ki_double if _HAVE_TABLES else [0], np.uint64)
_WI = np.asarray(wi_double if _HAVE_TABLES else [0.0], np.float64)
_FI = np.asarray(fi_double if _HAVE_TABLES else [0.0], np.float64)


@intrinsic
def _load_word(typingctx, addr):
    """The 64-bit word at address ``addr`` (an int64)."""
    sig = types.int64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.load(builder.inttoptr(args[0], ir.IntType(64).as_pointer()))

    return sig, codegen


@intrinsic
def _call_u64(typingctx, fn, state):
    """``fn(state)`` for a C function ``uint64_t fn(void *)`` at address ``fn``."""
    sig = types.uint64(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        void_p = ir.IntType(8).as_pointer()
        f = builder.inttoptr(args[0], ir.FunctionType(ir.IntType(64), [void_p]).as_pointer())
        return builder.call(f, [builder.inttoptr(args[1], void_p)])

    return sig, codegen


@intrinsic
def _call_double(typingctx, fn, state):
    """``fn(state)`` for a C function ``double fn(void *)`` at address ``fn``."""
    sig = types.float64(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        void_p = ir.IntType(8).as_pointer()
        f = builder.inttoptr(args[0], ir.FunctionType(ir.DoubleType(), [void_p]).as_pointer())
        return builder.call(f, [builder.inttoptr(args[1], void_p)])

    return sig, codegen


@njit(cache=True)
def _normal(next_u64, next_double, st, ki, wi, fi):
    """One ``random_standard_normal`` (numpy's ziggurat, distributions.c) of bit generator
    state ``st``."""
    while True:
        r = _call_u64(next_u64, st)
        idx = np.int64(r & np.uint64(0xFF))
        r = r >> np.uint64(8)
        sign = r & np.uint64(1)
        rabs = (r >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
        x = np.float64(rabs) * wi[idx]
        if sign == np.uint64(1):
            x = -x
        if rabs < ki[idx]:
            return x
        if idx == 0:
            while True:
                xx = -ziggurat_nor_inv_r * np.log1p(-_call_double(next_double, st))
                yy = -np.log1p(-_call_double(next_double, st))
                if yy + yy > xx * xx:
                    if (rabs >> np.uint64(8)) & np.uint64(1):
                        return -(ziggurat_nor_r + xx)
                    return ziggurat_nor_r + xx
        else:
            if ((fi[idx - 1] - fi[idx]) * _call_double(next_double, st) + fi[idx]
                    < np.exp(-0.5 * x * x)):
                return x


@njit(cache=True)
def _fill(bitgens, out, normal, ki, wi, fi):
    e_n = bitgens.shape[0]
    rows, width = out.shape
    k = width // e_n
    for e in range(e_n):
        bg = bitgens[e]
        st = _load_word(bg)
        next_u64 = _load_word(bg + 8)
        next_double = _load_word(bg + 24)
        lo = e * k
        for p in range(rows):
            for q in range(lo, lo + k):
                if normal:
                    out[p, q] = _normal(next_u64, next_double, st, ki, wi, fi)
                else:
                    out[p, q] = _call_double(next_double, st)


def fill_streams(bitgens: np.ndarray, out: np.ndarray, normal: bool) -> None:
    """Draw ``out`` (P, E K) float64 from E bit generators (``bitgens`` (E,) int64, the
    addresses of their ``bitgen_t``): generator e fills columns ``[e K, (e + 1) K)``, row
    after row, as ``random((P, K))`` (``normal``: ``standard_normal((P, K))``) fills its
    (P, K) output; the generators advance as those calls would advance them."""
    if not _HAVE_TABLES:
        raise RuntimeError("numba ships no ziggurat tables here")
    _fill(bitgens, out, normal, _KI, _WI, _FI)
