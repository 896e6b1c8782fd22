# noqa: D212, D415
"""
# CIVA community

| Import             | `import civa_env; env = civa_env.parallel_env()`          |
|--------------------|-----------------------------------------------------------|
| Actions            | Discrete (flat catalogue) or structured dict              |
| Parallel API       | Yes (native); AEC via `civa_env.env()`                    |
| Agents             | `agents = ["resident_0", ..., "resident_24"]`             |
| Possible agents    | `max_agents` names (default 4 x n_agents)                 |
| Action shape       | `Discrete(catalogue.size)` (1573 at the defaults)         |
| Observation        | `Dict(text, features, action_mask)`; `Box` in `features` mode |

Residents earn one scarce resource at factories, explore, invest, give, attack, form
alliances and message each other; they starve below zero wealth. The rules and their
defaults are in README "Rules" and in `Config`.

## Observation space
`text`: the resident's briefing (printable ASCII, at most `max_text_chars`; empty in
`obs_mode="numeric"`). `features`: float32 vector of `features.feature_size(cfg)` values in
[-10, 10] (named channels: own facts, value condition, factories, one row per view slot).
`action_mask`: int8 over the flat catalogue.

`obs_mode="features"` (the fixed slots of SuperSuit's vector envs, docs/rl.md): the
observation is the `features` `Box` alone (no `Text`), the mask is `infos[agent]
["action_mask"]`, and `agents` holds every name of the pool from `reset` on: a name no
resident has taken yet is *vacant* (zero features, a mask of `idle` only, `infos[agent]
["vacant"]`, reward 0, never terminated, its action ignored) until a newcomer takes it. A
resident who starves is terminated and leaves `agents` as in the other modes; at the end
every remaining name is truncated. `living_agents` names the living residents in every mode.

## Infos
`infos[agent]`: `invalid` (reasons its last action was changed), `day` (the day about to be
played), `legal` (for the living, in every observation mode: known factories, targets by
view slot, allies, wealth, message limits; computed on first access) and, after a step,
`community` (the day's census).

## Action space
A flat id (see `world.catalogue.Catalogue`) or a structured dict (see `world.actions`), per
resident.

## Rewards
`reward="wealth"` (default): the day's change in wealth. `"survival"`: +1 a day alive, -1 at
death. `"community"`: living count / n_agents, shared.

## Episode end
A resident is terminated when it starves; everyone is truncated after `max_days` days.

## Version history
* v0: first release (rules version 1).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from civa_env import world as world_fn
from civa_env.envs.spaces import observation_space, structured_action_space
from civa_env.world import metrics
from civa_env.world.actions import check_actions
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.day import Day, EpisodeSeeds, World, rewards
from civa_env.world.events import EventLog, agent_name
from civa_env.world.kinds import Primary
from civa_env.world.perception import legal
from civa_env.world.values import ValueCondition

STATE_BOUND = 1e6
# Most factories ``render`` lists (the first ones by number).
RENDER_FACTORIES = 12


class CivaEnv(ParallelEnv):
    """The CIVA community as a PettingZoo ``ParallelEnv``; see the module docstring.

    A thin adapter over ``civa_env.world``: ``reset`` calls ``world.reset``, ``step`` calls
    ``world.step`` and turns the ``Day`` into PettingZoo's dicts. ``self.world`` is the
    ``World`` (state, view, random streams, event log).
    """

    metadata = {"name": "civa_v0", "render_modes": ["ansi", "human"], "is_parallelizable": True}

    def __init__(self, config: Config | None = None, **kwargs: Any) -> None:
        """Build from a ``Config`` and/or keyword overrides of its fields."""
        self.cfg = config.replace(**kwargs) if config is not None else Config.from_kwargs(**kwargs)
        cfg = self.cfg
        self.render_mode = cfg.render_mode
        self.possible_agents = [agent_name(i) for i in range(cfg.max_agents)]
        self.catalogue = Catalogue(cfg)
        self._observation_space = observation_space(cfg, self.catalogue)
        self._action_space = spaces.Discrete(self.catalogue.size)
        self.agents: list[str] = []
        # features mode: every pool name is an agent; the vacant ones (no resident yet) are
        # padded (docs/rl.md "Names and deaths").
        self._slots = cfg.obs_mode == "features"
        self._vacant = np.empty(0, np.int64)
        self._idle_mask = np.zeros(self.catalogue.size, np.int8)
        self._idle_mask[self.catalogue.encode(Primary.IDLE)] = 1
        self.world: World | None = None
        self._seeds = EpisodeSeeds(cfg.seed)

    # ---- spaces -------------------------------------------------------------------------------
    # The same space objects every call, as PettingZoo requires (built once in __init__; no
    # functools.lru_cache, which would keep every env ever built alive).
    def observation_space(self, agent: str) -> spaces.Dict | spaces.Box:
        """Observation space (the same object for every resident; a ``Box`` in features
        mode)."""
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Discrete:
        """Flat action space (the structured form is also accepted by ``step``)."""
        return self._action_space

    def structured_action_space(self, agent: str | None = None) -> spaces.Dict:
        """The structured action form as a gymnasium space (targets as view slots)."""
        return structured_action_space(self.cfg)

    @property
    def living_agents(self) -> list[str]:
        """Names of the living residents (``agents`` also holds the vacant names in features
        mode)."""
        if self.world is None or self.world.done:
            return []
        return [self.possible_agents[i] for i in self.world.living.tolist()]

    @property
    def log(self) -> EventLog:
        """The episode's event log."""
        return self.world.log if self.world is not None else EventLog()

    # ---- episode -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None,
              options: dict | None = None) -> tuple[dict[str, dict], dict[str, dict]]:
        """Start an episode with ``seed``. Without one: the config's seed (or a fresh one) on
        the first reset, then seeds derived from the last seed given and the number of
        resets since, so that ``reset(seed=s)`` followed by plain resets replays the same
        sequence of episodes."""
        seed = self._seeds.next(seed)
        self.world = world_fn.reset(self.cfg, seed)
        living = self.world.living
        self.agents = [self.possible_agents[i] for i in living.tolist()]
        if self._slots:
            self._vacant = np.flatnonzero(~self.world.state.alive)
            self.agents = list(self.possible_agents)
        return self._observe(living, {}, None)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Play one day for everyone; see the module docstring for the dicts returned."""
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        check_actions(actions)  # a ValueError for a list or None, also after the last day
        if not self.agents:
            return {}, {}, {}, {}, {}
        self.world, day = world_fn.step(self.world, actions)
        names = self.possible_agents
        # Newcomers join the dicts to get their first observation; one born on the last day
        # never acts, so it is left out (it still counts in the census).
        # In features mode the newcomer's name was already an agent (vacant) and stays in.
        born = day.born if not day.truncated or self._slots else np.empty(0, np.int64)
        rows = np.concatenate([day.acted, born])
        rewards = self._rewards(day)
        rewards.update({names[i]: 0.0 for i in born.tolist()})
        dead = ~day.after.alive[day.acted]
        terminations = {names[i]: bool(d) for i, d in zip(day.acted.tolist(), dead.tolist(),
                                                           strict=True)}
        terminations.update({names[i]: False for i in born.tolist()})
        truncations = dict.fromkeys((names[i] for i in rows.tolist()), day.truncated)
        if self._slots:
            self._vacant = np.setdiff1d(self._vacant, born, assume_unique=True)
            vacant = [names[i] for i in self._vacant.tolist()]
            rewards.update(dict.fromkeys(vacant, 0.0))
            terminations.update(dict.fromkeys(vacant, False))
            truncations.update(dict.fromkeys(vacant, self.world.done))  # end or extinction
        obs, infos = self._observe(rows, day.invalid, day.census)
        self.agents = [] if day.truncated else [names[i] for i in self.world.living.tolist()]
        if self._slots and not self.world.done:
            self.agents = [names[i] for i in np.union1d(self.world.living, self._vacant).tolist()]
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminations, truncations, infos

    def _rewards(self, day: Day) -> dict[str, float]:
        names, values = self.possible_agents, rewards(day, self.cfg)
        return {names[i]: float(r) for i, r in zip(day.acted.tolist(), values.tolist(),
                                                    strict=True)}

    def _observe(self, rows: np.ndarray, invalid: dict[int, list[str]],
                 census: dict[str, Any] | None) -> tuple[dict[str, dict], dict[str, dict]]:
        seen = self.world.observe(rows)
        names = self.possible_agents
        keys = [names[i] for i in rows.tolist()]
        texts = seen.texts if seen.texts is not None else [""] * len(keys)
        obs = {name: {"text": t, "features": f, "action_mask": m}
               for name, t, f, m in zip(keys, texts, seen.features, seen.masks, strict=True)}
        # The living get their legal facts (each computed on first access); a resident who
        # starved today gets its last observation only.
        alive = self.world.state.alive[rows].tolist()
        legal = seen.legal.all()
        day, get = seen.day, invalid.get
        infos = {name: {"invalid": get(i, []), "day": day, "legal": lf} if live
                 else {"invalid": get(i, []), "day": day}
                 for name, i, live, lf in zip(keys, rows.tolist(), alive, legal, strict=True)}
        if self._slots:  # the features alone; the mask moves to the infos; vacant names
            obs = {name: ob["features"] for name, ob in obs.items()}
            for name, m in zip(keys, seen.masks, strict=True):
                infos[name]["action_mask"] = m
            for name in (names[i] for i in self._vacant.tolist()):
                obs[name] = np.zeros(self._observation_space.shape, np.float32)
                infos[name] = {"invalid": [], "day": day, "vacant": True,
                               "action_mask": self._idle_mask.copy()}
        if census is not None:
            for info in infos.values():
                info["community"] = census
        return obs, infos

    def legal(self, i: int) -> dict[str, Any]:
        """What resident ``i`` may do now (``perception.legal``)."""
        return legal(self.world.state, self.world.view, self.cfg, i, self.world.seed)

    # ---- inspection ------------------------------------------------------------------------
    @cached_property
    def state_space(self) -> spaces.Box:
        """The space of ``state()``: N (4 + M) + M + 1 floats (built on first use: with
        factories growing with the community it holds N x M entries, 80 million at 10,000
        founders)."""
        n, m = self.cfg.max_agents, self.cfg.n_factories
        return spaces.Box(-STATE_BOUND, STATE_BOUND, shape=(n * (4 + m) + m + 1,),
                          dtype=np.float32)

    def state(self) -> np.ndarray:
        """Global state: alive, wealth, skill, condition code, known factories per name,
        then capacities and the day, as float32 of ``state_space``'s shape."""
        if self.world is None:
            raise RuntimeError("call reset() before state()")
        w = self.world.state
        per_resident = np.concatenate([w.alive[:, None], w.wealth[:, None], w.skill[:, None],
                                       w.condition[:, None], w.known], axis=1)
        out = np.concatenate([per_resident.ravel(), w.capacity, [w.day]])
        return np.clip(out, -STATE_BOUND, STATE_BOUND).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """Episode metrics so far (``metrics.summarize`` of the log)."""
        return metrics.summarize(self.log, self.cfg)

    def render(self) -> str | None:
        """A compact text picture of the community (``ansi`` returns it, ``human`` prints)."""
        if self.render_mode is None:
            return None
        text = self._picture()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def _picture(self, rows: int = 20) -> str:
        if self.world is None:
            return "CIVA: not started (call reset())"
        w = self.world.state
        living = np.flatnonzero(w.alive)
        wealth = w.wealth[living]
        head = (f"CIVA day {w.day}/{self.cfg.max_days}: {len(living)} alive, "
                f"wealth total {wealth.sum():.1f}, Gini {metrics.gini(wealth):.2f}, "
                f"{len(w.allies)} alliances")
        lines = [head]
        shown = min(self.cfg.n_factories, RENDER_FACTORIES)
        fac = "  ".join(f"f{m}:{w.capacity[m]:.0f}/{w.workers[m]}w"
                        + ("!" if w.outage[m] else "") for m in range(shown))
        more = self.cfg.n_factories - shown
        lines.append("factories (capacity/workers): " + fac
                     + (f"  (and {more} more)" if more else ""))
        order = living[np.argsort(-wealth, kind="stable")]
        top = max(float(wealth.max()) if len(wealth) else 1.0, 1.0)
        n_allies = np.bincount(w.allies.ravel(), minlength=w.n_pool)
        for i in order[:rows].tolist():
            bar = "#" * int(round(20 * max(w.wealth[i], 0.0) / top))
            cond = str(ValueCondition.from_code(w.condition[i]))
            lines.append(f"{self.possible_agents[i]:>13} {w.wealth[i]:7.1f} {bar:<20} "
                         f"allies {n_allies[i]:<2} {cond}")
        if len(order) > rows:
            lines.append(f"... and {len(order) - rows} more")
        return "\n".join(lines)

    def close(self) -> None:
        """Nothing to release."""


def parallel_env(config: Config | None = None, **kwargs: Any) -> CivaEnv:
    """The CIVA ``ParallelEnv`` (keyword arguments override ``Config`` fields)."""
    return CivaEnv(config, **kwargs)


def raw_env(config: Config | None = None, **kwargs: Any) -> AECEnv:
    """The AEC form, through PettingZoo's ``parallel_to_aec``."""
    return parallel_to_aec(parallel_env(config, **kwargs))


env = raw_env
