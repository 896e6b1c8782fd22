"""World state: a struct of numpy arrays, resident ``i`` (pool of N names) or factory ``m``
(M) on the leading axis. Data only; the rules live in ``rules.py``.

Relations are kept as edge lists, not N x N matrices, so that memory and work per day grow
with the number of residents, not its square: ``allies`` holds the alliance pairs and
``recent_*`` the dealings (gifts, attacks, merge proposals, messages) of the last few days,
one row each (``recent_friendly`` marks the friendly direct messages).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from civa_env.world import slots
from civa_env.world.config import Config
from civa_env.world.values import assign_conditions, holders_of


@dataclass(frozen=True)
class Message:
    """A message in transit or in an inbox. ``recipient`` -1 means everyone."""

    day: int
    sender: int
    recipient: int
    text: str


@dataclass
class WorldState:
    """Everything that changes during an episode."""

    # Days completed and names of the pool used so far (newcomers take index n_used): ints
    # for one community, (E,) int64 arrays in a batch of E (``communities``).
    day: int | np.ndarray
    n_used: int | np.ndarray
    alive: np.ndarray  # (N,) bool
    wealth: np.ndarray  # (N,) float64
    skill: np.ndarray  # (N,) float64
    condition: np.ndarray  # (N,) int8 value-condition code (values.ValueCondition.code)
    known: np.ndarray  # (N, M) bool factories the resident knows
    # The factory in each of the resident's factory slots (``slots``): (N, S) int32, -1 empty.
    factory_slots: np.ndarray
    parent: np.ndarray  # (N,) int32, -1 for founders
    born_day: np.ndarray  # (N,) int32
    died_day: np.ndarray  # (N,) int32, -1 while alive or unused
    capacity: np.ndarray  # (M,) float64
    # Yesterday's factory report (what residents can observe).
    workers: np.ndarray  # (M,) int32
    output: np.ndarray  # (M,) float64
    outage: np.ndarray  # (M,) bool
    # Yesterday's personal report.
    income: np.ndarray  # (N,) float64 production + finds
    received: np.ndarray  # (N,) float64 gifts received
    given: np.ndarray  # (N,) float64 gifts given
    looted: np.ndarray  # (N,) float64 taken in attacks
    lost: np.ndarray  # (N,) float64 lost to attacks and fights
    attacked_by: np.ndarray  # (N,) int16 attacks received
    ever_gave: np.ndarray  # (N,) bool gave a gift at some time in the episode
    # The value stream's draw for each name, in [0, 1): a newcomer drawn again at the
    # prevalence (inherit_values=False) holds the condition when its draw < prevalence.
    value_draw: np.ndarray  # (N,) float64
    # Relations.
    allies: np.ndarray  # (A, 2) int32 pairs i < j, one per alliance
    recent_day: np.ndarray  # (R,) int32
    recent_src: np.ndarray  # (R,) int32
    recent_dst: np.ndarray  # (R,) int32 (-1: message to everyone)
    recent_kind: np.ndarray  # (R,) int8 Deal
    # A friendly direct message (behaviours.friendly_texts, the detectors' classifier);
    # False for the other dealings and for messages to everyone (not classified).
    recent_friendly: np.ndarray  # (R,) bool
    outbox: list[Message] = field(default_factory=list)  # sent today, delivered tomorrow
    inbox: list[Message] = field(default_factory=list)  # delivered today
    # E communities in one set of arrays (``civa_env.world.batch``): community c owns pool
    # rows [c N, (c + 1) N) and factory rows [c M, (c + 1) M); ``known`` keeps each
    # community's own factory numbers. 1 for a lone community (a batch of one).
    communities: int = 1

    @property
    def n_pool(self) -> int:
        """N, the size of the name pool."""
        return self.alive.shape[0]

    def copy(self) -> WorldState:
        """Copy of every array and message list (messages themselves are never mutated)."""
        out = copy.copy(self)
        for name in _ARRAY_FIELDS:
            setattr(out, name, getattr(self, name).copy())
        out.outbox, out.inbox = list(self.outbox), list(self.inbox)
        if self.communities > 1:
            out.day, out.n_used = self.day.copy(), self.n_used.copy()
        return out

    @property
    def n_per(self) -> int:
        """Names per community (N of one community; ``n_pool`` for a lone one)."""
        return self.alive.shape[0] // self.communities

    @property
    def m_per(self) -> int:
        """Factories per community."""
        return self.capacity.shape[0] // self.communities

    def per_row(self, value: int | float | np.ndarray, rows: np.ndarray) -> np.ndarray | int:
        """A per-community ``value`` (a scalar for a lone community, (E,) in a batch) for
        each of pool rows ``rows`` (the scalar itself for a lone community)."""
        if self.communities == 1:
            return value
        return np.asarray(value)[np.asarray(rows, np.int64) // self.n_per]

    def ally_matrix(self) -> np.ndarray:
        """Dense (N, N) bool alliance matrix (for tests and small worlds)."""
        n = self.n_pool
        out = np.zeros((n, n), dtype=bool)
        out[self.allies[:, 0], self.allies[:, 1]] = True
        out[self.allies[:, 1], self.allies[:, 0]] = True
        return out


@dataclass(frozen=True)
class DayStart:
    """What is read of the state a day started from once the day is played over it, in
    place (``rules.step_day(start=...)``): copies of its wealth (rewards, events), living
    (census), known factories and capacities (factory slots)."""

    wealth: np.ndarray
    alive: np.ndarray
    known: np.ndarray
    capacity: np.ndarray

    @classmethod
    def of(cls, state: WorldState) -> DayStart:
        """Copies of ``state``'s fields that are read after the day."""
        return cls(state.wealth.copy(), state.alive.copy(), state.known.copy(),
                   state.capacity.copy())


# Fields copied by ``WorldState.copy`` (listed once: looking them up each day is slow).
_ARRAY_FIELDS = tuple(f.name for f in dataclasses.fields(WorldState)
                      if f.type in ("np.ndarray", np.ndarray))


_KEY_CELLS = 1 << 22  # uniform keys drawn at a time by initial_state (32 MiB)


def initial_state(cfg: Config, world_rng: np.random.Generator,
                  values_rng: np.random.Generator) -> WorldState:
    """Draw a fresh world for ``cfg``.

    ``world_rng`` draws what the world is (wealth, skill, known factories, capacities) and
    ``values_rng`` who holds the value condition; the two streams are separate so that every
    condition and prevalence of a seed gets the same world (paired worlds).
    """
    return initial_states(cfg, [world_rng], [values_rng])


def initial_states(cfg: Config, world_rngs: Sequence[np.random.Generator],
                   values_rngs: Sequence[np.random.Generator]) -> WorldState:
    """G fresh worlds of ``cfg`` in one batch state (``communities`` G; a lone state for
    G = 1), world g drawn from ``world_rngs[g]`` and ``values_rngs[g]``: each generator
    draws the same numbers in the same order as ``initial_state`` alone (a test checks
    it), and every draw of the world streams comes before every draw of the value streams
    (so one generator may serve as both, as alone). The arrays are made once for all G."""
    g = len(world_rngs)
    m, n0 = cfg.n_factories, cfg.n_agents
    alive, wealth, skill, known, capacity, condition, value_draw = _founder_arrays(cfg, g)
    # Each world's stream draws, in order: wealth (n0), skill (n0), the founders' factory
    # keys (n0 x m) and the capacities (m), every one a uniform double (``uniform(a, b)`` is
    # ``a + (b - a) u``). Small worlds draw them for all G at once (``StreamBatch``: each
    # world's numbers from its own stream, as alone).
    per_world = 2 * n0 + n0 * m + m
    if g > 1 and g * per_world <= _KEY_CELLS:
        from civa_env.world.batch import StreamBatch  # (batch builds on this module)

        u = StreamBatch(world_rngs).random(g * per_world).reshape(g, per_world)
        (w_lo, w_hi), (s_lo, s_hi) = cfg.start_wealth, cfg.start_skill
        wealth[:, :n0] = w_lo + (w_hi - w_lo) * u[:, :n0]
        skill[:, :n0] = s_lo + (s_hi - s_lo) * u[:, n0:2 * n0]
        _know_smallest(known, np.arange(g * n0), u[:, 2 * n0:2 * n0 + n0 * m].reshape(
            g * n0, m), cfg)
        c_lo, c_hi = cfg.capacity_range
        capacity[:] = c_lo + (c_hi - c_lo) * u[:, per_world - m:]
    else:
        _draw_worlds(cfg, world_rngs, wealth, skill, known, capacity)
    value_condition = cfg.value_condition
    for rng, cond, draw in zip(values_rngs, condition, value_draw, strict=True):
        cond[:n0] = assign_conditions(value_condition, cfg.prevalence, n0, rng)
        rng.random(out=draw)
    return _fresh_state(cfg, alive, wealth, skill, known, capacity, condition, value_draw)


def seeded_states(cfg: Config, words: np.ndarray) -> WorldState:
    """``initial_states`` of G fresh worlds whose world and values streams are numpy's
    PCG64 generators seeded with ``words`` (G, 2, 4) uint64 (each stream's
    ``SeedSequence.generate_state(4, np.uint64)``): the same state, drawn in one compiled
    pass from the words (``kernels.fresh_draws``), with no generator made."""
    g = len(words)
    alive, wealth, skill, known, capacity, condition, value_draw = _founder_arrays(cfg, g)
    _seeded_draws(cfg, words, np.arange(g), wealth.reshape(-1), skill.reshape(-1), known,
                  capacity.reshape(-1), condition.reshape(-1), value_draw.reshape(-1))
    return _fresh_state(cfg, alive, wealth, skill, known, capacity, condition, value_draw)


def _seeded_draws(cfg: Config, words: np.ndarray, at: np.ndarray, wealth: np.ndarray,
                  skill: np.ndarray, known: np.ndarray, capacity: np.ndarray,
                  condition: np.ndarray, value_draw: np.ndarray) -> None:
    """The founders' draws of the fresh worlds of ``words`` (G, 2, 4) over communities
    ``at`` (G,) of the pool arrays given (``kernels.fresh_draws``)."""
    from civa_env.world.kernels import fresh_draws  # (numba loads on first use)

    vc = cfg.value_condition
    holders = holders_of(vc, cfg.prevalence, cfg.n_agents)
    (w_lo, w_hi), (s_lo, s_hi), (c_lo, c_hi) = (cfg.start_wealth, cfg.start_skill,
                                                 cfg.capacity_range)
    # (lo + (hi - lo) u, as initial_states and Generator.uniform compute it)
    fresh_draws(np.ascontiguousarray(words, np.uint64), np.asarray(at, np.int64),
                cfg.max_agents, cfg.n_agents, cfg.n_factories, cfg.known_at_start,
                float(w_lo), float(w_hi - w_lo), float(s_lo), float(s_hi - s_lo),
                float(c_lo), float(c_hi - c_lo), holders, np.int8(vc.code if holders else 0),
                wealth, skill, known, capacity, condition, value_draw)


def write_fresh(state: WorldState, cfg: Config, comms: np.ndarray, words: np.ndarray,
                rows: slice | np.ndarray, frows: slice | np.ndarray) -> None:
    """Write the fresh worlds of ``words`` (G, 2, 4) uint64 (``seeded_states``) over
    communities ``comms`` (G,) of the batch ``state``, in place: their names (pool rows
    ``rows``, community after community in ``comms`` order), factories (``frows``), days
    and names used become what ``seeded_states`` gives each (its relations, which are
    edge lists of the whole batch, are the caller's to drop)."""
    n0 = cfg.n_agents
    _seeded_draws(cfg, words, comms, state.wealth, state.skill, state.known, state.capacity,
                  state.condition, state.value_draw)
    for name, (value, _) in FRESH_NAMES.items():
        getattr(state, name)[rows] = value
    for name, (value, _) in FRESH_FACTORIES.items():
        getattr(state, name)[frows] = value
    n = state.n_per
    state.alive[rows] = np.tile(np.arange(n) < n0, len(comms))
    _founder_slots(cfg, state.factory_slots, rows,
                   (np.asarray(comms, np.int64)[:, None] * n + np.arange(n0)).ravel(),
                   state.known, state.capacity, state.communities)
    state.day[comms] = 0
    state.n_used[comms] = n0


def _founder_slots(cfg: Config, table: np.ndarray, rows: slice | np.ndarray,
                   founders: np.ndarray, known: np.ndarray, capacity: np.ndarray,
                   communities: int) -> None:
    """Write the factory slots of fresh worlds' names ``rows`` of ``table`` (founders
    ``founders``, by the ``known`` factories and ``capacity`` of the ``communities``):
    slot m is factory m, or where the slots rank the known factories, the founders' ranked
    and the names not yet used none."""
    if cfg.ranks_factories:
        table[rows] = -1
        table[founders] = slots.ranked(known, capacity, communities, cfg.factory_slot_count,
                                       founders)
    else:
        table[rows] = np.arange(cfg.factory_slot_count, dtype=np.int32)


def _founder_arrays(cfg: Config, g: int) -> tuple[np.ndarray, ...]:
    """The arrays a fresh world's founders are drawn into, for G worlds: alive (the
    founders), wealth, skill (G, N), known (G N, M), capacity (G, M), condition and
    value_draw (G, N)."""
    n, m = cfg.max_agents, cfg.n_factories
    alive = np.zeros((g, n), dtype=bool)
    alive[:, :cfg.n_agents] = True
    return (alive, np.zeros((g, n)), np.zeros((g, n)), np.zeros((g * n, m), dtype=bool),
            np.empty((g, m)), np.zeros((g, n), dtype=np.int8), np.empty((g, n)))


# What a fresh world's names and factories hold where nothing is drawn for them: (value,
# dtype) by field (the drawn ones, ``alive`` and ``factory_slots`` are set apart). One
# table for a reset (``_fresh_state``) and a batch's restart in place (``write_fresh``).
FRESH_NAMES = {
    "parent": (-1, np.int32), "born_day": (0, np.int32), "died_day": (-1, np.int32),
    "income": (0.0, np.float64), "received": (0.0, np.float64), "given": (0.0, np.float64),
    "looted": (0.0, np.float64), "lost": (0.0, np.float64), "attacked_by": (0, np.int16),
    "ever_gave": (False, np.bool_)}
FRESH_FACTORIES = {"workers": (0, np.int32), "output": (0.0, np.float64),
                   "outage": (False, np.bool_)}


def _fresh_state(cfg: Config, alive: np.ndarray, wealth: np.ndarray, skill: np.ndarray,
                 known: np.ndarray, capacity: np.ndarray, condition: np.ndarray,
                 value_draw: np.ndarray) -> WorldState:
    """The state of G fresh worlds from their founders' draws ((G, N) rows, ``known``
    (G N, M), ``capacity`` (G, M)); everything else starts empty."""
    g, n = alive.shape
    n0, m = cfg.n_agents, cfg.n_factories
    capacity = capacity.reshape(-1)
    pool = g * n
    empty = np.empty(0, dtype=np.int32)
    table = np.empty((pool, cfg.factory_slot_count), np.int32)
    _founder_slots(cfg, table, slice(None), alive.reshape(-1).nonzero()[0], known, capacity, g)
    if g == 1:
        day: int | np.ndarray = 0
        n_used: int | np.ndarray = n0
    else:
        day, n_used = np.zeros(g, np.int64), np.full(g, n0, np.int64)
    fresh = {name: np.full(pool, value, dtype) for name, (value, dtype) in FRESH_NAMES.items()}
    fresh.update({name: np.full(g * m, value, dtype)
                  for name, (value, dtype) in FRESH_FACTORIES.items()})
    return WorldState(
        day=day, n_used=n_used, alive=alive.reshape(-1), wealth=wealth.reshape(-1),
        skill=skill.reshape(-1), condition=condition.reshape(-1),
        known=known, factory_slots=table, capacity=capacity, value_draw=value_draw.reshape(-1),
        allies=np.empty((0, 2), np.int32), recent_day=empty.copy(), recent_src=empty.copy(),
        recent_dst=empty.copy(), recent_kind=np.empty(0, np.int8),
        recent_friendly=np.empty(0, bool), communities=g, **fresh)


def _draw_worlds(cfg: Config, world_rngs: Sequence[np.random.Generator], wealth: np.ndarray,
                 skill: np.ndarray, known: np.ndarray, capacity: np.ndarray) -> None:
    """``initial_states``' world draws, world by world (for large worlds: the keys a block
    of rows at a time)."""
    g = len(world_rngs)
    m, n0 = cfg.n_factories, cfg.n_agents
    for rng, w, s in zip(world_rngs, wealth, skill, strict=True):
        w[:n0] = rng.uniform(*cfg.start_wealth, size=n0)
        s[:n0] = rng.uniform(*cfg.start_skill, size=n0)
    # Each founder knows known_at_start distinct random factories: the smallest of a row of
    # m uniform keys (drawn a block of rows at a time: the same numbers as one (n0, m)
    # draw, without its n0 x m temporaries at once in a large world). The founders of the
    # G worlds are taken end to end, each block's rows drawn from their own world's stream.
    step = max(1, _KEY_CELLS // max(m, 1))
    total = g * n0
    for lo in range(0, total, step):
        hi = min(lo + step, total)
        keys = np.empty((hi - lo, m))
        r = lo
        while r < hi:
            c = r // n0
            e = min(hi, (c + 1) * n0)
            world_rngs[c].random(out=keys[r - lo:e - lo])
            r = e
        _know_smallest(known, np.arange(lo, hi), keys, cfg)
    for rng, cap in zip(world_rngs, capacity, strict=True):
        cap[:] = rng.uniform(*cfg.capacity_range, size=m)


def _know_smallest(known: np.ndarray, founders: np.ndarray, keys: np.ndarray,
                   cfg: Config) -> None:
    """Founders ``founders`` (numbered end to end across the worlds, ``n_agents`` each) know
    the ``known_at_start`` factories of smallest key in their rows of ``keys``."""
    k, m, n0, n = cfg.known_at_start, cfg.n_factories, cfg.n_agents, cfg.max_agents
    picks = np.argpartition(keys, k - 1, axis=1)[:, :k] if 0 < k < m else \
        np.argsort(keys, axis=1)[:, :k]
    known[(founders // n0 * n + founders % n0)[:, None], picks] = True
