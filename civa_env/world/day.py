"""One day of the world as a function.

    world = reset(cfg, seed)
    world, day = step(world, actions)

``step`` does all of a day: it validates the actions against the residents' views, plays
the rules, takes the census, counts the day's behaviours, updates the running nAUP and draws
the next view. ``World`` holds everything that lasts between days (state, view, random
streams, event log, counters); ``Day`` is what one day produced (who acted, who was born,
invalid actions, the census). Clients (the PettingZoo env, the SB3 VecEnv, the runner) are
thin adapters over these two calls, in the way Gymnasium's functional env adapter wraps
``transition``/``observation``/``reward``.

Random streams (paired worlds). The seed is split by ``numpy.random.SeedSequence`` into one
independent stream per purpose (``STREAMS``): world generation (wealth, skill, known
factories, capacities), value assignment (who holds the condition; newcomers' draws),
daily dynamics (outages, production noise, explore finds, attack order and draws, upkeep,
births, views), the assignment of founders to the policies of a mix, and one stream per
policy. The daily stream is drawn in fixed amounts per day (see ``rules``), so with the same
seed and the same actions every condition and prevalence has the same world, day after day.

``step`` updates the world in place and returns it with the day: each day's state is a new
``WorldState`` (``Day.before`` and ``Day.after`` stay valid), and the log only grows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from civa_env.world import behaviours, factored, metrics, seeding
from civa_env.world.actions import ActionBatch, pack_actions, validate
from civa_env.world.briefing import BrieferV2
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import SHAPE_FIELDS, Config
from civa_env.world.events import EventLog, agent_name
from civa_env.world.features import feature_size, features
from civa_env.world.perception import Briefer, LegalBook, compute_view, inbox_count
from civa_env.world.rules import step_day
from civa_env.world.state import WorldState, seeded_states

STREAMS = ("world", "values", "dynamics", "assignment", "policies")


def seed_streams(seed: int | None) -> dict[str, np.random.SeedSequence]:
    """One independent ``SeedSequence`` per purpose (``STREAMS``), derived from ``seed``."""
    root = np.random.SeedSequence(seed)
    return dict(zip(STREAMS, root.spawn(len(STREAMS)), strict=True))


def fresh_seed() -> int:
    """A new seed from the operating system's entropy (for runs given no seed: recorded,
    so that they can be played again)."""
    return int(np.random.SeedSequence().entropy % 2**63)


def derived_seed(seed: int, *keys: int) -> int:
    """A seed derived from ``seed`` and ``keys`` (e.g. the k-th episode after ``seed``)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(2, np.uint64)[0] % 2**63)


def shape_signature(cfg: Config) -> dict[str, Any]:
    """The world's shape: the config's shape fields plus the feature and catalogue sizes
    (recorded with checkpoints; ``policies.sb3.check_shape`` compares them when loading)."""
    out = {name: getattr(cfg, name) for name in SHAPE_FIELDS}
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    out["factory_slot_count"] = cfg.factory_slot_count
    out["ranks_factories"] = cfg.ranks_factories
    out["feature_size"] = feature_size(cfg)
    out["catalogue_size"] = Catalogue(cfg).size
    return out


# What the feature vector's and the action catalogue's sizes and meanings depend on: batches
# (and networks) can only mix communities that agree on these. The factory slots, not the
# number of factories: a network trained in a world of 40 factories (8 slots, ranked) runs
# in one of 2,000.
NETWORK_FIELDS = ("factory_slot_count", "ranks_factories", "view_size", "gift_levels",
                  "feature_size", "catalogue_size")


def check_same_shape(cfgs: Sequence[Config], fields: Sequence[str], why: str) -> None:
    """Raise a ValueError naming the ``fields`` of ``shape_signature`` where a config
    differs from the first (``why`` says why they must agree)."""
    first = shape_signature(cfgs[0])
    for k, cfg in enumerate(cfgs[1:], 1):
        diff = {f: (first[f], v) for f, v in shape_signature(cfg).items()
                if f in fields and first[f] != v}
        if diff:
            raise ValueError(f"community {k} differs from community 0 in {diff} (0's value, "
                             f"{k}'s value): {why}")


class EpisodeSeeds:
    """The seeds of an env's successive episodes: ``next(seed)`` with a seed restarts the
    sequence from it; without one, the first episode plays ``default`` (or a fresh seed)
    and each later one ``derived_seed(base, k)``, so that ``reset(seed=s)`` followed by
    plain resets replays the same sequence of episodes."""

    def __init__(self, default: int | None = None) -> None:
        self.default = default
        self.base: int | None = None  # the last seed given (or the first used)
        self.since = 0  # episodes since that seed

    def next(self, seed: int | None = None) -> int:
        """The seed of the next episode (``seed`` if given)."""
        if seed is not None:
            self.base, self.since = int(seed), 0
        elif self.base is None:
            self.base = self.default if self.default is not None else fresh_seed()
            self.since = 0
        else:
            self.since += 1
        return self.base if self.since == 0 else derived_seed(self.base, self.since)


def policy_seed(seed: int | None, index: int) -> int:
    """The seed of the ``index``-th policy of a run with ``seed`` (its own stream)."""
    child = seed_streams(seed)["policies"].spawn(index + 1)[index]
    return int(child.generate_state(1, np.uint32)[0])


def assignment_rng(seed: int | None) -> np.random.Generator:
    """The stream that assigns founders to the policies of a mix."""
    return np.random.default_rng(seed_streams(seed)["assignment"])


@dataclass
class World:
    """Everything that lasts between days (see the module docstring)."""

    cfg: Config
    catalogue: Catalogue
    seed: int  # the seed of this episode's streams
    state: WorldState
    view: np.ndarray  # (N, V) int32 resident index per view slot, -1 empty
    dynamics: np.random.Generator  # the daily stream
    log: EventLog
    behaviours: behaviours.DailyCounts
    index_of: dict[str, int]  # agent name -> resident index, for the whole pool
    population_sum: int = 0  # living residents summed over days (for the running nAUP)

    @property
    def day(self) -> int:
        """Days completed."""
        return self.state.day

    @property
    def living(self) -> np.ndarray:
        """(K,) int64 indices of the living residents, in name order."""
        return self.state.alive.nonzero()[0]

    @property
    def done(self) -> bool:
        """The episode is over: the last day was played, or nobody is left."""
        return self.state.day >= self.cfg.max_days or not np.count_nonzero(self.state.alive)

    def observe(self, rows: np.ndarray, text: bool | None = None) -> Observation:
        """Features, masks, legal facts and (with ``text``) briefings of residents ``rows``.

        ``text`` defaults to the config's ``obs_mode``; ``cfg.briefing`` picks the briefing
        (``v2``, ``civa_env.world.briefing``, or ``v1``, ``perception.Briefer``). A resident
        who is no longer alive (one who starved today) gets a short notice as its briefing.
        """
        cfg, state = self.cfg, self.state
        rows = np.asarray(rows, np.int64)
        if text is None:
            text = cfg.obs_mode == "text"
        if len(rows) == 0:
            return Observation(rows, np.zeros((0, feature_size(cfg)), np.float32),
                               np.zeros((0, self.catalogue.size), np.int8),
                               LegalBook(state, self.view, cfg, rows, self.seed),
                               [] if text else None, state.day + 1, state.factory_slots[rows])
        feats = features(state, self.view, rows, inbox_count(state), cfg)
        masks = self.catalogue.mask(state, self.view, rows, cfg)
        legal = LegalBook(state, self.view, cfg, rows, self.seed)
        texts = None
        if text:
            briefer = (Briefer(state, self.view, cfg) if cfg.briefing == "v1"
                       else BrieferV2(state, self.view, cfg, self.seed, self.log))
            texts = [briefer.brief(i) if state.alive[i]
                     else f"You are {agent_name(i)}. You starved on day {state.day}."
                     for i in rows.tolist()]
        return Observation(rows, feats, masks, legal, texts, state.day + 1,
                           state.factory_slots[rows])


@dataclass(frozen=True)
class Observation:
    """What residents ``rows`` perceive before playing day ``day``."""

    rows: np.ndarray  # (K,) int64 resident indices
    features: np.ndarray  # (K, F) float32
    masks: np.ndarray  # (K, A) int8
    legal: LegalBook  # (K,) legal facts, each computed on first access
    texts: list[str] | None  # (K,) briefings, None when text is not rendered
    day: int  # the day about to be played
    factory_slots: np.ndarray  # (K, S) int32 the factory in each factory slot, -1 empty


@dataclass(frozen=True)
class Day:
    """What one day produced."""

    number: int  # the day played (1 = the first)
    before: WorldState  # the state at the start of the day
    after: WorldState  # the state at its end
    acted: np.ndarray  # (K,) int64 residents alive at the start of the day
    born: np.ndarray  # (B,) int64 newcomers of the day
    invalid: Mapping[int, list[str]]  # resident -> reasons its action was changed
    census: dict[str, Any]  # the day's census, with "behaviours" and the running "nAUP"
    truncated: bool  # the last day of the episode was played

    @property
    def died(self) -> np.ndarray:
        """(D,) int64 residents who starved today."""
        return self.acted[~self.after.alive[self.acted]]


def rewards(day: Day, cfg: Config) -> np.ndarray:
    """(K,) float64 reward of each resident of ``day.acted`` (``cfg.reward``): ``wealth``,
    the day's change in wealth; ``survival``, +1 alive and -1 at death; ``community``, the
    living count over ``n_agents``, shared (by each community, for a ``batch.BatchDay``)."""
    acted, after = day.acted, day.after
    if cfg.reward == "wealth":
        return after.wealth[acted] - day.before.wealth[acted]
    if cfg.reward == "survival":
        return np.where(after.alive[acted], 1.0, -1.0)
    n = after.n_per
    living = np.bincount(after.alive.nonzero()[0] // n, minlength=after.communities)
    return (living / cfg.n_agents)[acted // n]


def check_seed(seed: Any) -> int:
    """``seed`` as an int, or a ValueError naming it."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed)


def first_day(cfg: Config, seed: int) -> tuple[WorldState, np.ndarray, np.random.Generator]:
    """The state, view and daily stream of a fresh world of ``cfg`` and ``seed`` (what
    ``reset`` and a batch's reset of one community start from)."""
    state, view, gens = first_days(cfg, [seed])
    return state, view, gens[0]


# Where the streams a fresh world is drawn from sit among a seed's children
# (``seed_streams``): its founders' (world, values) and its days' (dynamics).
FRESH_STREAMS = tuple(STREAMS.index(s) for s in ("world", "values", "dynamics"))
DYNAMICS_STREAM = FRESH_STREAMS[2]


def first_days(cfg: Config, seeds: Sequence[int]
               ) -> tuple[WorldState, np.ndarray, list[np.random.Generator]]:
    """``first_day`` of each of ``seeds`` at once: the G fresh worlds as one batch state
    (``state.initial_states``; a lone state for one seed), their views ((G N, V), pool rows
    of that batch) and their daily streams. Each world draws from its own streams exactly
    what ``first_day`` draws alone (tests check it), and its view is the one it would have
    alone (the batch view keeps each community apart)."""
    # The children of ``seed_streams(seed)`` (what SeedSequence.spawn makes), only the three
    # used here, their seed sequences hashed in one pass (``seeding``). The world and values
    # streams are drawn once, for the founders, straight from their PCG64 seed words
    # (``state.seeded_states``: what ``initial_states`` draws from numpy's generators);
    # the daily stream is a numpy generator.
    words = seeding.seed_words(seeds, FRESH_STREAMS)  # (3, G, 4)
    state = seeded_states(cfg, np.stack([words[0], words[1]], axis=1))
    dynamics = seeding.generators_of(seeds, DYNAMICS_STREAM, words[2])
    if len(seeds) == 1:
        return state, compute_view(state, cfg, dynamics[0]), dynamics
    from civa_env.world.batch import StreamBatch

    return state, compute_view(state, cfg, StreamBatch(dynamics)), dynamics


def record(cfg: Config, log: EventLog, counts: behaviours.DailyCounts,
           chunk: tuple[dict[str, np.ndarray], dict[int, str]], new: WorldState,
           w0: np.ndarray, alive0: np.ndarray, population_sum: int) -> dict[str, Any]:
    """Take the day's census from the state after it (``new``), the day's events and the
    wealth and living at its start, with its behaviour counts and the running nAUP
    (``population_sum``: living summed over the days before), and append the day to
    ``log``; returns the census."""
    census = metrics.census(new, chunk[0], w0, alive0, cfg)
    log.append(chunk, census)
    census["behaviours"] = counts.day(*chunk, census, new.ever_gave)
    census["nAUP"] = (population_sum + census["population"]) / (cfg.max_days * cfg.n_agents)
    return census


def reset(cfg: Config, seed: int | None = None) -> World:
    """A fresh world for ``cfg``; ``seed`` defaults to ``cfg.seed``, and without either a
    fresh one is drawn and recorded in ``World.seed``."""
    if seed is None:
        seed = cfg.seed if cfg.seed is not None else fresh_seed()
    seed = check_seed(seed)
    state, view, dynamics = first_day(cfg, seed)
    return World(cfg=cfg, catalogue=Catalogue(cfg), seed=seed, state=state, view=view,
                 dynamics=dynamics, log=EventLog(),
                 behaviours=behaviours.DailyCounts(cfg.recent_days, cfg.deception_window),
                 index_of={agent_name(i): i for i in range(cfg.max_agents)})


def step(world: World, actions: Mapping[str, Any]) -> tuple[World, Day]:
    """Play one day: ``actions`` maps agent names to flat ids or structured dicts.

    Living residents without an action idle (flagged as invalid); actions of the dead are
    ignored; a name outside the pool raises a ValueError. See the module docstring.
    """
    if world.done:
        raise ValueError(f"the episode is over (day {world.day} of {world.cfg.max_days}, "
                         f"{int(world.state.alive.sum())} alive): call reset()")
    cfg, old = world.cfg, world.state
    batch = pack_actions(actions, old, world.view, world.catalogue, cfg, old.day + 1,
                         world.index_of)
    return play(world, batch)


def step_factored(world: World, acts: np.ndarray) -> tuple[World, Day]:
    """Play one day from factored actions (``civa_env.world.factored``): ``acts`` (N, C)
    ints, one row per name of the pool (rows of residents not alive are ignored).

    The array path of the vector API: no per-resident Python except for messages sent. The
    same day as ``step`` given each living resident's row (a test checks it).
    """
    if world.done:
        raise ValueError(f"the episode is over (day {world.day} of {world.cfg.max_days}, "
                         f"{int(world.state.alive.sum())} alive): call reset()")
    return play(world, factored_batch(world.state, world.view, acts, world.cfg,
                                      world.catalogue, "the pool"))


def factored_batch(state: WorldState, view: np.ndarray, acts: np.ndarray, cfg: Config,
                   catalogue: Catalogue, who: str) -> ActionBatch:
    """The validated ``ActionBatch`` of factored actions ``acts`` (one row per pool row;
    rows of names not alive are ignored); a shape error names ``who``."""
    acts = factored.check_shape(acts, state.n_pool, cfg, who)
    batch = ActionBatch.idle(state.n_pool)
    rows = state.alive.nonzero()[0]
    factored.decode(batch, rows, acts[rows], state, view, cfg, catalogue, state.day + 1)
    validate(batch, state, cfg)
    return batch


def play(world: World, batch: ActionBatch) -> tuple[World, Day]:
    """Play one day from an already packed and validated ``ActionBatch``."""
    cfg, old = world.cfg, world.state
    new, day_events = step_day(old, batch, world.dynamics, cfg)
    census = record(cfg, world.log, world.behaviours, day_events.freeze(), new, old.wealth,
                    old.alive, world.population_sum)
    world.population_sum += census["population"]
    world.state = new
    world.view = compute_view(new, cfg, world.dynamics)
    born = (new.alive & ~old.alive).nonzero()[0]
    day = Day(number=new.day, before=old, after=new, acted=old.alive.nonzero()[0], born=born,
              invalid=batch.invalid, census=census, truncated=new.day >= cfg.max_days)
    return world, day
