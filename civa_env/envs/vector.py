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
that ended; the other rows hold the "not alive" row: zeros, the idle mask) with
``infos["_final_obs"]`` (R,) marking those rows; ``infos["ended"]`` (E,) says which
communities ended. Community ``e`` plays seed ``seed + e`` first (as
``parallel_env().reset(seed=seed + e)`` would: the same event log, a test checks it), then
``world.derived_seed(seed + e, k)`` for its k-th episode after that, as the ParallelEnv's
plain resets do.

Copies (Gymnasium's ``copy`` option of its vector envs): with ``copy=True`` (the default)
the observation arrays that ``reset`` and ``step`` return (``obs`` and
``infos["final_obs"]``) are the caller's to keep: no later call writes an array that
anything outside the env still refers to (the dict, an array, or a view of one). The env
keeps a few sets of arrays and reuses a set once nothing else refers to it (CPython's
reference counts; on other interpreters every call makes new arrays), rewriting only the
rows that changed, so that a caller who drops last step's observation pays neither for new
arrays nor for the rows of slots not alive. With ``copy=False`` every call returns the
same arrays, updated in place by the next ``reset`` or ``step``: copy what you keep.
Rewards, terminations, truncations and the other infos are new arrays either way.

All communities live in one set of arrays (``civa_env.world.batch.Communities``) and are
stepped by one call of the same rules a lone world plays, each with its own random streams,
so a community's run is the same alone, in a batch, or through the ParallelEnv (tests
check the event log, state, view and features day by day). ``keep_logs=True`` keeps each
community's event log, census and behaviour counts, as the ParallelEnv does (``world(e)``
gives community e as a lone ``World`` snapshot); without it (the default, for training)
only the running nAUP (``infos["nAUP"]``, (E,)) is kept.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from civa_env.world import day as world_fn
from civa_env.world import factored, seeding
from civa_env.world.batch import Communities
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.features import FEATURE_CLIP, feature_size, features
from civa_env.world.perception import inbox_count

_OBS_KEYS = ("features", "action_mask", "alive")
_POOL = 3  # sets of observation arrays kept for reuse, per kind (copy=True)


@dataclass
class _Buffer:
    """A set of observation arrays, and which rows of it are not the "not alive" row (the
    rows to clear when their slot is no longer observed)."""

    arrays: dict[str, np.ndarray]
    filled: np.ndarray  # (R,) bool


def _refs(a: np.ndarray) -> int:
    """``a``'s reference count, as seen from here (``_FREE_REFS`` when only a ``_Buffer``
    holds it)."""
    return sys.getrefcount(a)


def _free_refs() -> int | None:
    """The count ``_refs`` gives for an array that only a buffer's dict refers to (measured,
    so that it holds whatever the interpreter counts); None without reference counts (then
    copy=True never reuses a set)."""
    if not hasattr(sys, "getrefcount") or platform.python_implementation() != "CPython":
        return None
    probe = _Buffer({"features": np.zeros(1)}, np.zeros(1, bool))
    return _refs(probe.arrays["features"])


_FREE_REFS = _free_refs()


class CivaVectorEnv:
    """``num_envs`` CIVA communities as one vectorised environment (module docstring)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, config: Config | None = None, *,
                 keep_logs: bool = False, copy: bool = True, **kwargs: Any) -> None:
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
        self.keep_logs = bool(keep_logs)
        self.copy = bool(copy)
        self.batch: Communities | None = None
        self._seeds: list[int] = []
        self._episodes = np.zeros(self.num_envs, np.int64)
        self._idle_mask = self.spec.nothing_mask()  # the mask of a slot not alive
        # The sets of observation arrays of "obs" and "final" (``_observation``).
        self._buffers: dict[str, list[_Buffer]] = {}

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
        seed = world_fn.check_seed(seed)
        self._seeds = [seed + e for e in range(self.num_envs)]
        self._episodes[:] = 0
        self.batch = Communities.reset(self.cfg, self._seeds, keep_logs=self.keep_logs)
        obs = self._observation("obs", self.batch.state.alive.nonzero()[0])
        return obs, {"day": self._days(), "seed": np.array(self._seeds)}

    def step(self, actions: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                                 np.ndarray, dict[str, Any]]:
        """Play one day in every community; ``actions`` (R, C) ints (module docstring)."""
        if self.batch is None:
            raise ValueError("call reset() before step()")
        acts = factored.check_shape(actions, self.num_slots, self.cfg, "the vector env")
        day = self.batch.step_factored(acts, in_place=True)  # (read before the next step)
        cfg, n = self.cfg, self.n_slots
        rewards = np.zeros(self.num_slots)
        rewards[day.acted] = world_fn.rewards(day, cfg)
        terminated = np.zeros(self.num_slots, bool)
        terminated[day.died] = True
        ended = day.ended
        living = day.after.alive.nonzero()[0]
        truncated = np.zeros(self.num_slots, bool)
        truncated[living] = day.truncated[living // n]
        infos: dict[str, Any] = {"ended": ended.copy(), "nAUP": day.n_aup}
        if not np.count_nonzero(ended):
            obs = self._observation("obs", living)
        else:
            which = ended.nonzero()[0]
            going = ended[living // n]
            # The observation each ended community ended with (its living rows; those that
            # died out have none), then its next episode in place of it, in place.
            infos["final_obs"] = self._observation("final", living[going])
            infos["_final_obs"] = ended[self.community_of]
            # Every living slot is observed at once after the restarts (the continuing
            # communities' today, the restarted ones' first day).
            self._episodes[which] += 1
            seeds, words = seeding.episode_seeds([self._seeds[e] for e in which.tolist()],
                                                 self._episodes[which].tolist(),
                                                 world_fn.FRESH_STREAMS)
            self.batch.replace(which, seeds, in_place=True, words=words)
            obs = self._observation("obs", self.batch.state.alive.nonzero()[0])
        infos["day"] = self._days()
        return obs, rewards, terminated, truncated, infos

    def close(self) -> None:
        """Nothing to release (the communities live in this process)."""
        self.batch = None

    # ---- communities ---------------------------------------------------------------------------
    def world(self, e: int) -> world_fn.World:
        """Community ``e`` as a lone ``World`` (``Communities.world``: a snapshot of its state
        in its own numbering, with its event log, census and behaviour counts when the env
        keeps logs)."""
        if self.batch is None:
            raise ValueError("call reset() first")
        if not 0 <= e < self.num_envs:
            raise IndexError(f"community {e} out of range [0, {self.num_envs})")
        return self.batch.world(e)

    @property
    def worlds(self) -> list[world_fn.World]:
        """Every community as a lone ``World`` snapshot (``world(e)``)."""
        if self.batch is None:
            raise ValueError("call reset() first")
        return self.batch.worlds()

    # ---- observations -------------------------------------------------------------------------
    def _observation(self, key: str, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The observation whose observed rows are pool rows ``rows`` (living residents, in
        the current state), every other row the "not alive" row (``_buffer``)."""
        return dict(self._buffer(key, rows).arrays)

    def _buffer(self, key: str, rows: np.ndarray) -> _Buffer:
        """A set of observation arrays of kind ``key`` ("obs" or "final") whose rows are all
        the "not alive" row but those of pool rows ``rows``, observed: with ``copy=False``
        always the same set; with ``copy=True`` one that nothing outside this env refers to
        any more (the caller let it go), else a new one."""
        sets = self._buffers.setdefault(key, [])
        out = None
        if not self.copy:
            out = sets[0] if sets else None
        else:
            for s in sets:
                if all(_refs(s.arrays[name]) == _FREE_REFS for name in _OBS_KEYS):
                    out = s
                    break
        if out is None:
            out = _Buffer(self._blank(), np.zeros(self.num_slots, bool))
            sets.insert(0, out)
            del sets[_POOL:]  # (the oldest, still held by the caller, is the caller's now)
        # Rows observed last time and not now: back to the "not alive" row.
        obs, filled = out.arrays, out.filled
        filled[rows] = False
        stale = filled.nonzero()[0]
        if len(stale):  # (one compiled pass: numpy's row-by-row fancy assignment is slower)
            from civa_env.world.kernels import blank_rows  # (numba loads on first use)

            blank_rows(obs["features"], obs["action_mask"], obs["alive"], stale,
                       self._idle_mask)
            filled[stale] = False
        filled[rows] = True
        self._observe_into(obs, rows)
        return out

    def _blank(self) -> dict[str, np.ndarray]:
        """Observation arrays of every slot, each row the "not alive" row."""
        r = self.num_slots
        return {"features": np.zeros((r, feature_size(self.cfg)), np.float32),
                "action_mask": np.tile(self._idle_mask, (r, 1)),
                "alive": np.zeros(r, bool)}

    def _observe_into(self, obs: dict[str, np.ndarray], rows: np.ndarray) -> None:
        """Features and masks of pool rows ``rows`` (living residents) into ``obs``, written
        in place (one compiled pass each)."""
        if len(rows) == 0:
            return
        b = self.batch
        state = b.state
        features(state, b.view, rows, inbox_count(state), self.cfg, out=obs["features"],
                 out_rows=rows)
        factored.masks(state, b.view, rows, self.cfg, b.catalogue, out=obs["action_mask"],
                       out_rows=rows)
        obs["alive"][rows] = True

    def _days(self) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.batch.state.day, np.int64)).copy()


def vector_env(num_envs: int = 1, config: Config | None = None, *, keep_logs: bool = False,
               copy: bool = True, **kwargs: Any) -> CivaVectorEnv:
    """``num_envs`` communities of ``Config(**kwargs)`` as one vectorised env (see
    ``civa_env.envs.vector``); ``keep_logs`` keeps each community's event log, census and
    behaviour counts (``world(e)``); ``copy=False`` returns the observation buffers
    themselves, updated in place by the next call (Gymnasium's ``copy`` option)."""
    return CivaVectorEnv(num_envs, config, keep_logs=keep_logs, copy=copy, **kwargs)
