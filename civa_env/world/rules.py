"""The rules of one day (README "Rules"), as functions over the world's arrays.

``step_day`` runs them in the fixed resolution order on a copy of the state:

1. primary actions: ``produce`` (work), ``explore``, ``upgrade``
2. secondary actions: ``merge``, ``give``, ``attack`` (one by one, seeded random order)
3. ``send_messages`` (delivered tomorrow)
4. ``apply_upkeep``, ``remove_dead``, ``give_birth``

Each rule updates the state in place and appends its events to the day's ``DayEvents``.

Stress (resilience tests): ``upkeep_factor`` and ``outage_prob`` give the day-dependent
factors of the config's stress and shock fields, the one place they are applied; the
briefings and the features show the same values to the residents.

Common random numbers: every rule draws the same amount from the daily stream whatever the
residents chose, one number per name of the pool (or per factory) and purpose, and uses the
entries of the residents concerned. Resident i's production noise, exploration luck, attack
draw, upkeep and birth draw on day t are therefore the same under every value condition, and
the stream never drifts out of step between two conditions of one seed: a condition changes
the world only through what residents choose.
"""

from __future__ import annotations

import numpy as np

from civa_env.world import behaviours, slots
from civa_env.world.actions import EVERYONE, ActionBatch
from civa_env.world.arrays import filled, in_sorted
from civa_env.world.config import Config
from civa_env.world.events import DayEvents, NoEvents
from civa_env.world.kinds import (
    EXPLORE_FOUND,
    EXPLORE_REVEALED,
    D,
    K,
    P,
    S,
)
from civa_env.world.state import DayStart, WorldState

# The day being played: an int for a lone community, (E,) for a batch of E (one day each).
DayNumber = int | np.ndarray

_NO_EVENTS = NoEvents()  # (step_day's sink when the day's events are not kept)


def production(capacity: np.ndarray, workers: np.ndarray, cfg: Config) -> np.ndarray:
    """Factory output ``Y_m(n) = C_m (s(n) - s(0)) / (1 - s(0))`` for ``n`` workers: (M,)."""
    k, n_half = cfg.production_k, cfg.production_n_half
    s = 1.0 / (1.0 + np.exp(-k * (workers - n_half)))
    s0 = 1.0 / (1.0 + np.exp(k * n_half))
    return capacity * (s - s0) / (1.0 - s0)


def upkeep_factor(cfg: Config, day: int | np.ndarray) -> float | np.ndarray:
    """What upkeep is multiplied by on ``day`` (1-based, the day being played):
    ``stress_upkeep`` from ``stress_day`` on, times ``shock_upkeep`` on ``shock_day``.
    ``day`` may be an array (one day per community of a batch): then one factor each."""
    if np.ndim(day):
        if cfg.stress_upkeep == 1.0 and cfg.shock_upkeep == 1.0:  # (no stress: every day 1)
            return np.ones(np.shape(day))
        return (np.where(day >= cfg.stress_day, cfg.stress_upkeep, 1.0)
                * np.where(day == cfg.shock_day, cfg.shock_upkeep, 1.0))
    factor = cfg.stress_upkeep if day >= cfg.stress_day else 1.0
    if day == cfg.shock_day:
        factor *= cfg.shock_upkeep
    return factor


def outage_prob(cfg: Config, day: int | np.ndarray) -> float | np.ndarray:
    """A factory's outage probability on ``day`` (1-based): ``outage_prob``, times
    ``stress_outage`` from ``stress_day`` on, capped at 1 (one per community for an array
    of days)."""
    if np.ndim(day):
        if cfg.stress_outage == 1.0 and cfg.outage_prob <= 1.0:  # (no stress: every day the same)
            return np.full(np.shape(day), float(cfg.outage_prob))
        return np.where(day < cfg.stress_day, cfg.outage_prob,
                        min(cfg.outage_prob * cfg.stress_outage, 1.0))
    if day < cfg.stress_day:
        return cfg.outage_prob
    return min(cfg.outage_prob * cfg.stress_outage, 1.0)


def strength(skill: float, wealth: float, cfg: Config) -> float:
    """Fighting strength: ``skill + 0.05 * min(wealth, 40)`` (wealth floored at 0); the
    attack kernel's own formula (``kernels.strength``)."""
    from civa_env.world import kernels  # (numba loads on first use, not at import)
    return float(kernels.strength(skill, wealth, cfg.attack_wealth_weight,
                                  cfg.attack_wealth_cap))


# The primary rules ``_primary`` plays (kernels.primary_actions' ``parts``).
_WORK, _EXPLORE, _UPGRADE = 1, 2, 4


def produce(state: WorldState, batch: ActionBatch, rng: np.random.Generator, cfg: Config,
            ev: DayEvents, w0: np.ndarray) -> np.ndarray:
    """Work at factories: shares of ``Y_m`` by skill, lognormal noise, outages (with the
    day's ``outage_prob``; one draw per factory whatever the probability, so stressed and
    unstressed worlds stay in step).

    Returns income (N,)."""
    income = np.zeros(state.n_pool)
    _primary(state, batch, rng, cfg, ev, w0, income, _WORK)
    return income


def explore(state: WorldState, batch: ActionBatch, rng: np.random.Generator, cfg: Config,
            ev: DayEvents, income: np.ndarray, w0: np.ndarray) -> None:
    """Explore: reveal an unknown factory (p=0.3), else find uniform [0, 3] wealth (p=0.3)."""
    _primary(state, batch, rng, cfg, ev, w0, income, _EXPLORE)


def upgrade(state: WorldState, batch: ActionBatch, cfg: Config, ev: DayEvents,
            w0: np.ndarray) -> None:
    """``upgrade self`` (skill += 0.1) and ``upgrade factory`` (C_m += 1), each costing 3."""
    _primary(state, batch, None, cfg, ev, w0, np.zeros(state.n_pool), _UPGRADE)


def _primary(state: WorldState, batch: ActionBatch, rng: np.random.Generator | None,
             cfg: Config, ev: DayEvents, w0: np.ndarray, income: np.ndarray,
             parts: int) -> None:
    """Play the primary rules of ``parts`` (``produce``, ``explore``, ``upgrade``, in that
    order) by one compiled pass (``kernels.primary_actions``), adding production and finds
    to ``income``.

    Production: factory m's output ``Y_m`` (``production``; 0 in an outage, drawn per
    factory: ``u < outage_prob``) is shared among its workers by skill, each share times
    ``exp(production_noise z)`` (one normal z per name). Explore (per name: reveal?, find?,
    amount found, which unknown factory): reveal the k-th unknown factory, k uniform among
    them, with ``explore_reveal_prob``, else find ``explore_find_max`` x uniform wealth with
    ``explore_find_prob``. Upgrades cost ``upgrade_cost``: skill += ``skill_gain``, or the
    factory's capacity += ``capacity_gain``. The draws are made whatever the residents chose,
    in the order the rules are listed."""
    from civa_env.world.kernels import primary_actions  # (numba loads on first use)

    n, m = state.n_pool, state.capacity.shape[0]  # names and every community's factories
    empty = np.empty(0)
    u_outage, z, u_explore = empty, empty, np.empty((4, 0))
    if parts & _WORK:
        u_outage = rng.random(m)
        # lognormal(0, sigma) is exp(sigma z): one normal per name.
        z = rng.standard_normal(n)
    if parts & _EXPLORE:
        u_explore = rng.random((4, n))
    p_out = np.atleast_1d(np.asarray(outage_prob(cfg, state.day + 1), np.float64))
    (off, workers, w_fac, share, explorers, e_fac, found, flag, selves, skill, upgraders,
     u_fac, capacity, idle) = primary_actions(
        state.alive, batch.primary, batch.factory, state.n_per, state.m_per, state.wealth,
        state.skill, income, state.known, state.capacity, state.workers, state.output,
        state.outage, u_outage, z, u_explore, p_out, cfg.production_k,
        cfg.production_n_half, cfg.production_noise, cfg.explore_find_max,
        cfg.explore_reveal_prob, cfg.explore_find_prob, float(cfg.upgrade_cost),
        cfg.skill_gain, cfg.capacity_gain, P.WORK, P.EXPLORE, P.UPGRADE_SELF,
        P.UPGRADE_FACTORY, P.IDLE, EXPLORE_REVEALED, EXPLORE_FOUND, parts)
    if not ev.kept:
        return
    ev.add(K.OUTAGE, filled(len(off), -1, np.int32), factory=off)
    ev.add(K.WORK, workers, factory=w_fac, amount=share, wealth=w0[workers])
    ev.add(K.EXPLORE, explorers, factory=e_fac, amount=found, flag=flag, wealth=w0[explorers])
    ev.add(K.UPGRADE_SELF, selves, amount=skill, wealth=w0[selves])
    ev.add(K.UPGRADE_FACTORY, upgraders, factory=u_fac, amount=capacity,
           wealth=w0[upgraders])
    ev.add(K.IDLE, idle, wealth=w0[idle])


def _remember(state: WorldState, day: int | np.ndarray, src: np.ndarray, dst: np.ndarray,
              kind: int, friendly: np.ndarray | None = None) -> None:
    if len(src) == 0:
        return
    if friendly is None:
        friendly = np.zeros(len(src), bool)
    state.recent_friendly = np.concatenate([state.recent_friendly, friendly])
    days = (filled(len(src), day, np.int32) if state.communities == 1
            else state.per_row(day, src).astype(np.int32))
    state.recent_day = np.concatenate([state.recent_day, days])
    state.recent_src = np.concatenate([state.recent_src, src.astype(np.int32)])
    state.recent_dst = np.concatenate([state.recent_dst, dst.astype(np.int32)])
    state.recent_kind = np.concatenate([state.recent_kind, filled(len(src), kind, np.int8)])


def merge(state: WorldState, batch: ActionBatch, cfg: Config, ev: DayEvents, day: DayNumber,
          w0: np.ndarray) -> int:
    """Proposals; an alliance forms when both proposed within ``merge_window`` days.

    Allies share what factories they know (every day). Returns alliances formed.
    """
    rows = (state.alive & (batch.secondary == S.MERGE)).nonzero()[0]
    formed = 0
    if len(rows):
        formed = _propose(state, batch, rows, cfg, ev, day, w0)
    if len(state.allies):
        a, b = state.allies[:, 0], state.allies[:, 1]
        shared = state.known[a] | state.known[b]
        np.logical_or.at(state.known, a, shared)
        np.logical_or.at(state.known, b, shared)
    return formed


def _propose(state: WorldState, batch: ActionBatch, rows: np.ndarray, cfg: Config,
             ev: DayEvents, day: DayNumber, w0: np.ndarray) -> int:
    """Record the merge proposals of ``rows``; form the mutual ones. Returns those formed."""
    tgt = batch.target[rows]
    if ev.kept:
        ev.add(K.MERGE_PROPOSAL, rows, tgt, wealth=w0[rows], target_wealth=w0[tgt])
    _remember(state, day, rows, tgt, D.MERGE)
    # (one compiled pass: the day's proposals answered within the window, new pairs only)
    from civa_env.world.kernels import mutual_merges  # (numba loads on first use)

    since = np.atleast_1d(np.asarray(day - cfg.merge_window + 1, np.int64))
    pairs = mutual_merges(rows, tgt, state.recent_src, state.recent_dst, state.recent_day,
                          state.recent_kind, D.MERGE, since, state.n_per, state.allies)
    formed = len(pairs)
    if formed:
        pairs = pairs.astype(np.int32)
        state.allies = np.concatenate([state.allies, pairs])
        if ev.kept:
            ev.add(K.ALLIANCE_FORMED, pairs[:, 0], pairs[:, 1],
                   wealth=w0[pairs[:, 0]], target_wealth=w0[pairs[:, 1]])
    return formed


def give(state: WorldState, batch: ActionBatch, ev: DayEvents, day: DayNumber,
         w0: np.ndarray) -> np.ndarray:
    """Gifts, all at once, each cut to the giver's wealth after the primary action."""
    rows = (state.alive & (batch.secondary == S.GIFT)).nonzero()[0]
    if len(rows) == 0:
        state.given[:] = 0.0
        state.received[:] = 0.0
        return rows
    tgt = batch.target[rows]
    amount = np.minimum(batch.amount[rows], np.maximum(state.wealth[rows], 0.0))
    n = state.n_pool
    state.wealth -= np.bincount(rows, weights=amount, minlength=n)
    received = np.bincount(tgt, weights=amount, minlength=n)
    state.wealth += received
    state.given[:] = 0.0
    state.given[rows] = amount
    state.ever_gave[rows] = True
    state.received[:] = received
    if ev.kept:
        ev.add(K.GIFT, rows, tgt, amount=amount, wealth=w0[rows], target_wealth=w0[tgt])
    _remember(state, day, rows, tgt, D.GIFT)
    return rows


def attack(state: WorldState, batch: ActionBatch, rng: np.random.Generator, cfg: Config,
           ev: DayEvents, day: DayNumber, w0: np.ndarray) -> None:
    """Attacks one by one in a seeded random order (contested: wealth changes as they go).

    Success probability ``S_i / (S_i + S_j)``, where the defender adds ``ally_defence`` of
    the strength of each ally not attacking it. Success takes ``loot_fraction`` of the
    defender's wealth; both pay ``fight_cost``, a failed attacker ``failed_attack_cost`` more.
    Attacking an ally dissolves the alliance.
    """
    n = state.n_pool
    # A random order (sorting iid keys) and one success draw per name.
    order_key, draw_of = rng.random((2, n))
    rows = (state.alive & (batch.secondary == S.ATTACK)).nonzero()[0]
    state.looted[:] = 0.0
    state.lost[:] = 0.0
    state.attacked_by[:] = 0
    if len(rows) == 0:
        return
    from civa_env.world.kernels import ally_csr, resolve_attacks  # (numba: on first use)
    order = rows[np.argsort(order_key[rows], kind="stable")]
    tgt = batch.target[order].astype(np.int64)
    # The contested loop, compiled (kernels.resolve_attacks: the same IEEE arithmetic in
    # the same order as the loop written out in Python; defenders' allies in name order).
    ally_ptr, ally_idx = ally_csr(state.allies, n)
    hits = np.zeros(n, np.int64)
    loot, flags, dissolved = resolve_attacks(
        order, tgt, draw_of[order], state.wealth, state.skill, state.alive, ally_ptr, ally_idx,
        cfg.attack_wealth_weight, cfg.attack_wealth_cap, cfg.ally_defence, cfg.loot_fraction,
        cfg.fight_cost, cfg.failed_attack_cost, state.looted, state.lost, hits)
    state.attacked_by[:] = hits
    if ev.kept:
        ev.add(K.ATTACK, order, tgt, amount=loot, flag=flags,
               wealth=w0[order], target_wealth=w0[tgt])
    _remember(state, day, order, tgt, D.ATTACK)
    if len(dissolved):
        gone = dissolved.astype(np.int32)
        ev.add(K.ALLIANCE_DISSOLVED, gone[:, 0], gone[:, 1])
        _drop_alliances(state, gone[:, 0].astype(np.int64) * n + gone[:, 1])


def _drop_alliances(state: WorldState, keys: np.ndarray) -> None:
    n = state.n_pool
    have = state.allies[:, 0].astype(np.int64) * n + state.allies[:, 1]
    state.allies = state.allies[~in_sorted(np.sort(keys), have)]


def send_messages(state: WorldState, batch: ActionBatch, ev: DayEvents, day: DayNumber) -> None:
    """Messages go to the outbox, delivered at the start of tomorrow."""
    msgs = batch.messages
    if not msgs:
        return
    src = np.array([m.sender for m in msgs], np.int32)
    dst = np.array([m.recipient for m in msgs], np.int32)
    texts = [m.text for m in msgs]
    ev.add(K.MESSAGE, src, np.where(dst == EVERYONE, -1, dst), texts=texts)
    # Direct messages are classified as the deception detector classifies them (broadcasts
    # are not: they never count there), for the listeners' features.
    direct = (dst >= 0).nonzero()[0]
    friendly = np.zeros(len(msgs), bool)
    friendly[direct] = behaviours.friendly_texts([texts[k] for k in direct])
    _remember(state, day, src, dst, D.MESSAGE, friendly)
    state.outbox = list(msgs)


def apply_upkeep(state: WorldState, batch: ActionBatch, rng: np.random.Generator,
                 cfg: Config) -> np.ndarray:
    """Everyone alive pays ``upkeep * upkeep_factor * lognormal(0, 0.1)``; idlers pay 0.7
    of it. The day is ``state.day + 1`` (``step_day`` advances the state's day last)."""
    from civa_env.world.kernels import pay_upkeep  # (numba loads on first use)

    upkeep = np.atleast_1d(np.asarray(cfg.upkeep * upkeep_factor(cfg, state.day + 1),
                                      np.float64))  # (one per community)
    z = rng.standard_normal(state.n_pool)  # (drawn for every name)
    return pay_upkeep(state.alive, batch.primary, state.n_per, upkeep,
                      float(cfg.upkeep_noise), z, P.IDLE, float(cfg.idle_upkeep_factor),
                      state.wealth)


def remove_dead(state: WorldState, ev: DayEvents, day: DayNumber) -> np.ndarray:
    """Residents whose wealth fell below 0 are removed; their alliances end."""
    dead = (state.alive & (state.wealth < 0)).nonzero()[0]
    if len(dead):
        state.alive[dead] = False
        state.died_day[dead] = state.per_row(day, dead)
        ev.add(K.DEATH, dead, amount=state.wealth[dead])
        if len(state.allies):
            is_dead = np.zeros(state.n_pool, bool)
            is_dead[dead] = True
            gone = is_dead[state.allies[:, 0]] | is_dead[state.allies[:, 1]]
            state.allies = state.allies[~gone]
    return dead


def give_birth(state: WorldState, rng: np.random.Generator, cfg: Config, ev: DayEvents,
               day: DayNumber) -> np.ndarray:
    """Residents with wealth >= 20 have a newcomer with p=0.3 while the pool has names."""
    eligible = state.alive & (state.wealth >= cfg.birth_threshold)
    draws, priority = rng.random((2, state.n_pool))
    parents = (eligible & (draws < cfg.birth_prob)).nonzero()[0]
    parents, kids = _names_for(state, parents, priority)
    if len(parents) == 0:
        return parents
    state.wealth[parents] -= cfg.birth_cost
    state.wealth[kids] = cfg.newcomer_wealth
    state.skill[kids] = state.skill[parents]
    state.known[kids] = state.known[parents]
    state.alive[kids] = True
    state.parent[kids] = parents
    state.born_day[kids] = state.per_row(day, kids)
    if cfg.inherit_values:
        state.condition[kids] = state.condition[parents]
    else:
        # Drawn again from the value stream (the names' draws made at reset): each newcomer
        # holds the condition with probability `prevalence`, nested across prevalences.
        holds = state.value_draw[kids] < cfg.prevalence
        state.condition[kids] = np.where(holds, cfg.value_condition.code, 0)
    ev.add(K.BIRTH, parents, kids, amount=cfg.newcomer_wealth)
    return kids


def _names_for(state: WorldState, parents: np.ndarray,
               priority: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``give_birth``'s choice of parents and names, community by community: where a
    community has fewer free names than parents (not enough names for all), its parents of
    lowest ``priority`` draw win, not the name order; its newcomers take its next names in
    parent order. Updates ``n_used``; returns (parents, kids)."""
    n, e = state.n_per, state.communities
    used = np.atleast_1d(np.asarray(state.n_used, np.int64))
    comm = parents // n
    free = n - used
    wanted = np.bincount(comm, minlength=e)
    if np.count_nonzero(wanted > free):
        # Rank each parent within its community by its draw; keep ranks below the free count.
        by_draw = np.lexsort((priority[parents], comm))
        first = np.searchsorted(comm[by_draw], comm[by_draw], side="left")
        rank = np.empty(len(parents), np.int64)
        rank[by_draw] = np.arange(len(parents)) - first
        parents = parents[rank < free[comm]]
        comm = parents // n
    # Kids: the community's next free names, in parent (name) order.
    first = np.searchsorted(comm, comm, side="left")
    kids = comm * n + used[comm] + (np.arange(len(parents)) - first)
    used += np.bincount(comm, minlength=e)
    state.n_used = used if e > 1 else int(used[0])
    return parents, kids


def step_day(state: WorldState, batch: ActionBatch, rng: np.random.Generator,
             cfg: Config, *, events: bool = True, start: DayStart | None = None
             ) -> tuple[WorldState, DayEvents | NoEvents]:
    """Play one day; returns the new state (the input is not changed) and its events
    (``events=False``: none are kept, for a batch without logs; the day is the same).
    Given ``start`` (``DayStart.of(state)``), the day is played over ``state`` itself, which
    is returned (no copy of the state: what is read of the day's start is ``start``'s)."""
    if start is None:
        before, state = state, state.copy()
    else:
        before = start
    day = state.day + 1
    # (A batch's events get their communities' days when split: ``batch``.)
    ev = DayEvents(day if state.communities == 1 else 0,
                   capacity=np.count_nonzero(state.alive) * (5 + cfg.max_messages)
                   + state.capacity.shape[0] + 8) if events else _NO_EVENTS
    # The wealth at the start of the day, for the events only (None when none are kept).
    w0 = state.wealth.copy() if ev.kept else None
    for i, reasons in sorted(batch.invalid.items()):
        ev.add(K.INVALID, [i], texts=["; ".join(reasons)])
    income = np.zeros(state.n_pool)
    _primary(state, batch, rng, cfg, ev, w0, income, _WORK | _EXPLORE | _UPGRADE)
    state.income[:] = income
    merge(state, batch, cfg, ev, day, w0)
    give(state, batch, ev, day, w0)
    attack(state, batch, rng, cfg, ev, day, w0)
    send_messages(state, batch, ev, day)
    apply_upkeep(state, batch, rng, cfg)
    remove_dead(state, ev, day)
    give_birth(state, rng, cfg, ev, day)
    slots.refresh(state, cfg, before)  # what is known and the capacities may have changed
    # Forget dealings older than the longest window the rules and views look back.
    keep = state.recent_day > (state.per_row(day, state.recent_src)
                               - max(cfg.recent_days, cfg.merge_window, cfg.deception_window))
    state.recent_day, state.recent_src = state.recent_day[keep], state.recent_src[keep]
    state.recent_dst, state.recent_kind = state.recent_dst[keep], state.recent_kind[keep]
    state.recent_friendly = state.recent_friendly[keep]
    state.inbox, state.outbox = state.outbox, []
    state.day = day
    return state, ev
