"""Numeric wrappers for single-agent RL libraries (stable-baselines3, sb3-contrib).

CIVA is a ``ParallelEnv`` whose residents die mid-episode and whose newcomers appear under
fresh names; SB3 wants a fixed number of slots with ``Box`` observations and a flat
``Discrete`` action. ``CivaVecEnv`` bridges the two with *parameter sharing*: one policy acts
for many residents, each resident is one slot of an SB3 ``VecEnv``.

* Several CIVA communities (``n_envs``, possibly with different configs that agree on the
  shape fields) run in one ``VecEnv``. Each community has ``seats`` learner slots.
* Observation: the ``features`` vector as a ``Box``. Action: the flat catalogue id
  (``Discrete``, ``action_mode="flat"``), or the factored action (``action_mode="factored"``:
  a ``MultiDiscrete`` of ``civa_env.world.factored``, with the cheap-talk message columns, so
  learners can message); ``action_masks()`` (and ``env_method("action_masks")``, which is what
  sb3-contrib's ``MaskablePPO`` calls on a ``VecEnv``) give the per-slot masks (the
  concatenated component masks in factored mode).
* A fraction ``learner_fraction`` of each community's residents is controlled by the
  learner; the others by a ``background`` policy (scripted or random residents: the
  learner's neighbours), batched over all communities in one ``act`` call a day.
* Death: a seat whose resident starves ends its episode (``done``, ``terminal_observation``
  in ``infos``). A newcomer inherits its parent's controller; a learner newcomer takes a
  vacant seat (its first observation is the seat's next observation, as after an
  auto-reset), or goes to the background policy when every seat is taken. A vacant seat is
  padded "black death" style: zero features, a mask that allows only ``idle``, zero
  reward, until the community's episode ends.
* Truncation at ``max_days`` sets ``TimeLimit.truncated`` so SB3 bootstraps the value;
  a death is a true termination (unlike SuperSuit's ``black_death``, which cannot tell them
  apart). When a community ends (last day or extinction) every seat is done and the
  community resets with a fresh seed.
* Padding is not learned from: ``SeatedRolloutBuffer`` (``civa_env.envs.sb3_buffer``;
  ``maskable_ppo(venv, ...)`` builds a MaskablePPO with it) keeps only the transitions of
  seated slots in its minibatches, telling a vacant seat by its mask (only the "nothing"
  value of each component); ``last_seated`` says which slots held a resident when the last
  actions were taken. Its ``"MlpPolicy"`` is ``civa_env.envs.sb3_policy.FactoredMlpPolicy``,
  sb3-contrib's with a cheaper masked MultiDiscrete head (the same numbers to the bit).

To compare trained residents with others in whole communities, use the step loop
(``civa_env.experiments.runner.run_communities`` with ``policies={label: policy}``, no run folders):
``baselines/train_ppo.py`` does so in its evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from civa_env import world as world_fn
from civa_env.experiments.runner import assign_policies
from civa_env.policies.base import Policy, make_policy
from civa_env.policies.batch import Batch
from civa_env.world import factored, metrics
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import SHAPE_FIELDS, Config
from civa_env.world.day import Day, World, assignment_rng, check_same_shape, derived_seed
from civa_env.world.day import rewards as day_rewards
from civa_env.world.events import agent_name
from civa_env.world.features import FEATURE_CLIP, feature_size
from civa_env.world.kinds import Primary

try:  # SB3 is an optional extra: without it the VecEnv is a plain class with the same API.
    from stable_baselines3.common.vec_env import VecEnv as _VecEnvBase
except ModuleNotFoundError:  # pragma: no cover - exercised only without the rl extra
    _VecEnvBase = object

UNSET = -1  # controller of a name not yet born
ACTION_MODES = ("flat", "factored")


def default_background() -> str:
    """``scripted`` when that policy is installed, else ``random``."""
    from civa_env.policies.base import available_policies

    return "scripted" if "scripted" in available_policies() else "random"


def idle_action(catalogue: Catalogue) -> int:
    """Flat id of ``idle`` with no secondary action (always valid)."""
    return catalogue.encode(Primary.IDLE)


def _as_config(cfg: Config | Mapping[str, Any] | None, **overrides: Any) -> Config:
    if cfg is None:
        return Config.from_kwargs(**overrides)
    if isinstance(cfg, Mapping):
        return Config.from_kwargs(**{**cfg, **overrides})
    return cfg.replace(**overrides) if overrides else cfg


class CivaVecEnv(_VecEnvBase):
    """CIVA communities as one SB3 ``VecEnv`` of learner seats (see the module docstring).

    Args:
        configs: a ``Config`` (or dict of fields) used for every community, or one per
            community; they must agree on the shape fields.
        n_envs: number of communities when ``configs`` is a single config.
        learner_fraction: share of each community's founders the learner controls.
        background: policy (or spec such as ``"scripted"``, ``"random"``) for the others;
            default ``scripted`` if installed, else ``random``.
        seats: learner slots per community; default = the learner's founders.
        seed: seeds the communities' episodes and the controller draws.
        action_mode: ``"flat"`` (a ``Discrete`` catalogue id) or ``"factored"`` (a
            ``MultiDiscrete`` factored action, messages included).
    """

    def __init__(self, configs: Config | Mapping[str, Any] | Sequence[Config | Mapping[str, Any]]
                 | None = None, n_envs: int = 1, *, learner_fraction: float = 1.0,
                 background: Policy | str | None = None, seats: int | None = None,
                 seed: int = 0, obs_mode: str = "numeric",
                 action_mode: str = "flat") -> None:
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        self.action_mode = action_mode
        if configs is None or isinstance(configs, (Config, Mapping)):
            configs = [configs] * n_envs
        cfgs = [_as_config(c, obs_mode=obs_mode) for c in configs]
        if not cfgs:
            raise ValueError("need at least one community")
        check_same_shape(cfgs, SHAPE_FIELDS, "one policy needs one shape")
        if not 0.0 < learner_fraction <= 1.0:
            raise ValueError(f"learner_fraction must be in (0, 1], got {learner_fraction}")
        self.cfgs = cfgs
        self.worlds: list[World] = [world_fn.reset(c, c.seed) for c in cfgs]
        self.catalogue = self.worlds[0].catalogue
        self.learner_fraction = float(learner_fraction)
        founders = [max(1, round(learner_fraction * c.n_agents)) for c in cfgs]
        self.seats = int(seats) if seats is not None else max(founders)
        if self.seats < 1:
            raise ValueError("seats must be >= 1")
        if isinstance(background, Policy):
            self.background = background
        else:
            self.background = make_policy(background or default_background())
        self.background.reset(cfgs[0], seed=seed)
        self.n_communities = len(cfgs)
        self._episode = [0] * len(cfgs)  # keeps background keys of successive episodes apart
        self.render_mode = None
        n_slots = self.n_communities * self.seats
        self.n_features = feature_size(cfgs[0])
        obs_space = spaces.Box(-FEATURE_CLIP, FEATURE_CLIP, shape=(self.n_features,),
                               dtype=np.float32)
        self.spec = factored.FactoredSpec.of(cfgs[0])
        if action_mode == "flat":
            act_space: spaces.Space = spaces.Discrete(self.catalogue.size)
            mask_size = self.catalogue.size
            self._idle_mask = np.zeros(mask_size, bool)
            self._idle_mask[idle_action(self.catalogue)] = True
        else:
            act_space = spaces.MultiDiscrete(self.spec.nvec)
            mask_size = self.spec.mask_size
            self._idle_mask = self.spec.nothing_mask().astype(bool)
        if _VecEnvBase is object:  # pragma: no cover
            self.num_envs, self.observation_space, self.action_space = n_slots, obs_space, act_space
            self._seeds = [None] * n_slots
        else:
            super().__init__(n_slots, obs_space, act_space)
        self._base_seed = int(seed)  # episodes of community e: derived_seed(base, e, k)
        pool = max(c.max_agents for c in cfgs)
        self._controller = np.full((self.n_communities, pool), UNSET, np.int8)  # 0 learner, 1 bg
        self._occupant = np.full((self.n_communities, self.seats), -1, np.int64)  # resident
        self._obs = np.zeros((n_slots, self.n_features), np.float32)
        self._masks = np.zeros((n_slots, mask_size), bool)
        self.last_seated = np.zeros(n_slots, bool)
        """Which slots held a resident when the last actions were taken (the others were
        padding: ``SeatedRolloutBuffer`` leaves them out of training)."""
        self._ep_return = np.zeros(n_slots)
        self._ep_len = np.zeros(n_slots, np.int64)
        self._actions: np.ndarray | None = None
        self._t0 = time.time()
        self.finished_communities: list[dict[str, Any]] = []
        """Summaries (nAUP, SC, ED, IC, CC, ...) of communities whose episode ended;
        training scripts drain this list for logging."""
        self.total_steps = 0
        """Resident-days played in all communities (learner and background)."""
        self.learner_steps = 0
        """Decisions of seated learner residents (slot-steps minus padding)."""

    # ---- SB3 VecEnv API --------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        """Reset every community (seeds from ``seed()`` if set, else the internal stream)."""
        for e in range(self.n_communities):
            self._reset_community(e, self._seeds[e * self.seats])
        self._reset_seeds()
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        """Store the learner's actions (one flat id, or one factored row, per slot)."""
        shape = (self.num_envs,) if self.action_mode == "flat" else (
            self.num_envs, factored.N_COMPONENTS)
        self._actions = np.asarray(actions).reshape(shape)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        """One day in every community; see the module docstring for dones and padding."""
        assert self._actions is not None, "step_async must come before step_wait"
        actions = self._actions.tolist() if self.action_mode == "flat" else self._actions
        self.last_seated = (self._occupant >= 0).ravel()
        bg_actions = self._background_actions()
        rewards = np.zeros(self.num_envs, np.float32)
        dones = np.zeros(self.num_envs, bool)
        infos_out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for e in range(self.n_communities):
            day_actions = self._day_actions(e, actions, bg_actions)
            self.worlds[e], day = world_fn.step(self.worlds[e], day_actions)
            self.total_steps += len(day_actions)
            self._update_seats(e, day, rewards, dones, infos_out)
            self._seat_newcomers(e, day.born)
            if self.worlds[e].done:  # last day or extinction
                self._end_community(e, dones, infos_out)
        return self._obs.copy(), rewards, dones, infos_out

    def _background_actions(self) -> dict[Hashable, Any]:
        """Background residents of all communities decide in one batched call."""
        parts = []
        for e, world in enumerate(self.worlds):
            living = world.living
            rows = living[self._controller[e, living] == 1]
            if len(rows) == 0:
                continue
            seen = world.observe(rows, text=False)
            keys = [(e, self._episode[e], agent_name(i)) for i in rows.tolist()]
            parts.append(Batch.from_seen(seen, keys))
        return self.background.act(Batch.concat(parts)) if parts else {}

    def _day_actions(self, e: int, actions: list[int] | np.ndarray,
                     bg_actions: Mapping[Hashable, Any]) -> dict[str, Any]:
        """Community ``e``'s actions: the seated learners' and the background's."""
        out: dict[str, Any] = {}
        base = e * self.seats
        flat = self.action_mode == "flat"
        for k, i in enumerate(self._occupant[e].tolist()):
            if i >= 0:
                out[agent_name(i)] = int(actions[base + k]) if flat else actions[base + k]
                self.learner_steps += 1
        for i in self.worlds[e].living.tolist():
            key = (e, self._episode[e], agent_name(i))
            if key in bg_actions:
                out[agent_name(i)] = bg_actions[key]
        return out

    def _update_seats(self, e: int, day: Day, rewards: np.ndarray, dones: np.ndarray,
                      infos_out: list[dict[str, Any]]) -> None:
        """Rewards, dones and next observations of community ``e``'s seats."""
        base = e * self.seats
        reward_of = dict(zip(day.acted.tolist(), day_rewards(day, self.cfgs[e]).tolist(),
                             strict=True))
        occupied = [(k, i) for k, i in enumerate(self._occupant[e].tolist()) if i >= 0]
        seen = self.worlds[e].observe(np.array([i for _, i in occupied], np.int64), text=False)
        masks = self._masks_of(e, seen)
        for k in range(self.seats):
            if self._occupant[e, k] < 0:  # vacant seat: black-death padding
                self._show(base + k, None)
        for r, (k, i) in enumerate(occupied):
            slot = base + k
            reward = reward_of[i]
            rewards[slot] = reward
            self._ep_return[slot] += reward
            self._ep_len[slot] += 1
            dead = not day.after.alive[i]
            if dead or day.truncated:
                dones[slot] = True
                info = infos_out[slot]
                info["terminal_observation"] = seen.features[r].copy()
                info["TimeLimit.truncated"] = day.truncated and not dead
                info["episode"] = {"r": float(self._ep_return[slot]),
                                   "l": int(self._ep_len[slot]),
                                   "t": round(time.time() - self._t0, 6)}
                self._ep_return[slot] = 0.0
                self._ep_len[slot] = 0
                self._occupant[e, k] = -1
                self._show(slot, None)
            else:
                self._show(slot, (seen.features[r], masks[r]))

    def _end_community(self, e: int, dones: np.ndarray, infos_out: list[dict[str, Any]]) -> None:
        """Every seat of community ``e`` is done; log its summary and start a new episode."""
        base = e * self.seats
        for k in range(self.seats):
            slot = base + k
            if not dones[slot]:  # a seat vacant since a death ends its padding run
                dones[slot] = True
                infos_out[slot]["terminal_observation"] = np.zeros(self.n_features, np.float32)
                infos_out[slot]["TimeLimit.truncated"] = True
        summary = scalar_summary(metrics.summarize(self.worlds[e].log, self.cfgs[e]))
        summary["community"] = e
        self.finished_communities.append(summary)
        self._reset_community(e, None)

    def action_masks(self) -> np.ndarray:
        """(num_envs, catalogue size) bool: the valid flat ids of each slot now."""
        return self._masks.copy()

    def close(self) -> None:
        """Close the background policy."""
        self.background.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """Attribute per slot: the VecEnv's own, else the slot's community's."""
        slots = self._indices(indices)
        if hasattr(self, attr_name):
            return [getattr(self, attr_name)] * len(slots)
        return [getattr(self.worlds[s // self.seats], attr_name) for s in slots]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an attribute on the communities of the given slots."""
        for e in {s // self.seats for s in self._indices(indices)}:
            setattr(self.worlds[e], attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None,
                   **method_kwargs: Any) -> list[Any]:
        """``action_masks`` gives one mask per slot (what MaskablePPO calls); other names
        call the method of each slot's community."""
        slots = self._indices(indices)
        if method_name == "action_masks":
            return list(self._masks[slots])
        return [getattr(self.worlds[s // self.seats], method_name)(*method_args, **method_kwargs)
                for s in slots]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """No gymnasium wrappers inside."""
        return [False] * len(self._indices(indices))

    def has_attr(self, attr_name: str) -> bool:
        """True for the VecEnv's own attributes (``action_masks``) and the communities'."""
        return hasattr(self, attr_name) or all(hasattr(env, attr_name) for env in self.worlds)

    def seed(self, seed: int | None = None) -> list[int | None]:
        """Seeds for the next reset (one per slot, as SB3 expects) and the internal stream."""
        if seed is not None:
            self._base_seed = int(seed)
        return super().seed(seed) if _VecEnvBase is not object else [seed] * self.num_envs

    # ---- internals -------------------------------------------------------------------------
    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def _masks_of(self, e: int, seen: Any) -> np.ndarray:
        """The masks of an observation in this env's action mode."""
        if self.action_mode == "flat":
            return seen.masks
        world = self.worlds[e]
        return factored.masks(world.state, world.view, seen.rows, self.cfgs[e], self.catalogue)

    def _show(self, slot: int, ob: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Write a slot's features and mask; None pads it (zeros, only ``idle`` allowed, and
        in factored mode the "nothing" value of every component)."""
        if ob is None:
            self._obs[slot] = 0.0
            self._masks[slot] = self._idle_mask
        else:
            self._obs[slot] = ob[0]
            self._masks[slot] = ob[1].astype(bool)

    def _reset_community(self, e: int, seed: int | None) -> None:
        if seed is None:
            # Each community's next episode has a seed of its own (community, episode), so
            # which world a community gets never depends on when the others ended.
            seed = derived_seed(self._base_seed, e, self._episode[e])
        world = self.worlds[e] = world_fn.reset(self.cfgs[e], seed)
        self._episode[e] += 1
        self._controller[e] = UNSET
        living = world.living
        share = self.learner_fraction
        mix = {"learner": share, "background": 1.0 - share}
        owners = assign_policies(mix, len(living), assignment_rng(seed))
        labels = (np.array(owners) == "background").astype(np.int8)  # 0 learner, 1 background
        self._controller[e, living] = labels
        learners = living[labels == 0]
        self._occupant[e] = -1
        # Founders beyond the seats go to the background policy.
        overflow = learners[self.seats:]
        self._controller[e, overflow] = 1
        learners = learners[: self.seats]
        self._occupant[e, : len(learners)] = learners
        seats = slice(e * self.seats, (e + 1) * self.seats)
        self._ep_return[seats] = 0.0
        self._ep_len[seats] = 0
        seen = world.observe(learners, text=False)
        masks = self._masks_of(e, seen)
        for k in range(self.seats):
            ob = (seen.features[k], masks[k]) if k < len(learners) else None
            self._show(e * self.seats + k, ob)

    def _seat_newcomers(self, e: int, born: np.ndarray) -> None:
        """Give each newcomer its parent's controller; seat learner newcomers if possible."""
        world = self.worlds[e]
        if world.done:
            return
        for i in born.tolist():
            parent = int(world.state.parent[i])
            ctrl = self._controller[e, parent] if parent >= 0 else 1
            if ctrl == 0:
                vacant = np.flatnonzero(self._occupant[e] < 0)
                if len(vacant):
                    k = int(vacant[0])
                    self._occupant[e, k] = i
                    slot = e * self.seats + k
                    seen = world.observe(np.array([i]), text=False)
                    self._show(slot, (seen.features[0], self._masks_of(e, seen)[0]))
                    self._ep_return[slot], self._ep_len[slot] = 0.0, 0
                else:
                    ctrl = 1
            self._controller[e, i] = ctrl


SUMMARY_KEYS = ("nAUP", "SC", "ED", "IC", "CC", "autocorr_lag1", "variance", "final_population",
                "cooperation_per_resident_day", "betrayal_per_resident_day", "days")


def scalar_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SUMMARY_KEYS`` of a community summary plus ``rate_<behaviour>`` for each rate."""
    out = {k: summary[k] for k in SUMMARY_KEYS if k in summary}
    out.update({f"rate_{b}": r for b, r in summary.get("behaviour_rates", {}).items()})
    return out


def maskable_ppo(venv: CivaVecEnv, policy: Any = "MlpPolicy", **kwargs: Any) -> Any:
    """A sb3-contrib ``MaskablePPO`` on ``venv`` that learns only from seated slots
    (``civa_env.envs.sb3_buffer.SeatedRolloutBuffer``); ``kwargs`` go to ``MaskablePPO``.
    The buffer keeps no reference to the env, so a saved model holds none either, and a
    model loaded to train on goes on leaving padding out. ``"MlpPolicy"`` is
    ``civa_env.envs.sb3_policy.FactoredMlpPolicy``: the same network and the same numbers,
    with a faster masked head for factored actions."""
    from sb3_contrib import MaskablePPO

    from civa_env.envs.sb3_buffer import SeatedRolloutBuffer
    from civa_env.envs.sb3_policy import FactoredMlpPolicy

    if policy == "MlpPolicy":
        policy = FactoredMlpPolicy
    return MaskablePPO(policy, venv, rollout_buffer_class=SeatedRolloutBuffer, **kwargs)
