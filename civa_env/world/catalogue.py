"""The flat action catalogue: primary x secondary choices over factory and view slots.

``Catalogue`` numbers every choice a resident can make without messages, decodes ids in a
vectorised way, and builds the action mask from the world. Its size depends on the factory
slots (``Config.factory_slot_count``, ``civa_env.world.slots``), ``view_size`` and
``gift_levels`` only, never on the community's size.
"""

from __future__ import annotations

import numpy as np

from civa_env.world.arrays import in_sorted
from civa_env.world.config import Config
from civa_env.world.kinds import Primary, Secondary
from civa_env.world.state import WorldState


class Catalogue:
    """The flat action ids: ``primary_choice * n_secondary + secondary_choice``.

    Primary choices: work at factory slot m (M), explore, upgrade self, upgrade factory slot
    m (M), idle; M = ``factory_slots`` (slot m is factory m while ``n_factories <=
    cfg.factory_slots``). Secondary choices: none, gift to view slot v at level l (V x L),
    attack slot v (V), merge with slot v (V). The size depends on the factory slots,
    ``view_size`` and ``gift_levels`` only, never on the community's size.
    """

    def __init__(self, cfg: Config) -> None:
        m, v, levels = cfg.factory_slot_count, cfg.view_size, len(cfg.gift_levels)
        self.factory_slots, self.view_size, self.n_levels = m, v, levels
        self.gift_levels = np.asarray(cfg.gift_levels)
        self.n_primary = 2 * m + 3
        self.n_secondary = 1 + v * (levels + 2)
        self.size = self.n_primary * self.n_secondary
        # Lookup tables: primary choice -> (kind, factory slot); secondary choice -> (kind,
        # slot, level).
        self.p_kind = np.array([Primary.WORK] * m + [Primary.EXPLORE, Primary.UPGRADE_SELF]
                               + [Primary.UPGRADE_FACTORY] * m + [Primary.IDLE], np.int8)
        self.p_factory = np.array(list(range(m)) + [-1, -1] + list(range(m)) + [-1], np.int16)
        gift_slots = np.repeat(np.arange(v), levels)
        self.s_kind = np.concatenate([[Secondary.NONE], np.full(v * levels, Secondary.GIFT),
                                      np.full(v, Secondary.ATTACK),
                                      np.full(v, Secondary.MERGE)]).astype(np.int8)
        self.s_slot = np.concatenate([[-1], gift_slots, np.arange(v), np.arange(v)])
        self.s_slot = self.s_slot.astype(np.int32)
        self.s_level = np.concatenate([[-1], np.tile(np.arange(levels), v),
                                       np.full(2 * v, -1)]).astype(np.int32)

    def encode(self, primary: int | np.ndarray, factory: int | np.ndarray = -1,
               secondary: int | np.ndarray = Secondary.NONE, slot: int | np.ndarray = -1,
               level: int | np.ndarray = 0) -> int | np.ndarray:
        """Flat id of a choice (``factory`` is a factory slot, ``slot`` a view slot; ``level``
        indexes ``gift_levels``).

        Vectorised: arrays (K,) (broadcast together) give (K,) int64 ids; all scalars give an
        int. ``factory`` is read for work and factory upgrades only, ``slot`` for secondary
        choices other than none, ``level`` for gifts only, so ``encode(**decode(ids))``
        gives ``ids`` back. A bad kind, factory, slot or level raises ValueError naming it.
        """
        m, v, levels = self.factory_slots, self.view_size, self.n_levels
        choice = (primary, factory, secondary, slot, level)
        if all(isinstance(x, int) for x in choice):  # Python ints and enums: no numpy
            return self._encode_one(*choice)
        p_kind, factory, s_kind, slot, level = np.broadcast_arrays(
            *(np.asarray(x, np.int64) for x in choice))
        for kinds, enum in ((p_kind, Primary), (s_kind, Secondary)):
            bad = (kinds < 0) | (kinds >= len(enum))
            if np.count_nonzero(bad):
                enum(int(kinds[bad].flat[0]))  # raises "... is not a valid Primary"
        # Per kind: the first primary choice, and whether the factory adds to it (work at m,
        # explore, upgrade self, upgrade factory m, idle).
        p_first = np.zeros(len(Primary), np.int64)
        p_first[[Primary.EXPLORE, Primary.UPGRADE_SELF, Primary.UPGRADE_FACTORY, Primary.IDLE]] = (
            m, m + 1, m + 2, 2 * m + 2)
        needs_factory = (p_kind == Primary.WORK) | (p_kind == Primary.UPGRADE_FACTORY)
        bad = needs_factory & ((factory < 0) | (factory >= m))
        if np.count_nonzero(bad):
            raise ValueError(f"factory slot {int(factory[bad].flat[0])} out of range [0, {m})")
        # Per kind: the first secondary choice and the stride of a view slot (none, gift to
        # slot v at level l, attack slot v, merge with slot v).
        s_first = np.zeros(len(Secondary), np.int64)
        s_stride = np.zeros(len(Secondary), np.int64)
        s_first[[Secondary.GIFT, Secondary.ATTACK, Secondary.MERGE]] = (
            1, 1 + v * levels, 1 + v * levels + v)
        s_stride[[Secondary.GIFT, Secondary.ATTACK, Secondary.MERGE]] = (levels, 1, 1)
        targeted = s_kind != Secondary.NONE
        bad = targeted & ((slot < 0) | (slot >= v))
        if np.count_nonzero(bad):
            raise ValueError(f"view slot {int(slot[bad].flat[0])} out of range [0, {v})")
        gift = s_kind == Secondary.GIFT
        bad = gift & ((level < 0) | (level >= levels))
        if np.count_nonzero(bad):
            raise ValueError(f"gift level {int(level[bad].flat[0])} out of range [0, {levels})")
        p = p_first[p_kind] + np.where(needs_factory, factory, 0)
        s = s_first[s_kind] + np.where(targeted, slot, 0) * s_stride[s_kind] + np.where(
            gift, level, 0)
        ids = p * self.n_secondary + s
        return int(ids) if ids.ndim == 0 else ids

    def _encode_one(self, primary: int, factory: int, secondary: int, slot: int,
                    level: int) -> int:
        """``encode`` of one choice (plain Python: the scalar calls stay cheap)."""
        m, v, levels = self.factory_slots, self.view_size, self.n_levels
        p = {Primary.WORK: factory, Primary.EXPLORE: m, Primary.UPGRADE_SELF: m + 1,
             Primary.UPGRADE_FACTORY: m + 2 + factory, Primary.IDLE: 2 * m + 2}[Primary(primary)]
        secondary = Secondary(secondary)
        if secondary == Secondary.NONE:
            s = 0
        elif secondary == Secondary.GIFT:
            s = 1 + slot * levels + level
        elif secondary == Secondary.ATTACK:
            s = 1 + v * levels + slot
        else:
            s = 1 + v * levels + v + slot
        if primary in (Primary.WORK, Primary.UPGRADE_FACTORY) and not 0 <= factory < m:
            raise ValueError(f"factory slot {factory} out of range [0, {m})")
        if secondary != Secondary.NONE and not 0 <= slot < v:
            raise ValueError(f"view slot {slot} out of range [0, {v})")
        if secondary == Secondary.GIFT and not 0 <= level < levels:
            raise ValueError(f"gift level {level} out of range [0, {levels})")
        return p * self.n_secondary + s

    def decode(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Vectorised inverse: ids (K,) -> primary, factory (slot), secondary, slot, level
        (K,) each."""
        p, s = np.divmod(np.asarray(ids, dtype=np.int64), self.n_secondary)
        return {"primary": self.p_kind[p], "factory": self.p_factory[p],
                "secondary": self.s_kind[s], "slot": self.s_slot[s], "level": self.s_level[s]}

    def describe(self, action_id: int) -> str:
        """Human-readable meaning of a flat id (for logs and docs)."""
        d = {k: int(v[0]) for k, v in self.decode(np.array([action_id])).items()}
        out = Primary(d["primary"]).name.lower()
        if d["factory"] >= 0:
            out += f" factory slot {d['factory']}"
        if d["secondary"]:
            out += f" + {Secondary(d['secondary']).name.lower()} slot {d['slot']}"
            if d["level"] >= 0:
                out += f" ({self.gift_levels[d['level']]:.0%} of wealth)"
        return out

    def mask(self, state: WorldState, view: np.ndarray, rows: np.ndarray,
             cfg: Config) -> np.ndarray:
        """Valid flat ids for residents ``rows``: (K, size) int8.

        Args:
            state: the world.
            view: (N, V) int32 resident index per view slot, -1 empty.
            rows: (K,) resident indices.
            cfg: the config.
        """
        wealth = state.wealth[rows]
        known = known_slots(state, rows)  # (K, M)
        can_pay = (wealth >= cfg.upgrade_cost)[:, None]
        ones = np.ones((len(rows), 1), bool)
        pmask = np.concatenate([known, ones, can_pay, known & can_pay, ones], axis=1)
        seen = view[rows]  # (K, V)
        present = seen >= 0
        mergeable = present
        if len(state.allies):  # (without alliances, everyone present may be asked)
            allied = is_allied(state, np.repeat(rows, self.view_size), seen.ravel())
            mergeable = present & ~allied.reshape(present.shape)
        has_wealth = (wealth > 0)[:, None]
        smask = np.concatenate([ones, np.repeat(present & has_wealth, self.n_levels, axis=1),
                                present, mergeable], axis=1)
        return (pmask[:, :, None] & smask[:, None, :]).reshape(len(rows), self.size).view(np.int8)


def known_slots(state: WorldState, rows: np.ndarray) -> np.ndarray:
    """Whether each factory slot of residents ``rows`` holds a factory they know: (K, M)
    bool (``slots``)."""
    table = state.factory_slots[rows]
    has = table >= 0
    return has & state.known[np.asarray(rows)[:, None], np.maximum(table, 0)]


def ally_keys(state: WorldState) -> np.ndarray:
    """The alliances as sorted int64 keys ``i * N + j`` (i < j; N the pool's names)."""
    return np.sort(state.allies[:, 0].astype(np.int64) * state.n_pool + state.allies[:, 1])


def is_allied(state: WorldState, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Whether each pair (i[k], j[k]) is an alliance: (K,) bool."""
    if state.allies.shape[0] == 0 or len(i) == 0:
        return np.zeros(len(i), bool)
    n = state.n_pool
    keys = ally_keys(state)
    lo, hi = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    return in_sorted(keys, lo * n + hi) & (i >= 0) & (j >= 0)
