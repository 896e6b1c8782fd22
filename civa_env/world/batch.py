"""Many communities in one set of arrays, stepped by one call.

    batch = Communities.reset(cfg, seeds=[7, 8, 9])
    day = batch.step_factored(acts)   # acts (E N, C): one factored row per pool row

The E communities share one ``WorldState`` (``state.communities == E``): community c owns
pool rows ``[c N, (c + 1) N)`` and factory rows ``[c M, (c + 1) M)``; days and names used are
(E,) arrays; alliances, dealings and messages are pool rows of one community. The rules
(``rules.step_day``), the view, the features and the masks are the same functions a lone
``World`` plays (a lone world is a batch of one), so there is one implementation of the
rules.

A community's run does not depend on its neighbours in the batch:

- each keeps its own random streams: a daily draw of "one number per name" is the
  concatenation, in community order, of each community's draw of its N names
  (``StreamBatch``), which is exactly what the community draws alone;
- every ordering of residents (attack order, the view's permutation, births when names run
  out) orders each community's residents as it would alone;
- per-community figures (living counts, mean wealth, days, stress factors) are taken per
  community.

``community(state, e)`` is community e's state in its own numbering, and ``split_events``
a day's events per community; with ``keep_logs`` each community keeps the event log,
census and behaviour counts a lone ``World`` keeps (``world(e)``), by the same functions.
Without it a day costs no per-community Python but one small draw per community and
purpose. Tests check that a community stepped alone, in a batch and through the ParallelEnv
gives the same event log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from civa_env.world import behaviours, seeding
from civa_env.world import day as world_fn
from civa_env.world.actions import EVERYONE
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.events import EventLog, agent_name
from civa_env.world.perception import compute_view, founders_view
from civa_env.world.rules import step_day
from civa_env.world.state import _ARRAY_FIELDS, DayStart, Message, WorldState, write_fresh

# Pool-row fields of one entry per name (the rest of _ARRAY_FIELDS are factory rows or
# edge lists).
_FACTORY_FIELDS = ("capacity", "workers", "output", "outage")
_EDGE_FIELDS = ("allies", "recent_day", "recent_src", "recent_dst", "recent_kind",
                "recent_friendly")
_NAME_FIELDS = tuple(f for f in _ARRAY_FIELDS if f not in _FACTORY_FIELDS + _EDGE_FIELDS)
_FRESH_ROWS = 65_536  # names of fresh communities written at a time (``_write_fresh``)


_CAPSULE_POINTER: Any = None  # ctypes' PyCapsule_GetPointer, once set up
_FILLS_OK: bool | None = None  # whether kernels.fill_streams draws what numpy draws
_FILLS_INLINE = False  # ... with PCG64 stepped inline (else through its C functions)


def _bitgen_address(gen: np.random.Generator) -> int:
    """The address of ``gen``'s ``bitgen_t`` (numpy's C interface to its bit generator)."""
    global _CAPSULE_POINTER
    if _CAPSULE_POINTER is None:
        import ctypes

        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        _CAPSULE_POINTER = get
    return _CAPSULE_POINTER(gen.bit_generator.capsule, b"BitGenerator")


def _fills_match_numpy() -> bool:
    """Whether the compiled fills draw, bit for bit, what ``Generator.random`` and
    ``Generator.standard_normal`` draw and leave the generators where they leave them
    (checked once per process, on enough normals to reach the ziggurat's tails): first with
    PCG64 stepped inline (``_FILLS_INLINE``; only where numpy's PCG64 state has the layout
    the step reads, checked first), else through the bit generators' functions. (Both are
    one compiled function: where it does not compile, every draw is numpy's own,
    generator by generator.)"""
    global _FILLS_OK, _FILLS_INLINE
    if _FILLS_OK is None:
        _FILLS_OK = False
        for inline in (True, False):
            try:
                if _fills_agree(inline):
                    _FILLS_OK, _FILLS_INLINE = True, inline
                    break
            except Exception:  # noqa: BLE001 (no compiler, an unusual numpy: draw one by one)
                pass
    return _FILLS_OK


def _fills_agree(inline: bool) -> bool:
    """Whether ``kernels.fill_streams`` (PCG64 stepped ``inline`` or not) draws what numpy
    draws, on fresh generators."""
    from civa_env.world.kernels import fill_streams

    seeds = [1, 2, 3]
    ours = [np.random.default_rng(s) for s in seeds]
    theirs = [np.random.default_rng(s) for s in seeds]
    addr = np.array([_bitgen_address(g) for g in ours], np.int64)
    if inline and not all(_pcg64_layout_is_native(g, a) for g, a in zip(ours, addr.tolist(),
                                                                           strict=True)):
        return False  # (checked before the compiled step writes through the pointer)
    ok = True
    for normal, rows, k in ((False, 3, 7), (True, 2, 50_000), (False, 1, 5)):
        out = np.empty((rows, len(seeds) * k))
        fill_streams(addr, out, normal, np.full(len(seeds), inline))
        want = np.concatenate([g.standard_normal((rows, k)) if normal
                               else g.random((rows, k)) for g in theirs], axis=1)
        ok &= bool(np.array_equal(out.view(np.uint64), want.view(np.uint64)))
    return ok and all(a.bit_generator.state == b.bit_generator.state
                      for a, b in zip(ours, theirs, strict=True))


def _inline(gen: np.random.Generator) -> bool:
    """Whether ``gen`` is drawn by the compiled PCG64 step (``kernels.fill_streams``)."""
    return _FILLS_INLINE and type(gen.bit_generator) is np.random.PCG64


def _pcg64_layout_is_native(gen: np.random.Generator, bitgen: int) -> bool:
    """Whether ``gen``'s PCG64 state lies where and as ``kernels._pcg64_load`` reads it: the
    ``pcg64_state``'s first field points to the 128-bit state then the 128-bit increment,
    each a native little-endian ``__uint128_t`` (read here, not written)."""
    import ctypes
    import sys

    if sys.byteorder != "little":
        return False
    state = ctypes.c_void_p.from_address(bitgen).value  # bitgen_t.state: a pcg64_state *
    pcg = ctypes.c_void_p.from_address(state).value if state else None
    if not pcg:
        return False
    words = (ctypes.c_uint64 * 4).from_address(pcg)
    want = gen.bit_generator.state["state"]
    mask = (1 << 64) - 1
    return [int(w) for w in words] == [want["state"] & mask, want["state"] >> 64,
                                       want["inc"] & mask, want["inc"] >> 64]


class StreamBatch:
    """The daily streams of E communities as one generator: a draw of shape (..., E K) is
    each community's draw of shape (..., K), concatenated along the last axis in community
    order (the rules draw per name or per factory, the last axis).

    The generators are ``gens`` (one ``numpy.random.Generator`` each, authoritative: a draw
    here advances them as their own draws would, and drawing from one of them directly
    moves the batch's stream too). A draw is made for all E at once by a compiled fill
    (``kernels.fill_streams``) that steps each PCG64 (numpy's default) inline and calls any
    other bit generator's own C functions, checked against numpy once per process (if the
    inline step ever differs, every generator is drawn through its functions; if those
    differ too, generator by generator)."""

    def __init__(self, gens: Sequence[np.random.Generator]) -> None:
        self.gens = list(gens)  # the communities' generators, in community order
        # (the generators, their bit generators' addresses): taken again when an entry of
        # ``gens`` is another object; holding them keeps the addresses valid.
        self._addresses: tuple[tuple[np.random.Generator, ...], np.ndarray,
                               np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The generators only: their addresses are this process's, of these objects.
        return {"gens": list(self.gens)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["gens"])

    def _bitgens(self) -> tuple[np.ndarray, np.ndarray]:
        """(E,) int64 addresses of the generators' ``bitgen_t``, and (E,) bool: whether
        each is drawn by the inline PCG64 step (a PCG64, where that step was checked)."""
        held = self._addresses
        gens = tuple(self.gens)
        if held is None or held[0] != gens:  # (compared by identity, in C: no __eq__)
            if held is None or len(held[0]) != len(gens):
                addresses = np.array([_bitgen_address(g) for g in gens], np.int64)
                inline = np.array([_inline(g) for g in gens], bool)
            else:  # a restart replaced a few: only theirs are taken again
                addresses, inline = held[1].copy(), held[2].copy()
                for e in [e for e, (g, h) in enumerate(zip(gens, held[0], strict=True))
                          if g is not h]:
                    addresses[e], inline[e] = _bitgen_address(gens[e]), _inline(gens[e])
            held = self._addresses = (gens, addresses, inline)
        return held[1], held[2]

    def _draw(self, method: str, size: int | tuple[int, ...]) -> np.ndarray:
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        e = len(self.gens)
        k = shape[-1] // e
        if k * e != shape[-1]:
            raise ValueError(f"a batch draw's last axis ({shape[-1]}) must hold one number "
                             f"per name or factory of each of the {e} communities")
        if _fills_match_numpy():
            from civa_env.world.kernels import fill_streams

            out = np.empty(shape)
            addresses, inline = self._bitgens()
            fill_streams(addresses, out.reshape(-1, shape[-1]), method != "random", inline)
            return out
        # Each community draws into its own contiguous block (E, ..., K), which is then laid
        # out as (..., E K): the same numbers as drawing (..., K) alone and concatenating.
        out = np.empty((e,) + shape[:-1] + (k,))
        for g, block in zip(self.gens, out, strict=True):
            getattr(g, method)(out=block)
        return np.moveaxis(out, 0, -2).reshape(shape) if len(shape) > 1 else out.reshape(-1)

    def random(self, size: int | tuple[int, ...]) -> np.ndarray:
        """Uniform [0, 1) draws, community by community."""
        return self._draw("random", size)

    def standard_normal(self, size: int | tuple[int, ...]) -> np.ndarray:
        """Standard normal draws, community by community."""
        return self._draw("standard_normal", size)


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays end to end on their first axis (the one itself, for one)."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _shift(idx: np.ndarray, by: int) -> np.ndarray:
    """Pool rows ``idx`` moved by ``by`` (entries < 0, "nobody" or "everyone", kept)."""
    return np.where(idx >= 0, idx + by, idx).astype(idx.dtype)


def _shift_messages(msgs: list[Message], by: int) -> list[Message]:
    return [Message(m.day, m.sender + by, m.recipient if m.recipient == EVERYONE
                    else m.recipient + by, m.text) for m in msgs]


def stack(states: Sequence[WorldState]) -> WorldState:
    """One batch state of lone communities' states (all of one config's shape)."""
    n = states[0].n_pool
    out = {}
    for name in _NAME_FIELDS + _FACTORY_FIELDS:
        out[name] = np.concatenate([getattr(s, name) for s in states])
    out["parent"] = np.concatenate([_shift(s.parent, e * n) for e, s in enumerate(states)])
    out["allies"] = np.concatenate([s.allies + e * n for e, s in enumerate(states)]
                                   ).astype(np.int32).reshape(-1, 2)
    out["recent_src"] = np.concatenate([s.recent_src + e * n for e, s in enumerate(states)])
    out["recent_dst"] = np.concatenate([_shift(s.recent_dst, e * n)
                                        for e, s in enumerate(states)])
    for name in ("recent_day", "recent_kind", "recent_friendly"):
        out[name] = np.concatenate([getattr(s, name) for s in states])
    return WorldState(day=np.array([s.day for s in states], np.int64),
                      n_used=np.array([s.n_used for s in states], np.int64),
                      outbox=[m for e, s in enumerate(states)
                              for m in _shift_messages(s.outbox, e * n)],
                      inbox=[m for e, s in enumerate(states)
                             for m in _shift_messages(s.inbox, e * n)],
                      communities=len(states), **out)


def _grouped(keys: np.ndarray, e: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable order of ``keys`` (community numbers) and where each of the ``e``
    communities' entries start in it: (order, bounds (e + 1,))."""
    order = np.argsort(keys, kind="stable")
    return order, np.searchsorted(keys[order], np.arange(e + 1))


def _lone(state: WorldState, c: int, allies: np.ndarray, recent: np.ndarray,
          inbox: list[Message], outbox: list[Message]) -> WorldState:
    """Community ``c`` of a batch state in its own numbering, given which rows of the edge
    lists and which messages are its own (arrays copied)."""
    n, m = state.n_per, state.m_per
    lo = c * n
    one: dict[str, Any] = {name: getattr(state, name)[lo:lo + n].copy() for name in _NAME_FIELDS}
    for name in _FACTORY_FIELDS:
        one[name] = getattr(state, name)[c * m:(c + 1) * m].copy()
    one["parent"] = _shift(one["parent"], -lo)
    one["allies"] = (state.allies[allies] - lo).astype(np.int32)
    one["recent_src"] = state.recent_src[recent] - lo
    one["recent_dst"] = _shift(state.recent_dst[recent], -lo)
    for name in ("recent_day", "recent_kind", "recent_friendly"):
        one[name] = getattr(state, name)[recent]
    return WorldState(day=int(state.day[c]), n_used=int(state.n_used[c]),
                      outbox=_shift_messages(outbox, -lo), inbox=_shift_messages(inbox, -lo),
                      **one)


def split_state(state: WorldState) -> list[WorldState]:
    """Every community of a batch state as a lone community's state (``community``'s for
    each), the edge lists and messages grouped in one pass."""
    if state.communities == 1:
        return [state.copy()]
    n, e = state.n_per, state.communities
    ally_order, ally_at = _grouped(state.allies[:, 0] // n, e)
    recent_order, recent_at = _grouped(state.recent_src // n, e)
    mail: dict[str, list[list[Message]]] = {}
    for box in ("inbox", "outbox"):
        mail[box] = [[] for _ in range(e)]
        for msg in getattr(state, box):
            mail[box][msg.sender // n].append(msg)
    return [_lone(state, c, ally_order[ally_at[c]:ally_at[c + 1]],
                  recent_order[recent_at[c]:recent_at[c + 1]], mail["inbox"][c],
                  mail["outbox"][c]) for c in range(e)]


def community(state: WorldState, e: int) -> WorldState:
    """Community ``e`` of a batch state as a lone community's state (its own numbering;
    arrays copied)."""
    if state.communities == 1:
        return state.copy()
    n = state.n_per
    return _lone(state, e, (state.allies[:, 0] // n == e).nonzero()[0],
                 (state.recent_src // n == e).nonzero()[0],
                 [x for x in state.inbox if x.sender // n == e],
                 [x for x in state.outbox if x.sender // n == e])


def event_communities(cols: dict[str, np.ndarray], n: int, m: int) -> np.ndarray:
    """The community of each event of a batch day: its actor's (outages: their factory's)."""
    actor = cols["actor"].astype(np.int64)
    return np.where(actor >= 0, actor // n, cols["factory"].astype(np.int64) // m)


def split_events(cols: dict[str, np.ndarray], texts: dict[int, str], days: np.ndarray,
                 n: int, m: int) -> list[tuple[dict[str, np.ndarray], dict[int, str]]]:
    """A batch day's events (``DayEvents.freeze``) as each community's day alone: its rows
    in order, renumbered, with its day (``days`` (E,))."""
    comm = event_communities(cols, n, m)
    if np.count_nonzero(comm < 0):
        raise ValueError("an event with neither an actor nor a factory cannot be placed "
                         "in a community")
    order, bounds = _grouped(comm, len(days))
    # Each text's row within its community's day.
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - bounds[comm[order]]
    by_comm: list[dict[int, str]] = [{} for _ in days]
    for row, text in texts.items():
        by_comm[comm[row]][int(rank[row])] = text
    out = []
    for e in range(len(days)):
        rows = order[bounds[e]:bounds[e + 1]]
        mine = {key: col[rows] for key, col in cols.items()}
        for key, by in (("actor", e * n), ("target", e * n), ("factory", e * m)):
            mine[key] = _shift(mine[key], -by)
        mine["day"][:] = days[e]
        out.append((mine, dict(sorted(by_comm[e].items()))))
    return out


@dataclass(frozen=True)
class BatchDay:
    """What one batch day produced."""

    before: WorldState | DayStart  # (a DayStart where the day was played in place)
    after: WorldState
    acted: np.ndarray  # (K,) int64 pool rows alive at the start of the day
    died: np.ndarray  # (D,) int64 pool rows that starved today
    population: np.ndarray  # (E,) int64 living at the end of the day
    n_aup: np.ndarray  # (E,) the running nAUP
    ended: np.ndarray  # (E,) bool: the episode is over (last day played or nobody left)
    truncated: np.ndarray  # (E,) bool: the last day was played
    invalid: dict[int, list[str]] = field(default_factory=dict)  # pool row -> reasons


@dataclass
class Communities:
    """E communities of one config in one set of arrays (the module docstring)."""

    cfg: Config
    catalogue: Catalogue
    seeds: np.ndarray  # (E,) the seed of each community's episode
    state: WorldState
    view: np.ndarray  # (E N, V) int32 pool rows
    streams: StreamBatch
    population_sum: np.ndarray  # (E,) living summed over days (the running nAUP)
    logs: list[EventLog] | None = None  # with keep_logs: each community's log
    counts: list[behaviours.DailyCounts] | None = None

    @property
    def num(self) -> int:
        """E, the number of communities."""
        return self.state.communities

    @classmethod
    def reset(cls, cfg: Config, seeds: Sequence[int], keep_logs: bool = False) -> Communities:
        """A fresh community per seed (each as ``world.reset(cfg, seed)`` would draw it)."""
        seeds = [world_fn.check_seed(s) for s in seeds]
        if not seeds:
            raise ValueError("a batch needs at least one community")
        e, n = len(seeds), cfg.max_agents
        if e * n <= _FRESH_ROWS:  # all drawn at once: the batch's own arrays
            state, view, gens = world_fn.first_days(cfg, seeds)
            batch = cls(cfg=cfg, catalogue=Catalogue(cfg), seeds=np.array(seeds, np.int64),
                        state=state, view=view, streams=StreamBatch(gens),
                        population_sum=np.zeros(e, np.int64))
        else:  # the arrays of E communities (the first's, repeated), then each written
            state, view, gen = world_fn.first_day(cfg, seeds[0])
            state = stack([state] * e)
            view = np.concatenate([_shift(view, c * n) for c in range(e)])
            batch = cls(cfg=cfg, catalogue=Catalogue(cfg), seeds=np.array(seeds, np.int64),
                        state=state, view=view, streams=StreamBatch([gen] * e),
                        population_sum=np.zeros(e, np.int64))
            batch._write_fresh(range(1, e), seeds[1:])
        if keep_logs:
            batch.logs = [EventLog() for _ in seeds]
            batch.counts = [cls._new_counts(cfg) for _ in seeds]
        return batch

    @staticmethod
    def _new_counts(cfg: Config) -> behaviours.DailyCounts:
        return behaviours.DailyCounts(cfg.recent_days, cfg.deception_window)

    # ---- a day -----------------------------------------------------------------------------

    def step_factored(self, acts: np.ndarray, *, in_place: bool = False) -> BatchDay:
        """Play one day in every community from factored actions (E N, C) (rows of names
        not alive are ignored). Communities whose episode is over must be ``replace``d
        first. The day's state is a new one (the ``BatchDay``'s ``before`` and ``after``
        stay as they are), unless ``in_place``: then it is played over the current state's
        arrays (cheaper: the vector env, which reads a day before the next, does so), and
        the ``BatchDay``'s ``after`` is the batch's state, which later days and restarts
        write, and its ``before`` a ``state.DayStart``."""
        cfg, old = self.cfg, self.state
        over = (np.atleast_1d(old.day) >= cfg.max_days) | ~self._any_alive(old)
        if np.count_nonzero(over):
            raise ValueError(f"communities {over.nonzero()[0].tolist()} have ended: "
                             "replace() them before stepping")
        batch = world_fn.factored_batch(old, self.view, acts, cfg, self.catalogue, "the batch")
        rows = old.alive.nonzero()[0]
        rng = self.streams if self.num > 1 else self.streams.gens[0]
        start = DayStart.of(old) if in_place else None
        new, events = step_day(old, batch, rng, cfg, events=self.logs is not None,
                               start=start)
        n = new.n_per
        population = np.bincount(new.alive.nonzero()[0] // n, minlength=self.num)
        before = old if start is None else start
        if self.logs is not None:
            self._record(events.freeze(), before, new)
        self.population_sum += population
        n_aup = self.population_sum / (cfg.max_days * cfg.n_agents)
        self.state = new
        # (the view's own array, written again: rows not alive are -1, as a fresh one's)
        self.view = compute_view(new, cfg, rng, out=self.view, stale=rows)
        truncated = np.atleast_1d(new.day) >= cfg.max_days
        died = rows[~new.alive[rows]]
        return BatchDay(before=before, after=new, acted=rows, died=died,
                        population=population, n_aup=n_aup,
                        ended=truncated | (population == 0), truncated=truncated,
                        invalid=batch.invalid)

    def _any_alive(self, state: WorldState) -> np.ndarray:
        return np.bincount(state.alive.nonzero()[0] // state.n_per,
                           minlength=self.num) > 0

    def _record(self, chunk: tuple[dict[str, np.ndarray], dict[int, str]],
                old: WorldState | DayStart, new: WorldState) -> None:
        """Each community's census, behaviours and log, as a lone world records them."""
        if self.num == 1:
            parts = [chunk]
        else:
            parts = split_events(*chunk, np.atleast_1d(new.day), new.n_per, new.m_per)
        n = new.n_per
        for e, (part, lone) in enumerate(zip(parts, split_state(new), strict=True)):
            lo = e * n
            world_fn.record(self.cfg, self.logs[e], self.counts[e], part, lone,
                            old.wealth[lo:lo + n], old.alive[lo:lo + n],
                            int(self.population_sum[e]))

    # ---- episodes --------------------------------------------------------------------------

    def replace(self, which: Sequence[int], seeds: Sequence[int], *,
                in_place: bool = False, words: np.ndarray | None = None) -> None:
        """Start communities ``which`` afresh with ``seeds`` (each as ``world.reset`` would);
        the others are untouched. The state is a new one (a ``BatchDay`` returned before
        keeps its ``after``), unless ``in_place``: then the current state's arrays are
        written (cheaper: the vector env, which has read the day, does so). ``words``:
        the seeds' ``seeding.seed_words`` for ``day.FRESH_STREAMS``, (3, G, 4), if made
        already (``seeding.episode_seeds``)."""
        which = [int(e) for e in which]
        if not which:
            return
        seeds = [world_fn.check_seed(s) for s in seeds]
        if self.num == 1:
            self.state, self.view, self.streams.gens[0] = world_fn.first_day(self.cfg, seeds[0])
        else:
            if not in_place:
                self.state = self.state.copy()
            self._write_fresh(which, seeds, words)
            # A fresh community has no alliances, dealings or messages: drop the old ones.
            state, n = self.state, self.state.n_per
            gone = np.zeros(self.num, bool)
            gone[which] = True
            if len(state.allies):
                state.allies = state.allies[~gone[state.allies[:, 0] // n]]
            if len(state.recent_src):
                keep = ~gone[state.recent_src // n]
                for name in ("recent_day", "recent_src", "recent_dst", "recent_kind",
                             "recent_friendly"):
                    setattr(state, name, getattr(state, name)[keep])
            if state.inbox:
                state.inbox = [x for x in state.inbox if not gone[x.sender // n]]
            if state.outbox:
                state.outbox = [x for x in state.outbox if not gone[x.sender // n]]
        for e, s in zip(which, seeds, strict=True):
            self.seeds[e] = s
            self.population_sum[e] = 0
            if self.logs is not None:
                self.logs[e] = EventLog()
                self.counts[e] = self._new_counts(self.cfg)

    def _write_fresh(self, which: Sequence[int], seeds: Sequence[int],
                     words: np.ndarray | None = None) -> None:
        """Write a fresh community of each seed (``world.first_day``) over the name, factory
        and view rows of communities ``which``, and give each its fresh daily stream, in
        place: the founders' draws straight into the batch's arrays from their streams' seed
        words (``state.write_fresh``, one compiled pass), the view from the daily streams
        (``perception.founders_view``), a group of communities at a time (at most
        ``_FRESH_ROWS`` names, so that a large batch's reset holds little more than one set
        of arrays). Each is what ``world.first_day`` gives alone (tests compare them)."""
        cfg, state = self.cfg, self.state
        n, m = state.n_per, state.m_per
        group = max(1, _FRESH_ROWS // n)
        for lo in range(0, len(which), group):
            comms = np.asarray(which[lo:lo + group], np.int64)
            some = seeds[lo:lo + group]
            g = len(comms)
            # Fresh world k's rows [k N, (k + 1) N) go to community comms[k]'s.
            if g == 1 or np.all(comms[1:] - comms[:-1] == 1):
                rows = slice(int(comms[0]) * n, (int(comms[-1]) + 1) * n)  # one block: a view
                frows = slice(int(comms[0]) * m, (int(comms[-1]) + 1) * m)
            else:
                rows = (comms[:, None] * n + np.arange(n)).ravel()
                frows = (comms[:, None] * m + np.arange(m)).ravel()
            mine = (seeding.seed_words(some, world_fn.FRESH_STREAMS) if words is None
                    else words[:, lo:lo + group])  # (3, G, 4)
            write_fresh(state, cfg, comms, np.stack([mine[0], mine[1]], axis=1), rows, frows)
            gens = seeding.generators_of(some, world_fn.DYNAMICS_STREAM, mine[2])
            view = founders_view(cfg, g, gens[0] if g == 1 else StreamBatch(gens))
            # (the fresh view is this call's own: its pool rows moved to the batch's in place)
            by = ((comms - np.arange(g)) * n).astype(view.dtype)[:, None, None]
            rows3 = view.reshape(g, n, -1)
            np.add(rows3, by, out=rows3, where=rows3 >= 0)
            self.view[rows] = view
            for e, gen in zip(comms.tolist(), gens, strict=True):
                self.streams.gens[e] = gen

    def world(self, e: int, state: WorldState | None = None) -> world_fn.World:
        """Community ``e`` as a lone ``World`` (a snapshot: its state in its own numbering,
        its log and counts when kept, an empty log otherwise; its daily stream is the
        batch's, so stepping the snapshot moves the batch's stream too). ``state``: its
        lone state, if already split off."""
        n = self.cfg.max_agents
        view = self.view[e * n:(e + 1) * n] if self.num > 1 else self.view
        return world_fn.World(
            cfg=self.cfg, catalogue=self.catalogue, seed=int(self.seeds[e]),
            state=community(self.state, e) if state is None else state,
            view=_shift(view, -e * n),
            dynamics=self.streams.gens[e],
            log=self.logs[e] if self.logs is not None else EventLog(),
            behaviours=self.counts[e] if self.counts is not None else self._new_counts(self.cfg),
            index_of={agent_name(i): i for i in range(n)},
            population_sum=int(self.population_sum[e]))

    def worlds(self) -> list[world_fn.World]:
        """Every community as a lone ``World`` snapshot (``world``), split in one pass."""
        return [self.world(e, lone) for e, lone in enumerate(split_state(self.state))]
