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
| Observation        | `Dict(text, features, action_mask)`                       |

Residents earn one scarce resource at factories, explore, invest, give, attack, form
alliances and message each other; they starve below zero wealth. The rules and their
defaults are in README "Rules" and in `Config`.

## Observation space
`text`: the resident's briefing (printable ASCII, at most `max_text_chars`; empty in
`obs_mode="numeric"`). `features`: float32 vector of `observe.feature_size(cfg)` values in
[-10, 10] (own facts, value condition, factories, one row per view slot). `action_mask`:
int8 over the flat catalogue.

## Action space
A flat id (see `actions.Catalogue`) or a structured dict (see `actions`), per resident.

## Rewards
`reward="wealth"` (default): the day's change in wealth. `"survival"`: +1 a day alive, -1 at
death. `"community"`: living count / n_agents, shared.

## Episode end
A resident is terminated when it starves; everyone is truncated after `max_days` days.

## Version history
* v0: first release (rules version 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from civa_env.envs.spaces import observation_space, structured_action_space
from civa_env.world import behaviours, metrics
from civa_env.world.actions import pack_actions
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.events import EventLog, agent_name
from civa_env.world.perception import Briefer, compute_view, features, inbox_count
from civa_env.world.rules import step_day
from civa_env.world.state import WorldState, initial_state
from civa_env.world.values import ValueCondition

STATE_BOUND = 1e6


class CivaEnv(ParallelEnv):
    """The CIVA community as a PettingZoo ``ParallelEnv``; see the module docstring."""

    metadata = {"name": "civa_v0", "render_modes": ["ansi", "human"], "is_parallelizable": True}

    def __init__(self, config: Config | None = None, **kwargs: Any) -> None:
        """Build from a ``Config`` and/or keyword overrides of its fields."""
        self.cfg = config.replace(**kwargs) if config is not None else Config.from_kwargs(**kwargs)
        cfg = self.cfg
        self.render_mode = cfg.render_mode
        self.possible_agents = [agent_name(i) for i in range(cfg.max_agents)]
        self._index_of = {name: i for i, name in enumerate(self.possible_agents)}
        self.catalogue = Catalogue(cfg)
        self._observation_space = observation_space(cfg, self.catalogue)
        self._action_space = spaces.Discrete(self.catalogue.size)
        n, m = cfg.max_agents, cfg.n_factories
        self.state_space = spaces.Box(-STATE_BOUND, STATE_BOUND, shape=(n * (4 + m) + m + 1,),
                                      dtype=np.float32)
        self.agents: list[str] = []
        self.world: WorldState | None = None
        self.view = np.full((n, cfg.view_size), -1, np.int32)
        self.log = EventLog()
        self._behaviours: behaviours.DailyCounts | None = None  # made by reset()
        self._population_sum = 0  # living residents summed over days (for the running nAUP)
        self._rng: np.random.Generator | None = None

    # ---- spaces -------------------------------------------------------------------------------
    # The same space objects every call, as PettingZoo requires (built once in __init__; no
    # functools.lru_cache, which would keep every env ever built alive).
    def observation_space(self, agent: str) -> spaces.Dict:
        """Observation space (the same object for every resident)."""
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Discrete:
        """Flat action space (the structured form is also accepted by ``step``)."""
        return self._action_space

    def structured_action_space(self, agent: str | None = None) -> spaces.Dict:
        """The structured action form as a gymnasium space (targets as view slots)."""
        return structured_action_space(self.cfg)

    # ---- episode -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None,
              options: dict | None = None) -> tuple[dict[str, dict], dict[str, dict]]:
        """Start an episode. ``seed`` defaults to the config's seed on the first reset."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        elif self._rng is None:
            self._rng = np.random.default_rng(self.cfg.seed)
        self.world = initial_state(self.cfg, self._rng)
        self.log = EventLog()
        self._behaviours = behaviours.DailyCounts(self.cfg.recent_days, self.cfg.deception_window)
        self._population_sum = 0
        living = self.world.alive.nonzero()[0]
        self.agents = [self.possible_agents[i] for i in living]
        obs, infos = self._observe(living, {}, None)
        return obs, infos

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """Play one day for everyone; see the module docstring for the dicts returned."""
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        if not self.agents:
            return {}, {}, {}, {}, {}
        cfg, old = self.cfg, self.world
        batch = pack_actions(actions, old, self.view, self.catalogue, cfg, old.day + 1,
                             self._index_of)
        new, day_events = step_day(old, batch, self._rng, cfg)
        self.world = new
        chunk = day_events.freeze()
        census = metrics.census(new, chunk[0], old.wealth, old.alive, cfg)
        self.log.append(chunk, census)
        census["behaviours"] = self._behaviours.day(*chunk, census, new.ever_gave)
        self._population_sum += census["population"]
        census["nAUP"] = self._population_sum / (cfg.max_days * cfg.n_agents)

        acted = old.alive.nonzero()[0]
        truncated = new.day >= cfg.max_days
        # Newcomers join the dicts to get their first observation; one born on the last day
        # never acts, so it is left out (it still counts in the census).
        born = (new.alive & ~old.alive).nonzero()[0] if not truncated else np.empty(0, int)
        rows = np.concatenate([acted, born])
        dead = ~new.alive[acted]
        names = self.possible_agents
        rewards = self._rewards(old, new, acted)
        terminations = {names[i]: bool(d) for i, d in zip(acted.tolist(), dead.tolist(),
                                                           strict=True)}
        terminations.update({names[i]: False for i in born.tolist()})
        truncations = dict.fromkeys((names[i] for i in rows.tolist()), truncated)
        for i in born.tolist():
            rewards[names[i]] = 0.0
        obs, infos = self._observe(rows, batch.invalid, census)
        living = new.alive.nonzero()[0]
        self.agents = [] if truncated else [names[i] for i in living]
        if self.render_mode == "human":
            self.render()
        return obs, rewards, terminations, truncations, infos

    def _rewards(self, old: WorldState, new: WorldState, acted: np.ndarray) -> dict[str, float]:
        names = self.possible_agents
        if self.cfg.reward == "wealth":
            values = new.wealth[acted] - old.wealth[acted]
        elif self.cfg.reward == "survival":
            values = np.where(new.alive[acted], 1.0, -1.0)
        else:
            values = np.full(len(acted), new.alive.sum() / self.cfg.n_agents)
        return {names[i]: float(r) for i, r in zip(acted.tolist(), values.tolist(), strict=True)}

    def _observe(self, rows: np.ndarray, invalid: dict[int, list[str]],
                 census: dict[str, Any] | None) -> tuple[dict[str, dict], dict[str, dict]]:
        world, cfg = self.world, self.cfg
        self.view = compute_view(world, cfg, self._rng)
        text_mode = cfg.obs_mode == "text"
        briefer = Briefer(world, self.view, cfg) if text_mode else None
        feats = features(world, self.view, rows, inbox_count(world), cfg)
        masks = self.catalogue.mask(world, self.view, rows, cfg)
        names = self.possible_agents
        if not text_mode:
            # The common case as comprehensions (iterating feats and masks gives their rows).
            keys = [names[i] for i in rows.tolist()]
            obs = {name: {"text": "", "features": f, "action_mask": m}
                   for name, f, m in zip(keys, feats, masks, strict=True)}
            if census is None:
                infos = {name: {"invalid": invalid.get(i, [])}
                         for name, i in zip(keys, rows.tolist(), strict=True)}
            else:
                infos = {name: {"invalid": invalid.get(i, []), "community": census}
                         for name, i in zip(keys, rows.tolist(), strict=True)}
            return obs, infos
        obs: dict[str, dict] = {}
        infos: dict[str, dict] = {}
        for k, i in enumerate(rows.tolist()):
            name = names[i]
            text = (briefer.brief(i) if world.alive[i]
                    else f"You are resident_{i}. You starved on day {world.day}.")
            obs[name] = {"text": text, "features": feats[k], "action_mask": masks[k]}
            info = {"invalid": invalid.get(i, [])}
            if census is not None:
                info["community"] = census
            if world.alive[i]:
                info["legal"] = self.legal(i, briefer.allies_of)
            infos[name] = info
        return obs, infos

    def legal(self, i: int, allies_of: dict[int, list[int]] | None = None) -> dict[str, Any]:
        """What resident ``i`` may do now, for policies that build structured actions.

        ``allies_of`` (resident -> allies) saves a search when called for everyone.
        """
        world, cfg = self.world, self.cfg
        seen = self.view[i]
        if allies_of is not None:
            allies = allies_of.get(i, [])
        else:
            pairs = world.allies
            allies = np.concatenate([pairs[pairs[:, 0] == i, 1], pairs[pairs[:, 1] == i, 0]])
            allies = allies.tolist()
        return {
            "factories": np.flatnonzero(world.known[i]).tolist(),
            "targets": [self.possible_agents[j] for j in seen[seen >= 0].tolist()],
            "allies": [self.possible_agents[j] for j in sorted(allies)],
            "wealth": float(world.wealth[i]),
            "can_upgrade": bool(world.wealth[i] >= cfg.upgrade_cost),
            "max_messages": cfg.max_messages,
            "max_message_chars": cfg.max_message_chars,
        }

    # ---- inspection ------------------------------------------------------------------------
    def state(self) -> np.ndarray:
        """Global state: alive, wealth, skill, condition code, known factories per name,
        then capacities and the day, as float32 of ``state_space``'s shape."""
        if self.world is None:
            raise RuntimeError("call reset() before state()")
        w = self.world
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
        w = self.world
        if w is None:
            return "CIVA: not started (call reset())"
        living = np.flatnonzero(w.alive)
        wealth = w.wealth[living]
        head = (f"CIVA day {w.day}/{self.cfg.max_days}: {len(living)} alive, "
                f"wealth total {wealth.sum():.1f}, Gini {metrics.gini(wealth):.2f}, "
                f"{len(w.allies)} alliances")
        lines = [head]
        fac = "  ".join(f"f{m}:{w.capacity[m]:.0f}/{w.workers[m]}w"
                        + ("!" if w.outage[m] else "") for m in range(self.cfg.n_factories))
        lines.append("factories (capacity/workers): " + fac)
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
