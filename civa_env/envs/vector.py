"""The vector API: ``num_envs`` communities stepped by one call, with arrays over every
resident slot.

    venv = civa_env.vector_env(num_envs=64, n_agents=25)
    obs, infos = venv.reset(seed=0)
    obs["features"]     # (R, F) float32, R = num_envs * max_agents resident slots
    obs["action_mask"]  # (R, sum of the component sizes) int8, the factored masks
    obs["alive"]        # (R,) bool
    actions = ...       # (R, C) ints, one factored action per slot (``world.factored``)
    obs, rewards, terminations, truncations, infos = venv.step(actions)

Slot ``r`` is resident ``r % max_agents`` of community ``r // max_agents`` (``community_of``):
a community's founders hold its first ``n_agents`` slots and newcomers take the next free
ones, as in the ParallelEnv's name pool. Rows of slots not alive (dead, or not born yet) are
zeros, their actions are ignored, and their masks allow only the "nothing" value of each
component (idle, no secondary, slot 0, level 0, no message, everyone), so that a masked
sampler never sees an all-masked row; learners should drop them (``obs["alive"]``).

``rewards[r]`` is the config's reward of slot r's resident for the day it played (0 for
slots that did not play); ``terminations[r]`` is True on the day its resident starved;
``truncations[r]`` is True for the living residents of a community that played its last day.

Autoreset: Gymnasium's ``AutoresetMode.SAME_STEP``. A community whose episode ended (its
last day played, or nobody left) is reset within the same ``step``: the returned
observation is the first of its next episode, and ``infos["final_obs"]`` holds the
observation it ended with (the same arrays as ``obs``, filled for the rows of communities
that ended) with ``infos["_final_obs"]`` (R,) marking those rows; ``infos["ended"]`` (E,)
says which communities ended. Community ``e`` plays seed ``seed + e`` first (as
``parallel_env().reset(seed=seed + e)`` would: the same event log, a test checks it), then
``world.derived_seed(seed + e, k)`` for its k-th episode after that, as the ParallelEnv's
plain resets do.

Each community is a ``civa_env.world.World`` with its own random streams, stepped through
``world.step_factored`` (no per-resident Python but the messages sent), so a community's
run is the same alone, in a batch, or through the ParallelEnv.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from civa_env.world import day as world_fn
from civa_env.world import factored
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.features import FEATURE_CLIP, feature_size, features
from civa_env.world.perception import inbox_count


class CivaVectorEnv:
    """``num_envs`` CIVA communities as one vectorised environment (module docstring)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, config: Config | None = None, **kwargs: Any) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) \
                or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        kwargs.setdefault("obs_mode", "numeric")
        self.cfg = config.replace(**kwargs) if config is not None else Config.from_kwargs(**kwargs)
        if self.cfg.obs_mode == "text":
            raise ValueError("vector_env renders no text: use obs_mode='numeric' (the default "
                             "here), or parallel_env for text observations")
        cfg = self.cfg
        self.num_envs = int(num_envs)
        self.n_slots = cfg.max_agents
        self.num_slots = self.num_envs * self.n_slots
        self.catalogue = Catalogue(cfg)
        self.spec = factored.FactoredSpec.of(cfg)
        self.community_of = np.repeat(np.arange(self.num_envs), self.n_slots)
        self.single_observation_space = spaces.Dict({
            "features": spaces.Box(-FEATURE_CLIP, FEATURE_CLIP, shape=(feature_size(cfg),),
                                   dtype=np.float32),
            "action_mask": spaces.Box(0, 1, shape=(self.spec.mask_size,), dtype=np.int8),
            "alive": spaces.Box(0, 1, shape=(), dtype=np.bool_),
        })
        self.single_action_space = spaces.MultiDiscrete(self.spec.nvec)
        self.worlds: list[world_fn.World] = []
        self._seeds: list[int] = []
        self._episodes = np.zeros(self.num_envs, np.int64)
        self._idle_mask = self.spec.nothing_mask()  # the mask of a slot not alive

    # The batched spaces hold bounds for every slot (two float32 arrays of R x F for the
    # features): built on first use, so that a large batch that never asks for them does
    # not carry them (at 1000-resident communities they were two thirds of the memory).
    @cached_property
    def observation_space(self) -> spaces.Dict:
        """The batch's observation space (``single_observation_space`` per slot)."""
        return batch_space(self.single_observation_space, self.num_slots)

    @cached_property
    def action_space(self) -> spaces.MultiDiscrete:
        """The batch's action space (``single_action_space`` per slot)."""
        return batch_space(self.single_action_space, self.num_slots)

    # ---- episodes ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None,
              options: dict | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Reset every community: community e plays seed ``seed + e`` (``seed`` defaults to
        the config's seed, else a fresh one)."""
        if seed is None:
            seed = self.cfg.seed if self.cfg.seed is not None else world_fn.fresh_seed()
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self._seeds = [int(seed) + e for e in range(self.num_envs)]
        self._episodes[:] = 0
        self.worlds = [world_fn.reset(self.cfg, s) for s in self._seeds]
        obs = self._empty_obs()
        for e in range(self.num_envs):
            self._observe_into(obs, e)
        return obs, {"day": self._days(), "seed": np.array(self._seeds)}

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                                 np.ndarray, dict[str, Any]]:
        """Play one day in every community; ``actions`` (R, C) ints (module docstring)."""
        if not self.worlds:
            raise ValueError("call reset() before step()")
        acts = factored.check_shape(actions, self.num_slots, self.cfg, "the vector env")
        n = self.n_slots
        r_count = self.num_slots
        rewards = np.zeros(r_count)
        terminated = np.zeros(r_count, bool)
        truncated = np.zeros(r_count, bool)
        ended = np.zeros(self.num_envs, bool)
        obs = self._empty_obs()
        final = None
        n_aup = np.zeros(self.num_envs)
        for e, w in enumerate(self.worlds):
            lo = e * n
            w, day = world_fn.step_factored(w, acts[lo:lo + n])
            acted = day.acted
            rewards[lo + acted] = world_fn.rewards(day, self.cfg)
            terminated[lo + day.died] = True
            n_aup[e] = day.census["nAUP"]
            if w.done:
                ended[e] = True
                truncated[lo + w.living] = day.truncated
                if final is None:
                    final = self._empty_obs()
                self._observe_into(final, e)
                self._episodes[e] += 1
                self.worlds[e] = world_fn.reset(
                    self.cfg, world_fn.derived_seed(self._seeds[e], int(self._episodes[e])))
            self._observe_into(obs, e)
        infos: dict[str, Any] = {"day": self._days(), "ended": ended, "nAUP": n_aup}
        if final is not None:
            infos["final_obs"] = final
            infos["_final_obs"] = ended[self.community_of]
        return obs, rewards, terminated, truncated, infos

    def close(self) -> None:
        """Nothing to release (the communities live in this process)."""
        self.worlds = []

    # ---- observations -------------------------------------------------------------------------
    def _empty_obs(self) -> dict[str, np.ndarray]:
        r = self.num_slots
        return {"features": np.zeros((r, feature_size(self.cfg)), np.float32),
                "action_mask": np.tile(self._idle_mask, (r, 1)),
                "alive": np.zeros(r, bool)}

    def _observe_into(self, obs: dict[str, np.ndarray], e: int) -> None:
        w = self.worlds[e]
        rows = w.living
        if len(rows) == 0:
            return
        slots = e * self.n_slots + rows
        state = w.state
        obs["features"][slots] = features(state, w.view, rows, inbox_count(state), self.cfg)
        obs["action_mask"][slots] = factored.masks(state, w.view, rows, self.cfg,
                                                   self.catalogue)
        obs["alive"][slots] = True

    def _days(self) -> np.ndarray:
        return np.array([w.day for w in self.worlds], np.int64)


def vector_env(num_envs: int = 1, config: Config | None = None, **kwargs: Any) -> CivaVectorEnv:
    """``num_envs`` communities of ``Config(**kwargs)`` as one vectorised env (see
    ``civa_env.envs.vector``)."""
    return CivaVectorEnv(num_envs, config, **kwargs)
