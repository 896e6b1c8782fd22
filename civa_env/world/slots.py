"""Factory slots: which factory each of a resident's ``S`` factory slots addresses.

The features carry one block per factory slot, and the flat and factored actions name a
factory by its slot, so that their sizes stay bounded however many factories a world has
(``Config.factory_slot_count`` = ``min(n_factories, factory_slots)``):

- with ``n_factories <= factory_slots`` (the default world's 5 factories), slot m is factory
  m for everyone, known or not (unknown ones are shown as unknown and masked);
- with more factories (``Config.ranks_factories``), a resident's slots hold the factories it
  knows, largest capacity first (ties: the lower number first), and empty slots hold -1.

The table is part of the state (``WorldState.factory_slots``), set at reset and after each
day's rules (explore, alliances, births and upgrades change what is known and the order),
so the observation a resident decides on and the decoding of its action read the same
table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from civa_env.world.config import Config
    from civa_env.world.state import DayStart, WorldState

# Rows ranked at a time (bounds the (rows, M) work arrays of a large batch).
CHUNK = 65_536


def ranked(known: np.ndarray, capacity: np.ndarray, communities: int, n_slots: int,
           rows: np.ndarray | None = None) -> np.ndarray:
    """Each resident's known factories, largest capacity first, in ``n_slots`` slots:
    (K, S) int32 of community-local factory numbers, -1 for an empty slot.

    Args:
        known: (N, M) bool, each community's own factory numbers (M per community).
        capacity: (E M,) float64 capacities, community after community.
        communities: E.
        n_slots: S.
        rows: the pool rows to rank (all by default).
    """
    n_pool, m = known.shape
    n_per = n_pool // communities
    if rows is None:
        rows = np.arange(n_pool)
    # Each factory's rank within its community: 0 for the largest (ties: lower number).
    order = np.argsort(-capacity.reshape(communities, m), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(m)[None, :], axis=1)
    rank = rank.astype(np.int32)
    out = np.full((len(rows), n_slots), -1, np.int32)
    s = min(n_slots, m)
    for lo in range(0, len(rows), CHUNK):
        r = rows[lo:lo + CHUNK]
        ranks = rank[0][None, :] if communities == 1 else rank[r // n_per]
        key = np.where(known[r], ranks, m)  # (K, M): unknown factories rank last
        if s < m:  # (in place: key is this chunk's own array)
            key.partition(s - 1, axis=1)
        top = key[:, :s]
        top.sort(axis=1)
        comm = np.zeros(len(r), np.int64) if communities == 1 else r // n_per
        fac = order[comm[:, None], np.minimum(top, m - 1)]
        out[lo:lo + len(r), :s] = np.where(top < m, fac, -1)
    return out


def factories_of(state: WorldState, rows: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """The factory (community-local number) in factory slot ``slot`` (K,) of each of
    residents ``rows`` (K,): (K,) int64, -1 where ``slot`` is -1 (no factory) or the slot is
    empty."""
    slot = np.asarray(slot, np.int64)
    has = slot >= 0
    out = np.full(len(rows), -1, np.int64)
    out[has] = state.factory_slots[np.asarray(rows)[has], slot[has]]
    return out


def listed(state: WorldState, i: int) -> list[int]:
    """The known factories in resident ``i``'s slots, in slot order: the factories its
    briefing lists and its legal facts name (all it knows, by number, while slot m is
    factory m; else its ``S`` largest)."""
    table = state.factory_slots[i]
    return [f for f in table[table >= 0].tolist() if state.known[i, f]]


def refresh(state: WorldState, cfg: Config, before: WorldState | DayStart | None = None
            ) -> None:
    """Recompute ``state.factory_slots`` of the living residents after a day's rules (a
    no-op where slot m is factory m). Given the state ``before`` the day, only the rows
    whose order can have changed: those whose known factories changed (explore, alliances,
    births) and those who know a factory whose capacity changed (upgrades)."""
    if not cfg.ranks_factories:
        return
    rows = state.alive.nonzero()[0]
    if before is not None:
        # The living rows whose known factories changed, or who know a factory of their
        # community whose capacity changed, CHUNK rows at a time.
        e, m, n = state.communities, state.m_per, state.n_per
        grown = (state.capacity != before.capacity).reshape(e, m)  # (E, M)
        any_grown = bool(grown.any())
        changed = np.zeros(len(rows), bool)
        for lo in range(0, len(rows), CHUNK):
            r = rows[lo:lo + CHUNK]
            known = state.known[r]
            hit = (known != before.known[r]).any(axis=1)
            if any_grown:
                hit |= (known & (grown[0] if e == 1 else grown[r // n])).any(axis=1)
            changed[lo:lo + len(r)] = hit
        rows = rows[changed]
    if len(rows):
        state.factory_slots[rows] = ranked(state.known, state.capacity, state.communities,
                                           cfg.factory_slot_count, rows)
