"""Compiled (numba) kernels of the world's rules.

* ``resolve_attacks``: the contested attack loop of ``rules.attack`` (attacks one by one in a
  given order, wealth changing as they go), with the same IEEE arithmetic in the same order.
* ``strength``: a resident's fighting strength, the one formula (``rules.strength`` calls it).
* ``ally_csr``: the alliance pairs as a CSR adjacency (neighbours ascending), the form the
  kernel reads.
* ``mutual_merges``: the alliances a day's merge proposals form (``rules.merge``).
* ``priority_pairs``, ``fill_view``: who each living resident sees (``perception.compute_view``):
  its priority pairs (allies, then recent dealings, as CSR), then a window of its
  community's shuffled order.
* ``segment_sums``: the sum of each contiguous segment of an array, bit for bit what
  ``ndarray.sum`` gives on the segment alone (numpy's pairwise summation).
* ``fill_streams``: one draw of E communities' generators at once (``batch.StreamBatch``),
  the numbers each generator's own ``random`` / ``standard_normal`` would give (PCG64
  stepped inline in registers, ``_pcg64_step``; other bit generators through their C functions).
* ``blank_rows``: rows of a vector env's observation back to the "not alive" row.
* ``fill_features``, ``fill_masks``: the feature vectors (``features.features``, the view
  slots' ally, dealing and friendly-message flags included) and the factored masks
  (``factored.masks``) of a set of residents, written in place.
* ``primary_actions``: work, explore and upgrade (``rules._primary``).
* ``decode_actions``: the arrays of ``factored.decode`` (primary, secondary, target,
  amount; messages stay in Python).
* ``validate_actions``: the checks of ``actions.validate``.
* ``pay_upkeep``: the upkeep of ``rules.apply_upkeep``.
* ``seed_sequence_states``: what ``numpy.random.SeedSequence.generate_state`` gives, for
  many seed sequences at once (``seeding``); ``episode_seed_words``: the next episodes'
  seeds and their streams' seed words in one pass.
* ``fresh_draws``: the founders' draws of fresh worlds (``state.seeded_states``), their world
  and values streams PCG64s seeded from their seed words in registers (no generator made).
"""

from __future__ import annotations

import math

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
    return _ally_csr(np.ascontiguousarray(allies, np.int64).reshape(-1, 2), n)


@njit(cache=True)
def mutual_merges(rows, tgt, recent_src, recent_dst, recent_day, recent_kind, kind, since,
                  n_per, allies):
    """The alliances that today's merge proposals ``rows[k] -> tgt[k]`` (already among the
    dealings) form: each proposal answered by a dealing ``tgt[k] -> rows[k]`` of ``kind``
    of a day >= ``since`` of their community ((E,) int64), once per pair, not an alliance
    already (``allies`` (A, 2) pairs i < j). Returns (P, 2) int64 pairs, lower name first,
    in name order."""
    n_pool = n_per * since.shape[0]
    keys = np.empty(recent_src.shape[0], np.int64)  # src * N + dst of those dealings, sorted
    count = 0
    for p in range(recent_src.shape[0]):
        if recent_kind[p] == kind and recent_day[p] >= since[recent_src[p] // n_per]:
            keys[count] = np.int64(recent_src[p]) * n_pool + recent_dst[p]
            count += 1
    keys = keys[:count]
    keys.sort()
    pairs = np.empty(rows.shape[0], np.int64)  # lo * N + hi of the mutual ones
    found = 0
    for k in range(rows.shape[0]):
        r, t = np.int64(rows[k]), np.int64(tgt[k])
        if t < 0 or count == 0:
            continue
        key = t * n_pool + r
        at = np.searchsorted(keys, key)
        if at < count and keys[at] == key:
            pairs[found] = min(r, t) * n_pool + max(r, t)
            found += 1
    pairs = np.unique(pairs[:found])
    allied = np.empty(allies.shape[0], np.int64)
    for a in range(allies.shape[0]):
        allied[a] = np.int64(allies[a, 0]) * n_pool + allies[a, 1]
    allied.sort()
    out = np.empty((pairs.shape[0], 2), np.int64)
    kept = 0
    for q in range(pairs.shape[0]):
        at = np.searchsorted(allied, pairs[q])
        if at < allied.shape[0] and allied[at] == pairs[q]:
            continue
        out[kept, 0] = pairs[q] // n_pool
        out[kept, 1] = pairs[q] % n_pool
        kept += 1
    return out[:kept]


@njit(cache=True, inline="always")
def _sort_segment(a, lo, hi):
    """Sort ``a[lo:hi]`` ascending in place (insertion sort: segments here are short)."""
    for q in range(lo + 1, hi):
        x = a[q]
        t = q
        while t > lo and a[t - 1] > x:
            a[t] = a[t - 1]
            t -= 1
        a[t] = x


@njit(cache=True)
def _ally_csr(pairs, n):
    count = np.zeros(n + 1, np.int64)
    for p in range(pairs.shape[0]):
        count[pairs[p, 0] + 1] += 1
        count[pairs[p, 1] + 1] += 1
    for i in range(n):
        count[i + 1] += count[i]
    both = np.empty(count[n], np.int64)
    at = count[:n].copy()
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        both[at[i]] = j
        at[i] += 1
        both[at[j]] = i
        at[j] += 1
    ptr = np.zeros(n + 1, np.int64)
    k = 0
    for i in range(n):
        lo, hi = count[i], count[i + 1]
        _sort_segment(both, lo, hi)  # (a resident has few allies)
        for q in range(lo, hi):
            if q == lo or both[q] != both[q - 1]:  # repeats gone
                both[k] = both[q]
                k += 1
        ptr[i + 1] = k
    return ptr, both[:k].copy()


@njit(cache=True)
def strength(skill, w, wealth_weight, wealth_cap):
    """Fighting strength ``skill + wealth_weight * min(max(w, 0), wealth_cap)`` (what
    ``rules.strength`` gives; callable from Python too)."""
    # Python's min(max(w, 0.0), cap), spelt as CPython evaluates it.
    x = 0.0 if 0.0 > w else w
    x = wealth_cap if wealth_cap < x else x
    return skill + wealth_weight * x


@njit(cache=True, inline="always")
def _sees(alive, i, j):
    return alive[i] and alive[j] and i != j


@njit(cache=True, inline="always")
def _direct(recent_dst, recent_day, days, n_per, recent_days, i, d):
    """Whether dealing ``d`` (from ``i``) is direct and of the last ``recent_days`` days."""
    return recent_dst[d] >= 0 and recent_day[d] > days[i // n_per] - recent_days


@njit(cache=True)
def priority_pairs(allies, recent_src, recent_dst, recent_day, days, alive, n_per,
                   recent_days):
    """Whom each resident sees first, as CSR (``ptr`` (N + 1,) int64, ``pair_to`` (P,)
    int64): its allies (level 0), then those it dealt with directly, either way, in the last
    ``recent_days`` days (level 1; a dealing of day d counts while d > today -
    ``recent_days``), both alive and not itself, each once at its highest priority, by
    level, then name. ``days`` (E,) int64: each community's day (a dealing's is its
    source's)."""
    n = alive.shape[0]
    count = np.zeros(n + 1, np.int64)
    for a in range(allies.shape[0]):
        i, j = allies[a, 0], allies[a, 1]
        if _sees(alive, i, j):
            count[i + 1] += 1
            count[j + 1] += 1
    counted = np.empty(recent_src.shape[0], np.bool_)  # the dealings entered (both passes)
    for d in range(recent_src.shape[0]):
        i, j = recent_src[d], recent_dst[d]
        counted[d] = _direct(recent_dst, recent_day, days, n_per, recent_days, i, d) \
            and _sees(alive, i, j)
        if counted[d]:
            count[i + 1] += 1
            count[j + 1] += 1
    for i in range(n):
        count[i + 1] += count[i]
    keys = np.empty(count[n], np.int64)  # level * N + name, viewer by viewer
    at = count[:n].copy()
    for a in range(allies.shape[0]):
        i, j = allies[a, 0], allies[a, 1]
        if _sees(alive, i, j):
            keys[at[i]] = j
            at[i] += 1
            keys[at[j]] = i
            at[j] += 1
    for d in range(recent_src.shape[0]):
        i, j = recent_src[d], recent_dst[d]
        if counted[d]:
            keys[at[i]] = n + j
            at[i] += 1
            keys[at[j]] = n + i
            at[j] += 1
    ptr = np.zeros(n + 1, np.int64)
    pair_to = np.empty(count[n], np.int64)
    mark = np.full(n, -1, np.int64)
    k = 0
    for i in range(n):
        lo, hi = count[i], count[i + 1]
        _sort_segment(keys, lo, hi)  # (a viewer has few pairs)
        for q in range(lo, hi):
            j = keys[q] % n
            if mark[j] != i:  # each once, at its highest priority (sorted first)
                mark[j] = i
                pair_to[k] = j
                k += 1
        ptr[i + 1] = k
    return ptr, pair_to[:k]


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
    name ascending, the first V of them. (Where the sample is at least half the community,
    it is read off the members in name order, each kept if its place in the order is in
    the window; else its V names are sorted: the same rows either way.)
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
        order = np.argsort(order_key[members], kind="mergesort")
        perm = members[order]
        place = np.empty(size, np.int64)  # place[t]: members[t]'s position in perm
        for q in range(size):
            place[order[q]] = q
        width = min(v, size - 1)
        by_name = 2 * width >= size
        for p in range(size):
            i = perm[p]
            k = 0
            for q in range(ptr[i], ptr[i + 1]):
                j = pair_to[q]
                mark[j] = i
                if k < v:
                    out[i, k] = j
                    k += 1
            if k == v:
                continue
            if by_name:  # members by name, those whose place is in (p, p + width]
                for t in range(size):
                    d = place[t] - p - 1
                    if d < 0:
                        d += size
                    if d < width and mark[members[t]] != i:
                        out[i, k] = members[t]
                        k += 1
                        if k == v:
                            break
                continue
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
def _signed_log(x):
    """``features.signed_log`` of one number, with libm's log1p: what numpy computes with its
    baseline and AVX2 (X86_V3) loops. numpy's AVX-512 loops of log1p and exp may differ in
    the last bit; the kernels do not follow them, so a run is the same on every x86-64
    machine (the golden digests and the oracle tests pin numpy to X86_V3)."""
    return math.copysign(math.log1p(abs(x)), x)


@njit(cache=True)
def _clip(x, bound):
    """``np.minimum(np.maximum(x, -bound), bound)`` of one number (NaN and -0.0 kept)."""
    if x < -bound:
        return -bound
    if x > bound:
        return bound
    return x


@njit(cache=True)
def fill_features(rows, out_rows, feats, n_per, bound, alive,
                  per_name, per_community, own_col, own_log, own_div,
                  condition, direction_of, value_of, direction_start, value_start,
                  factory_slots, known, m_per, report, factory_start,
                  view, wealth, slot_start, slot_width, present_at, wealth_at,
                  allies, ally_at, recent_day, recent_src, recent_dst, recent_kind,
                  recent_friendly, first_recent, dealt_me, i_dealt, friendly_at):
    """Write the feature vector of each pool row ``rows[k]`` into ``feats[out_rows[k]]``
    (every column: the row is cleared first), as ``features.features`` describes it.

    Own channels: ``per_name`` (P arrays (N,) float64) and ``per_community`` (Q, E) float64 hold
    the sources in a fixed order (``features._NAME_SOURCES``, whose first is the wealth,
    then ``_COMMUNITY_SOURCES``: its rows 1 and 2, each community's population (at least 1)
    and mean wealth, are written here from ``alive``, by ``community_wealth``); source ``q``
    goes to column
    ``own_col[q]``, signed-logged where ``own_log[q]``, divided by ``own_div[q]``, clipped to
    ``bound``. The condition one-hots: ``direction_of`` / ``value_of`` map a condition code to
    its column offset (-1: none). Factory slots: ``report`` (E M, C) the encoded report of
    every factory, shown where the resident knows the slot's factory. View slots: present,
    relative wealth, then the flags of the alliances and of the recent dealings (those of
    days >= ``first_recent`` of the dealer's community, messages to everyone left out):
    ``dealt_me[kind]`` / ``i_dealt[kind]`` the channel offsets (-1: none), friendly direct
    messages ``friendly_at``. The arithmetic is numpy's, step for step (float64, clipped,
    then stored as float32).
    """
    n_pool = wealth.shape[0]
    n_sources = len(per_name)
    n_slots = factory_slots.shape[1]
    n_fc = report.shape[1]
    v = view.shape[1]
    # signed_log of the wealth of each name observed or seen, once per name.
    slog = np.empty(n_pool)
    have = np.zeros(n_pool, np.bool_)
    for k in range(rows.shape[0]):
        i = rows[k]
        if not have[i]:
            have[i] = True
            slog[i] = _signed_log(wealth[i])
        for s in range(v):
            j = view[i, s]
            if j >= 0 and not have[j]:
                have[j] = True
                slog[j] = _signed_log(wealth[j])
    # The community sources, encoded once per community.
    counts, means = community_wealth(alive, wealth, n_per, per_community.shape[1])
    for c in range(per_community.shape[1]):
        per_community[1, c] = counts[c]
        per_community[2, c] = means[c]
    n_own = own_col.shape[0]
    shared = np.empty((per_community.shape[1], n_own - n_sources))
    for c in range(per_community.shape[1]):
        for q in range(n_sources, n_own):
            x = per_community[q - n_sources, c]
            if own_log[q]:
                x = _signed_log(x)
            shared[c, q - n_sources] = _clip(x / own_div[q], bound)
    row_of = np.full(n_pool, -1, np.int64)
    for k in range(rows.shape[0]):
        i = rows[k]
        r = out_rows[k]
        row_of[i] = r
        c = i // n_per
        feats[r, :] = 0.0
        for q in range(n_sources):
            if q == 0 and own_log[0]:  # source 0 is the resident's wealth
                x = slog[i]
            else:
                x = per_name[q][i]
                if own_log[q] and x != 0.0:  # (signed_log(+-0.0) is x itself)
                    x = _signed_log(x)
            feats[r, own_col[q]] = _clip(x / own_div[q], bound)
        for q in range(n_sources, n_own):
            feats[r, own_col[q]] = shared[c, q - n_sources]
        code = condition[i]
        feats[r, direction_start + direction_of[code]] = 1.0
        if code > 0:
            feats[r, value_start + value_of[code]] = 1.0
        for s in range(n_slots):
            f = factory_slots[i, s]
            shown = 0.0
            if f >= 0 and known[i, f]:
                shown = 1.0
            f = max(f, 0) + c * m_per
            base = factory_start + s * n_fc
            for ch in range(n_fc):
                feats[r, base + ch] = shown * report[f, ch]
        own = slog[i]
        for s in range(v):
            j = view[i, s]
            if j >= 0:
                base = slot_start + s * slot_width
                feats[r, base + present_at] = 1.0
                feats[r, base + wealth_at] = _clip(slog[j] - own, bound)
    for p in range(allies.shape[0]):
        _mark(feats, view, row_of, allies[p, 0], allies[p, 1], slot_start, slot_width, ally_at)
        _mark(feats, view, row_of, allies[p, 1], allies[p, 0], slot_start, slot_width, ally_at)
    for p in range(recent_day.shape[0]):
        src, dst = recent_src[p], recent_dst[p]
        # (neither end observed: nothing to mark; the cheap test first, for few rows)
        if dst < 0 or (row_of[src] < 0 and row_of[dst] < 0) \
                or recent_day[p] < first_recent[src // n_per]:
            continue
        kind = recent_kind[p]
        _mark(feats, view, row_of, dst, src, slot_start, slot_width, dealt_me[kind])
        _mark(feats, view, row_of, src, dst, slot_start, slot_width, i_dealt[kind])
        if recent_friendly[p]:
            _mark(feats, view, row_of, dst, src, slot_start, slot_width, friendly_at)


@njit(cache=True, inline="always")
def _mark(feats, view, row_of, i, j, slot_start, slot_width, at):
    """Set channel ``at`` (an offset in the slot block; -1: none) of the slot of viewer
    ``i``'s row that holds ``j``, if ``i`` is observed and sees ``j`` (the first such slot: a
    view row holds each name once, as ``perception.compute_view`` makes it)."""
    r = row_of[i]
    if r < 0 or at < 0:
        return
    for s in range(view.shape[1]):
        if view[i, s] == j:  # (a row holds each name once)
            feats[r, slot_start + s * slot_width + at] = 1.0
            return


@njit(cache=True)
def blank_rows(feats, masks, alive, rows, idle_mask):
    """Rows ``rows`` of a vector env's observation back to the "not alive" row: zero
    features, the mask ``idle_mask``, not alive."""
    for k in range(rows.shape[0]):
        r = rows[k]
        feats[r, :] = 0.0
        masks[r, :] = idle_mask
        alive[r] = False


@njit(cache=True)
def fill_masks(rows, out_rows, masks, wealth, upgrade_cost, factory_slots, known, view,
               allies, offsets, none_at, gift_at, attack_at, merge_at, can_talk):
    """Write the factored component masks of each pool row ``rows[k]`` into
    ``masks[out_rows[k]]`` (int8, every column), as ``factored.masks`` describes them.

    ``offsets`` (C + 1,) where each component starts; the primary part is work per factory
    slot, explore, upgrade self, upgrade factory per slot, idle; ``*_at`` the secondary
    kinds' columns; ``can_talk`` whether message kinds other than "none" are allowed. A
    view row holds each name once (``perception.compute_view``): an ally's flag is set on
    the first slot holding it."""
    n_pool = wealth.shape[0]
    n_slots = factory_slots.shape[1]
    v = view.shape[1]
    o0, o2, o3, o4, o5, o6 = (offsets[0], offsets[2], offsets[3], offsets[4], offsets[5],
                              offsets[6])
    row_of = np.full(n_pool, -1, np.int64)
    for k in range(rows.shape[0]):
        row_of[rows[k]] = k
    allied = np.zeros((rows.shape[0], v), np.bool_)
    for p in range(allies.shape[0]):
        for side in range(2):
            i, j = allies[p, side], allies[p, 1 - side]
            k = row_of[i]
            if k >= 0:
                for s in range(v):
                    if view[i, s] == j:  # (a row holds each name once)
                        allied[k, s] = True
                        break
    for k in range(rows.shape[0]):
        i = rows[k]
        r = out_rows[k]
        masks[r, :] = 0
        w = wealth[i]
        can_pay = w >= upgrade_cost
        for s in range(n_slots):
            f = factory_slots[i, s]
            if f >= 0 and known[i, f]:
                masks[r, o0 + s] = 1
                if can_pay:
                    masks[r, o0 + n_slots + 2 + s] = 1
        masks[r, o0 + n_slots] = 1  # explore
        if can_pay:
            masks[r, o0 + n_slots + 1] = 1  # upgrade self
        masks[r, o0 + 2 * n_slots + 2] = 1  # idle
        anyone = False
        mergeable = False
        for s in range(v):
            if view[i, s] >= 0:
                anyone = True
                masks[r, o2 + s] = 1
                masks[r, o5 + s] = 1
                if not allied[row_of[i], s]:  # (a row asked for twice: its flags)
                    mergeable = True
        masks[r, none_at] = 1
        if anyone:
            masks[r, attack_at] = 1
            if w > 0:
                masks[r, gift_at] = 1
        if mergeable:
            masks[r, merge_at] = 1
        for col in range(o3, o4):
            masks[r, col] = 1
        masks[r, o4] = 1
        if can_talk:
            for col in range(o4 + 1, o5):
                masks[r, col] = 1
        masks[r, o6 - 1] = 1


@njit(cache=True)
def primary_actions(alive, primary, factory, n_per, m_per, wealth, skill, income, known,
                    capacity, workers, output, outage, u_outage, z, u_explore, p_out,
                    production_k, production_n_half, production_noise, explore_find_max,
                    reveal_prob, find_prob, upgrade_cost, skill_gain, capacity_gain,
                    work, explore, upgrade_self, upgrade_factory, idle, revealed, found,
                    parts):
    """The day's primary actions (``rules.produce``, ``rules.explore``, ``rules.upgrade``)
    in one pass each, with numpy's arithmetic in numpy's order: the state's arrays are
    updated in place and ``income`` (zeros on entry) gets production and finds.

    ``u_outage`` (E M,), ``z`` (N,) and ``u_explore`` (4, N) are the day's draws (the rules
    draw them whatever the residents chose); ``p_out`` (E,) each community's outage
    probability; ``work`` ... ``idle`` the ``Primary`` codes, ``revealed`` / ``found`` the
    explore flags; ``parts`` which rules to play (1 work, 2 explore, 4 upgrade; the others'
    columns are returned empty). Returns the events' columns: the outage factories; the
    workers (rows ascending), their factory rows and shares; the explorers, the factory row
    revealed (-1: none), the amount found and the flag; the self-upgraders and their new
    skill; the factory upgraders, their factory rows and the capacities after every upgrade;
    the idlers.
    """
    n = alive.shape[0]
    m = capacity.shape[0]
    m_local = known.shape[1]
    # Production: workers per factory, their skill sums (bincount's order: by row).
    do_work, do_explore, do_upgrade = parts & 1, parts & 2, parts & 4
    w_rows = np.empty(n, np.int64)
    w_fac = np.empty(n, np.int64)
    n_work = 0
    counts = np.zeros(m, np.int64)
    skill_sum = np.zeros(m)
    for i in range(n if do_work else 0):
        if alive[i] and primary[i] == work:
            f = factory[i] + (i // n_per) * m_per
            w_rows[n_work] = i
            w_fac[n_work] = f
            n_work += 1
            counts[f] += 1
            skill_sum[f] += skill[i]
    s0 = 1.0 / (1.0 + math.exp(production_k * production_n_half))
    out_f = np.empty(m)
    n_off = 0
    for f in range(m if do_work else 0):
        off = u_outage[f] < p_out[f // m_per]
        outage[f] = off
        n_off += off
        if off:
            out_f[f] = 0.0
        else:
            s = 1.0 / (1.0 + math.exp(-production_k * (counts[f] - production_n_half)))
            out_f[f] = capacity[f] * (s - s0) / (1.0 - s0)
        workers[f] = counts[f]
        output[f] = 0.0
    off_rows = np.empty(n_off, np.int64)
    k = 0
    for f in range(m if do_work else 0):
        if outage[f]:
            off_rows[k] = f
            k += 1
    shares = np.empty(n_work)
    for q in range(n_work):
        i, f = w_rows[q], w_fac[q]
        total = skill_sum[f]
        share = out_f[f] * skill[i] / (total if total > 0 else 1.0) \
            * math.exp(production_noise * z[i])
        shares[q] = share
        income[i] = share
        wealth[i] += share
        output[f] += share
    # Explore: reveal the k-th unknown factory, else find wealth.
    e_rows = np.empty(n, np.int64)
    n_exp = 0
    for i in range(n if do_explore else 0):
        if alive[i] and primary[i] == explore:
            e_rows[n_exp] = i
            n_exp += 1
    e_fac = np.empty(n_exp, np.int64)
    e_amount = np.empty(n_exp)
    e_flag = np.empty(n_exp, np.int64)
    for q in range(n_exp):
        i = e_rows[q]
        n_unknown = 0
        for f in range(m_local):
            if not known[i, f]:
                n_unknown += 1
        kth = min(np.int64(u_explore[3, i] * n_unknown), max(n_unknown - 1, 0))
        pick = 0  # positions before the kth unknown one (numpy's cumsum <= k count)
        seen = 0
        for f in range(m_local):
            if not known[i, f]:
                seen += 1
            if seen <= kth:
                pick += 1
        pick = min(pick, m_local - 1)
        reveal = u_explore[0, i] < reveal_prob and n_unknown > 0
        find = (not reveal) and u_explore[1, i] < find_prob
        amount = u_explore[2, i] * explore_find_max if find else 0.0
        if reveal:
            known[i, pick] = True
            e_fac[q] = pick + (i // n_per) * m_per
            e_flag[q] = revealed
        else:
            e_fac[q] = -1
            e_flag[q] = found if find else 0
        e_amount[q] = amount
        wealth[i] += amount
        income[i] += amount
    # Upgrades (factory capacities added in row order, as np.add.at adds), then idlers.
    u_rows = np.empty(n, np.int64)
    f_rows = np.empty(n, np.int64)
    i_rows = np.empty(n, np.int64)
    n_up = n_fa = n_idle = 0
    for i in range(n if do_upgrade else 0):
        if not alive[i]:
            continue
        p = primary[i]
        if p == upgrade_self:
            u_rows[n_up] = i
            n_up += 1
        elif p == upgrade_factory:
            f_rows[n_fa] = i
            n_fa += 1
        elif p == idle:
            i_rows[n_idle] = i
            n_idle += 1
    u_skill = np.empty(n_up)
    for q in range(n_up):
        i = u_rows[q]
        wealth[i] -= upgrade_cost
        skill[i] += skill_gain
        u_skill[q] = skill[i]
    fa_fac = np.empty(n_fa, np.int64)
    for q in range(n_fa):
        i = f_rows[q]
        f = factory[i] + (i // n_per) * m_per
        fa_fac[q] = f
        wealth[i] -= upgrade_cost
        capacity[f] += capacity_gain
    fa_cap = np.empty(n_fa)
    for q in range(n_fa):
        fa_cap[q] = capacity[fa_fac[q]]
    return (off_rows, w_rows[:n_work].copy(), w_fac[:n_work].copy(), shares,
            e_rows[:n_exp].copy(), e_fac, e_amount, e_flag, u_rows[:n_up].copy(), u_skill,
            f_rows[:n_fa].copy(), fa_fac, fa_cap, i_rows[:n_idle].copy())


@njit(cache=True)
def pay_upkeep(alive, primary, n_per, upkeep, noise, z, idle, idle_factor, wealth):
    """``rules.apply_upkeep``'s arithmetic in one pass: each living name pays
    ``upkeep[community] * exp(noise z)`` (times ``idle_factor`` if it idles), taken from
    ``wealth`` in place; returns (N,) float64 what each paid (0 for the others). numpy's
    order of operations, with libm's ``exp`` (numpy's baseline and AVX2 loop)."""
    n = alive.shape[0]
    cost = np.zeros(n)
    for i in range(n):
        if alive[i]:
            c = upkeep[i // n_per] * np.exp(noise * z[i])
            if primary[i] == idle:
                c = c * idle_factor
            cost[i] = c
        wealth[i] -= cost[i]  # (0.0 for the others, as numpy subtracts it)
    return cost


@njit(cache=True)
def validate_actions(alive, known, wealth, primary, factory, secondary, target, amount,
                     ally_keys, n_factories, upgrade_cost, work, upgrade_self,
                     upgrade_factory, idle, none, gift, merge):
    """``actions.validate``'s checks of every name's packed action, in its order, in place:
    returns (N,) int16 of the reasons that apply to each row, bit ``b`` for the b-th of
    ``actions.VALIDATION_REASONS`` (the caller flags them, reason by reason).

    ``ally_keys``: the alliances as sorted ``i * N + j`` keys (i < j)."""
    n = alive.shape[0]
    reasons = np.zeros(n, np.int16)
    for i in range(n):
        p = primary[i]
        if alive[i]:
            if p == work or p == upgrade_factory:
                f = factory[i]
                if f < 0 or f >= n_factories:
                    reasons[i] |= 1  # unknown factory
                    p = idle
                elif not known[i, f]:
                    reasons[i] |= 2  # not known to the resident
                    p = idle
            if (p == upgrade_self or p == upgrade_factory) and wealth[i] < upgrade_cost:
                reasons[i] |= 4  # cannot pay
                p = idle
            primary[i] = p
        if p != work and p != upgrade_factory:
            factory[i] = -1
        s = secondary[i]
        if alive[i] and s != none:
            t = target[i]
            if t == i:
                reasons[i] |= 8  # oneself
                s = none
            elif t < 0 or t >= n or not alive[t]:
                reasons[i] |= 16  # dead or unknown
                s = none
            elif s == merge and ally_keys.shape[0]:
                key = min(i, t) * n + max(i, t)
                pos = min(np.searchsorted(ally_keys, key), ally_keys.shape[0] - 1)
                if ally_keys[pos] == key:
                    reasons[i] |= 32  # already allied
                    s = none
            if s == gift:
                a = amount[i]
                if not a > 0:  # (NaN too)
                    reasons[i] |= 64
                    s = none
                else:
                    held = wealth[i]
                    if not held > 0.0 and held == held:  # np.maximum(wealth, 0.0): NaN
                        held = 0.0  # kept, and -0.0 gives 0.0 (its second argument)
                    if a > held + 1e-9:
                        reasons[i] |= 128  # cut to what is held
                        amount[i] = held
            secondary[i] = s
        if s == none:
            target[i] = -1
        if s != gift:
            amount[i] = 0.0
    return reasons


# numpy's SeedSequence hash constants (numpy/random/bit_generator.pyx).
_INIT_A, _MULT_A = np.uint32(0x43B0D7E5), np.uint32(0x931E8875)
_INIT_B, _MULT_B = np.uint32(0x8B51F9DD), np.uint32(0x58F38DED)
_MIX_L, _MIX_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_SHIFT = np.uint32(16)


@njit(cache=True)
def decode_actions(rows, acts, nvec, p_kind, p_factory, factory_slots, view, wealth,
                   gift_levels, primary, factory, secondary, target, amount, idle, none,
                   gift):
    """``factored.decode``'s arrays of residents ``rows``' factored actions ``acts`` (K, C),
    written into the batch's ``primary``, ``factory``, ``secondary``, ``target`` and
    ``amount`` (N,) in place: returns (K,) int16 of the reasons that apply to each row, bit
    ``b`` for the b-th of ``factored.decode_reasons`` (the caller flags them, reason by
    reason). ``nvec``: the component sizes; ``p_kind``/``p_factory``: the catalogue's primary
    kind and factory slot of each primary choice (-1: none)."""
    k_n = rows.shape[0]
    reasons = np.zeros(k_n, np.int16)
    n_slots = factory_slots.shape[1]
    for k in range(k_n):
        i = rows[k]
        r = 0
        p = acts[k, 0]
        if p < 0 or p >= nvec[0]:
            r |= 1  # primary outside its range: idle (the last choice)
            p = nvec[0] - 1
        kind = p_kind[p]
        slot = p_factory[p]
        f = -1
        if slot >= 0:
            f = factory_slots[i, slot] if slot < n_slots else -1
            if f < 0:
                r |= 2  # an empty factory slot: idle
                kind = idle
        primary[i] = kind
        factory[i] = f
        s = acts[k, 1]
        if s < 0 or s >= nvec[1]:
            r |= 4  # secondary outside its range: none
            s = none
        t = -1
        if s != none:
            q = acts[k, 2]
            if q < 0 or q >= nvec[2]:
                r |= 8  # target slot outside its range: none
                s = none
            else:
                t = view[i, q]
                if t < 0:
                    r |= 16  # an empty view slot: none
                    s = none
        secondary[i] = s
        target[i] = t if s != none else -1
        a = 0.0
        if s == gift:
            level = acts[k, 3]
            if level < 0 or level >= nvec[3]:
                r |= 32  # amount level outside its range: no gift (the target is kept)
                secondary[i] = none
            else:
                held = wealth[i]
                if not held > 0.0 and held == held:  # np.maximum(wealth, 0.0): NaN kept,
                    held = 0.0  # and -0.0 gives 0.0 (its second argument)
                a = gift_levels[level] * held
        amount[i] = a
        reasons[k] = r
    return reasons


@njit(cache=True)
def _hashmix(value, h):
    """SeedSequence's ``hashmix``: (mixed value, next hash constant)."""
    value ^= h
    h = np.uint32(h * _MULT_A)
    value = np.uint32(value * h)
    return np.uint32(value ^ (value >> _SHIFT)), h


@njit(cache=True)
def _mix(x, y):
    result = np.uint32(np.uint32(_MIX_L * x) - np.uint32(_MIX_R * y))
    return np.uint32(result ^ (result >> _SHIFT))


@njit(cache=True)
def seed_sequence_states(entropy, n_entropy, n_words32):
    """``SeedSequence.generate_state(n_words32, np.uint32)`` of G seed sequences at once:
    (G, n_words32) uint32. Row g's assembled entropy (its entropy's 32-bit words, padded
    with zeros to the pool size of 4 when it has a spawn key, then the spawn key's words:
    ``SeedSequence.get_assembled_entropy``) is ``entropy[g, :n_entropy[g]]``. The same
    uint32 arithmetic as numpy's ``mix_entropy`` and ``generate_state``."""
    out = np.empty((entropy.shape[0], n_words32), np.uint32)
    mixer = np.empty(4, np.uint32)
    for g in range(entropy.shape[0]):
        n = n_entropy[g]
        h = _INIT_A
        for i in range(4):
            mixer[i], h = _hashmix(entropy[g, i] if i < n else np.uint32(0), h)
        for i_src in range(4):
            for i_dst in range(4):
                if i_src != i_dst:
                    value, h = _hashmix(mixer[i_src], h)
                    mixer[i_dst] = _mix(mixer[i_dst], value)
        for i_src in range(4, n):
            for i_dst in range(4):
                value, h = _hashmix(entropy[g, i_src], h)
                mixer[i_dst] = _mix(mixer[i_dst], value)
        hb = _INIT_B
        for i in range(n_words32):
            d = mixer[i % 4] ^ hb
            hb = np.uint32(hb * _MULT_B)
            d = np.uint32(d * hb)
            out[g, i] = d ^ (d >> _SHIFT)
    return out


@njit(cache=True)
def episode_seed_words(seeds, episodes, keys):
    """The seeds of episodes ``episodes[g]`` of seeds ``seeds[g]`` (< 2**64; episodes <
    2**32): ``SeedSequence([seed, episode]).generate_state(2, np.uint64)[0] % 2**63``
    (``day.derived_seed``), (G,) uint64; and the words each of those seeds' child ``k``
    of ``keys`` (< 2**32) is seeded with: ``SeedSequence(x, spawn_key=(k,))
    .generate_state(4, np.uint64)``, (K, G, 4) uint64 (``seeding.seed_words``)."""
    g = seeds.shape[0]
    mask32 = np.uint64(0xFFFFFFFF)
    # [seed's words (one, or two from 2**32 on), episode]: a list's assembled entropy
    entropy = np.zeros((g, 4), np.uint32)
    n_entropy = np.empty(g, np.int64)
    for q in range(g):
        x = seeds[q]
        entropy[q, 0] = np.uint32(x & mask32)
        if x > mask32:
            entropy[q, 1] = np.uint32(x >> np.uint64(32))
            entropy[q, 2] = np.uint32(episodes[q])
            n_entropy[q] = 3
        else:
            entropy[q, 1] = np.uint32(episodes[q])
            n_entropy[q] = 2
    first = seed_sequence_states(entropy, n_entropy, 4)
    derived = np.empty(g, np.uint64)
    for q in range(g):
        derived[q] = (np.uint64(first[q, 0]) | (np.uint64(first[q, 1]) << np.uint64(32))) \
            & np.uint64(0x7FFFFFFFFFFFFFFF)
    # [x's words, padded with zeros to the pool's 4, the key]: an int with a spawn key
    k = keys.shape[0]
    child = np.zeros((k * g, 5), np.uint32)
    for a in range(k):
        for q in range(g):
            child[a * g + q, 0] = np.uint32(derived[q] & mask32)
            child[a * g + q, 1] = np.uint32(derived[q] >> np.uint64(32))
            child[a * g + q, 4] = np.uint32(keys[a])
    states = seed_sequence_states(child, np.full(k * g, 5, np.int64), 8)
    words = np.empty((k, g, 4), np.uint64)
    for a in range(k):
        for q in range(g):
            for w in range(4):
                words[a, q, w] = np.uint64(states[a * g + q, 2 * w]) \
                    | (np.uint64(states[a * g + q, 2 * w + 1]) << np.uint64(32))
    return derived, words


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
def community_wealth(alive, wealth, n_per, communities):
    """Each community's living count (at least 1) and mean wealth: (E,) int64, (E,) float64,
    the sum of its living residents' wealth in name order taken as ``segment_sums`` takes
    it (``ndarray.sum`` of that community's alone)."""
    living = np.empty(alive.shape[0])
    bounds = np.zeros(communities + 1, np.int64)
    k = 0
    for i in range(alive.shape[0]):
        if alive[i]:
            living[k] = wealth[i]
            k += 1
            bounds[i // n_per + 1] += 1
    for c in range(communities):
        bounds[c + 1] += bounds[c]
    sums = segment_sums(living, bounds)
    counts = np.maximum(bounds[1:] - bounds[:-1], 1)
    return counts, sums / counts


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


# PCG64's multiplier (numpy's pcg64.h, PCG_DEFAULT_MULTIPLIER_128).
_PCG64_MULT = (2549297995355413924 << 64) + 4865540595714422341


@intrinsic
def _store_word(typingctx, addr, value):
    """Store the 64-bit word ``value`` (a uint64) at address ``addr`` (an int64)."""
    sig = types.void(types.int64, types.uint64)

    def codegen(context, builder, signature, args):
        builder.store(args[1], builder.inttoptr(args[0], ir.IntType(64).as_pointer()))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _pcg64_step(typingctx, s_lo, s_hi, i_lo, i_hi):
    """numpy's ``pcg64_next64`` of a PCG64 held in registers: the 128-bit state ``(s_hi,
    s_lo)`` steps (state * multiplier + increment ``(i_hi, i_lo)``) and the output is the
    XSL-RR of the new state; returns (new s_lo, new s_hi, output)."""
    u64 = types.uint64
    sig = types.UniTuple(u64, 3)(u64, u64, u64, u64)

    def codegen(context, builder, signature, args):
        i64, i128 = ir.IntType(64), ir.IntType(128)

        def joined(lo, hi):
            return builder.or_(builder.shl(builder.zext(hi, i128), ir.Constant(i128, 64)),
                               builder.zext(lo, i128))

        state = builder.add(builder.mul(joined(args[0], args[1]), ir.Constant(i128, _PCG64_MULT)),
                            joined(args[2], args[3]))
        hi = builder.trunc(builder.lshr(state, ir.Constant(i128, 64)), i64)
        lo = builder.trunc(state, i64)
        x = builder.xor(hi, lo)
        rot = builder.lshr(hi, ir.Constant(i64, 58))
        back = builder.and_(builder.sub(ir.Constant(i64, 64), rot), ir.Constant(i64, 63))
        out = builder.or_(builder.lshr(x, rot), builder.shl(x, back))
        return context.make_tuple(builder, signature.return_type, [lo, hi, out])

    return sig, codegen


@njit(cache=True, inline='always')
def _pcg64_load(bitgen):
    """The address of a PCG64's ``pcg_state_setseq_128`` (``pcg64_state``'s first field, behind
    ``bitgen_t.state``: the 128-bit state, then the 128-bit increment, each a native
    ``__uint128_t``) and its four words (state lo, hi, increment lo, hi)."""
    pcg = _load_word(_load_word(bitgen))
    return pcg, (np.uint64(_load_word(pcg)), np.uint64(_load_word(pcg + 8)),
                 np.uint64(_load_word(pcg + 16)), np.uint64(_load_word(pcg + 24)))


@njit(cache=True, inline='always')
def _pcg64_store(pcg, s):
    """Write the state words of ``s`` back to the PCG64 at ``pcg`` (the increment is fixed)."""
    _store_word(pcg, s[0])
    _store_word(pcg + 8, s[1])


@njit(cache=True, inline='always')
def _next_u64(pcg, next_u64, st, s):
    """(the stream after, the next 64 bits): the PCG64 held in ``s`` stepped inline if
    ``pcg``, else the bit generator's own ``next_uint64`` of ``st`` (``s`` unchanged)."""
    if pcg:
        lo, hi, r = _pcg64_step(s[0], s[1], s[2], s[3])
        return (lo, hi, s[2], s[3]), r
    return s, _call_u64(next_u64, st)


@njit(cache=True, inline='always')
def _next_double(pcg, next_double, st, s):
    """(the stream after, the next uniform in [0, 1)): PCG64's ``next_double`` ((next64 >>
    11) / 2**53, exact through int64) inline if ``pcg``, else the bit generator's own."""
    if pcg:
        s, r = _next_u64(pcg, 0, 0, s)
        return s, np.float64(np.int64(r >> np.uint64(11))) * (1.0 / 9007199254740992.0)
    return s, _call_double(next_double, st)


@njit(cache=True, inline='always')
def _normal(pcg, next_u64, next_double, st, s, ki, wi, fi):
    """(the stream after, one ``random_standard_normal``): numpy's ziggurat
    (distributions.c) of the stream (``_next_u64``). The sign is applied by a product with
    +-1.0 (the same bits as numpy's negation, without a branch taken half the time)."""
    while True:
        s, r = _next_u64(pcg, next_u64, st, s)
        idx = np.int64(r & np.uint64(0xFF))
        r = r >> np.uint64(8)
        sign = np.float64(np.int64(r & np.uint64(1)))
        rabs = (r >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
        x = np.float64(np.int64(rabs)) * wi[idx] * (1.0 - 2.0 * sign)
        if rabs < ki[idx]:
            return s, x
        if idx == 0:
            while True:
                s, u = _next_double(pcg, next_double, st, s)
                xx = -ziggurat_nor_inv_r * np.log1p(-u)
                s, u = _next_double(pcg, next_double, st, s)
                yy = -np.log1p(-u)
                if yy + yy > xx * xx:
                    if (rabs >> np.uint64(8)) & np.uint64(1):
                        return s, -(ziggurat_nor_r + xx)
                    return s, ziggurat_nor_r + xx
        else:
            s, u = _next_double(pcg, next_double, st, s)
            if (fi[idx - 1] - fi[idx]) * u + fi[idx] < np.exp(-0.5 * x * x):
                return s, x


_NO_STREAM = (np.uint64(0), np.uint64(0), np.uint64(0), np.uint64(0))


@njit(cache=True)
def _fill(bitgens, inline, out, normal, ki, wi, fi):
    e_n = bitgens.shape[0]
    rows, width = out.shape
    k = width // e_n
    e = 0
    while e < e_n:
        if (not normal and inline[e] and e + 1 < e_n and inline[e + 1]
                and bitgens[e] != bitgens[e + 1]):
            # Uniforms of two PCG64s at once: each step waits on its own last one, so two
            # streams interleaved keep the multiplier busy. (One generator in two columns
            # side by side is drawn column after column, as its own draws would be.)
            pa, sa = _pcg64_load(bitgens[e])
            pb, sb = _pcg64_load(bitgens[e + 1])
            la, lb = e * k, (e + 1) * k
            for p in range(rows):
                for q in range(k):
                    sa, xa = _next_double(True, 0, 0, sa)
                    sb, xb = _next_double(True, 0, 0, sb)
                    out[p, la + q] = xa
                    out[p, lb + q] = xb
            _pcg64_store(pa, sa)
            _pcg64_store(pb, sb)
            e += 2
            continue
        bg = bitgens[e]
        st = _load_word(bg)
        next_u64 = _load_word(bg + 8)
        next_double = _load_word(bg + 24)
        pcg = inline[e]
        at, s = _pcg64_load(bg) if pcg else (0, _NO_STREAM)
        lo = e * k
        for p in range(rows):
            for q in range(lo, lo + k):
                if normal:
                    s, x = _normal(pcg, next_u64, next_double, st, s, ki, wi, fi)
                else:
                    s, x = _next_double(pcg, next_double, st, s)
                out[p, q] = x
        if pcg:
            _pcg64_store(at, s)
        e += 1


def fill_streams(bitgens: np.ndarray, out: np.ndarray, normal: bool,
                 inline: np.ndarray | None = None) -> None:
    """Draw ``out`` (P, E K) float64 from E bit generators (``bitgens`` (E,) int64, the
    addresses of their ``bitgen_t``): generator e fills columns ``[e K, (e + 1) K)``, row
    after row, as ``random((P, K))`` (``normal``: ``standard_normal((P, K))``) fills its
    (P, K) output; the generators advance as those calls would advance them. ``inline``
    (E,) bool: the generators that are PCG64, drawn by the compiled PCG64 step instead of
    a call per number (only where that was checked against numpy: ``batch.StreamBatch``)."""
    if not _HAVE_TABLES:
        raise RuntimeError("numba ships no ziggurat tables here")
    if inline is None:
        inline = np.zeros(len(bitgens), np.bool_)
    _fill(bitgens, inline, out, normal, _KI, _WI, _FI)


# ---- fresh worlds from their seed words -------------------------------------------------------
# A fresh world's world and values streams are used once, for its founders: they are drawn
# here from their seed sequences' words (what PCG64 is seeded with), in registers, with no
# numpy generator made for them; the same numbers in the same order as
# ``state.initial_states`` draws from numpy's generators (tests compare the two).

_U1 = np.uint64(1)


@njit(cache=True, inline='always')
def _pcg64_seeded(w0, w1, w2, w3):
    """numpy's PCG64 seeded with ``generate_state(4, np.uint64)`` of its seed sequence,
    ``w0 .. w3`` (``pcg64_set_seed``: the state seed is ``w0 << 64 | w1``, the stream ``w2 << 64
    | w3``; ``pcg_setseq_128_srandom_r``: inc = stream << 1 | 1, step, add the seed, step), as
    ``_pcg64_step``'s words (state lo, hi, increment lo, hi)."""
    inc_lo = (w3 << _U1) | _U1
    inc_hi = (w2 << _U1) | (w3 >> np.uint64(63))
    lo, hi, _ = _pcg64_step(np.uint64(0), np.uint64(0), inc_lo, inc_hi)
    added = lo + w1
    hi = hi + w0 + (_U1 if added < lo else np.uint64(0))
    lo, hi, _ = _pcg64_step(added, hi, inc_lo, inc_hi)
    return (lo, hi, inc_lo, inc_hi)


@njit(cache=True, inline='always')
def _next_u32(s, has, held):
    """numpy's buffered ``pcg64_next32``: (stream, has a half left, the half left, the next
    32 bits): the low half of a fresh 64-bit draw, its high half kept for the next call."""
    if has:
        return s, False, held, held
    s, r = _next_u64(True, 0, 0, s)
    return s, True, r >> np.uint64(32), r & np.uint64(0xFFFFFFFF)


@njit(cache=True, inline='always')
def _know_smallest_keys(keys, k, known_row, best_key, best_at):
    """Set ``known_row`` at the ``k`` smallest of ``keys`` (equal keys: the earlier first).
    A few of many are kept in order as the keys pass (``best_key``, ``best_at``: room for
    ``k``); else the keys are sorted."""
    m = keys.shape[0]
    if k >= m:
        known_row[:] = True
    elif 0 < k and 4 * k < m:
        held = 0
        for f in range(m):
            x = keys[f]
            if held == k and not x < best_key[held - 1]:
                continue
            t = held if held < k else held - 1
            while t > 0 and best_key[t - 1] > x:
                best_key[t] = best_key[t - 1]
                best_at[t] = best_at[t - 1]
                t -= 1
            best_key[t] = x
            best_at[t] = f
            if held < k:
                held += 1
        for q in range(k):
            known_row[best_at[q]] = True
    elif k > 0:
        picks = np.argsort(keys, kind="mergesort")
        for q in range(k):
            known_row[picks[q]] = True


@njit(cache=True)
def fresh_draws(words, at, n, n0, m, known_at_start, w_lo, w_span, s_lo, s_span, c_lo, c_span,
                holders, code, wealth, skill, known, capacity, condition, value_draw):
    """The founders' draws of G fresh worlds (``state.initial_states``) from their streams'
    seed words ``words`` (G, 2, 4) uint64 (the world stream's, then the values stream's).

    World stream, in order: wealth and skill of the ``n0`` founders (``lo + span u``), each
    founder's ``m`` factory keys (it knows the ``known_at_start`` of smallest key, equal keys
    taken in factory order; keys are 53-bit uniforms, so ties, where numpy's partition could
    pick differently, do not happen in practice), the ``m`` capacities. Values stream: the
    founders' order (``Generator.permutation(n0)``: Fisher-Yates from the top, each index
    ``random_interval`` of 32-bit draws under a bit mask, rejected above the bound); the
    first ``holders`` of it get ``code``; then a ``value_draw`` uniform for each of the N
    names. World g is written over community ``at[g]``'s rows of the pool arrays (``n``
    names, ``m`` factories each): its N rows of ``wealth``, ``skill``, ``condition``, ``value_draw``
    (pool,) and ``known`` (pool, M) (the names past the founders hold 0 and know nothing),
    and its M of ``capacity`` (E M,)."""
    keys = np.empty(m)
    best_key = np.empty(max(known_at_start, 1))  # the smallest keys so far, ascending
    best_at = np.empty(max(known_at_start, 1), np.int64)
    order = np.empty(n0, np.int64)
    for g in range(words.shape[0]):
        lo, flo = at[g] * n, at[g] * m
        for i in range(lo, lo + n):
            wealth[i] = 0.0
            skill[i] = 0.0
            condition[i] = 0
            known[i, :] = False
        s = _pcg64_seeded(words[g, 0, 0], words[g, 0, 1], words[g, 0, 2], words[g, 0, 3])
        for i in range(n0):
            s, u = _next_double(True, 0, 0, s)
            wealth[lo + i] = w_lo + w_span * u
        for i in range(n0):
            s, u = _next_double(True, 0, 0, s)
            skill[lo + i] = s_lo + s_span * u
        for i in range(n0):
            for f in range(m):
                s, keys[f] = _next_double(True, 0, 0, s)
            _know_smallest_keys(keys, known_at_start, known[lo + i], best_key, best_at)
        for f in range(m):
            s, u = _next_double(True, 0, 0, s)
            capacity[flo + f] = c_lo + c_span * u
        v = _pcg64_seeded(words[g, 1, 0], words[g, 1, 1], words[g, 1, 2], words[g, 1, 3])
        has, held = False, np.uint64(0)
        for i in range(n0):
            order[i] = i
        for i in range(n0 - 1, 0, -1):
            bound = np.uint64(i)
            mask = bound
            for shift in (1, 2, 4, 8, 16, 32):
                mask |= mask >> np.uint64(shift)
            while True:
                v, has, held, r = _next_u32(v, has, held)
                j = r & mask
                if j <= bound:
                    break
            t = order[i]
            order[i] = order[np.int64(j)]
            order[np.int64(j)] = t
        for q in range(holders):
            condition[lo + order[q]] = code
        for i in range(n):
            v, value_draw[lo + i] = _next_double(True, 0, 0, v)
