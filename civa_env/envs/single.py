"""One learner resident among background residents, as a single-agent Gymnasium env.

``gymnasium.make("civa/Resident-v0", background="scripted", n_agents=10, reward="survival")``
(registered on ``import civa_env``) or ``ResidentEnv(...)``:

* One founder, drawn from the episode's seed, is the learner; every other resident (the other
  founders and every newcomer, the learner's own included) is decided by the ``background``
  policy (``"scripted"``, ``"random"``, a checkpoint spec such as ``"ppo:model.zip"``, or a
  ``Policy``), in one batched ``act`` call a day, as in ``civa_env.envs.sb3.CivaVecEnv``.
* Observation: the learner's ``features`` vector (``Box``, float32 in [-10, 10]). Action: a
  flat catalogue id (``Discrete``); an invalid one is changed into a flagged no-op (listed in
  ``info["invalid"]``), as in the ``ParallelEnv``. ``info["action_mask"]`` and
  ``action_masks()`` give the valid ids, which is what sb3-contrib's ``MaskablePPO`` reads.
* Reward: the config's ``reward`` for the learner. ``terminated`` when the learner starves,
  ``truncated`` after ``max_days`` days.
* ``reset(seed=s)`` replays the same episode (world, learner, background decisions);
  ``reset()`` then goes on with seeds derived from ``s``, as ``CivaEnv.reset`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from civa_env import world as world_fn
from civa_env.envs.spaces import features_space
from civa_env.policies.base import Policy, make_policy
from civa_env.policies.batch import Batch
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.day import EpisodeSeeds, Observation, World, assignment_rng, policy_seed
from civa_env.world.day import rewards as day_rewards
from civa_env.world.events import agent_name
from civa_env.world.kinds import Primary

ENV_ID = "civa/Resident-v0"  # registered by ``import civa_env`` (civa_env/__init__.py)


class ResidentEnv(gymnasium.Env):
    """One CIVA resident learns among background residents (see the module docstring).

    Args:
        config: a ``Config`` (or a dict of its fields); keyword arguments override fields.
        background: the other residents' policy: a spec for ``make_policy`` or a ``Policy``;
            default ``scripted`` when installed, else ``random``.
        briefings: render the background residents' briefings (an LLM background reads
            them); off by default, as the learner and the scripted residents read features.
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 1}

    def __init__(self, config: Config | Mapping[str, Any] | None = None, *,
                 background: Policy | str | None = None, briefings: bool = False,
                 **kwargs: Any) -> None:
        if isinstance(config, Mapping):
            config = Config.from_kwargs(**{**config, **kwargs})
        else:
            config = config.replace(**kwargs) if config is not None else Config.from_kwargs(
                **kwargs)
        cfg = config.replace(obs_mode="text" if briefings else "features")
        self.cfg = cfg
        self.render_mode = cfg.render_mode
        self.catalogue = Catalogue(cfg)
        self.observation_space = features_space(cfg)
        self.action_space = spaces.Discrete(self.catalogue.size)
        self._own_background = not isinstance(background, Policy)
        self.background = (make_policy(background or _default_background())
                           if self._own_background else background)
        self._idle = self.catalogue.encode(Primary.IDLE)
        self.world: World | None = None
        self.learner = -1  # the learner's resident index
        self._mask = np.zeros(self.catalogue.size, bool)
        self._seen: Observation | None = None  # everyone's, made after the last day
        self._seeds = EpisodeSeeds(self.cfg.seed)

    @property
    def learner_name(self) -> str:
        """The learner's agent name in this episode."""
        return agent_name(self.learner)

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """A new episode: the world, the learner and the background policy from one seed."""
        super().reset(seed=seed)
        episode_seed = self._seeds.next(seed)
        self.world = world_fn.reset(self.cfg, episode_seed)
        living = self.world.living
        self.learner = int(living[assignment_rng(episode_seed).integers(len(living))])
        self.background.reset(self.cfg, seed=policy_seed(episode_seed, 0))
        ob, info = self._observe()
        info["seed"] = episode_seed
        return ob, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One day: the learner plays ``action``, the background residents their policy's."""
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        if self.world.done or not self.world.state.alive[self.learner]:
            raise RuntimeError("the episode is over: call reset()")
        actions = self._background_actions()
        actions[agent_name(self.learner)] = int(np.asarray(action).reshape(()))
        self.world, day = world_fn.step(self.world, actions)
        k = int(np.searchsorted(day.acted, self.learner))
        reward = float(day_rewards(day, self.cfg)[k])
        terminated = not bool(day.after.alive[self.learner])
        truncated = day.truncated and not terminated
        ob, info = self._observe()
        info["invalid"] = list(day.invalid.get(self.learner, []))
        info["community"] = day.census
        if self.render_mode == "human":
            self.render()
        return ob, reward, terminated, truncated, info

    def _background_actions(self) -> dict[str, Any]:
        """The other living residents decide in one batched call (keys: agent names), from
        the observation ``_observe`` made of everyone after the last day."""
        seen = self._seen
        sel = np.flatnonzero(seen.rows != self.learner)
        if len(sel) == 0:
            return {}
        keys = [agent_name(i) for i in seen.rows[sel].tolist()]
        return dict(self.background.act(Batch.from_seen(seen, keys, sel)))

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The learner's observation; the background's is made in the same call (one
        ``World.observe`` a day; briefings only with ``briefings=True``)."""
        rows = np.union1d(self.world.living, [self.learner])  # the learner even if dead
        self._seen = seen = self.world.observe(rows)
        r = int(np.searchsorted(rows, self.learner))
        self._mask = seen.masks[r].astype(bool)
        if not self._mask.any():  # the learner starved: nothing is valid but idling
            self._mask[self._idle] = True
        info = {"action_mask": self._mask.copy(), "day": seen.day,
                "agent": agent_name(self.learner)}
        return seen.features[r].copy(), info

    def action_masks(self) -> np.ndarray:
        """The learner's valid flat ids now (bool), for sb3-contrib's ``MaskablePPO``."""
        return self._mask.copy()

    def render(self) -> str | None:
        """One line about the learner and the community (``ansi`` returns it)."""
        if self.render_mode is None:
            return None
        if self.world is None:
            text = "CIVA resident: not started (call reset())"
        else:
            w = self.world.state
            text = (f"CIVA day {w.day}/{self.cfg.max_days}: {self.learner_name} "
                    f"{'alive' if w.alive[self.learner] else 'starved'}, wealth "
                    f"{w.wealth[self.learner]:.1f}; {int(w.alive.sum())} residents alive")
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Close the background policy if this env built it."""
        if self._own_background:
            self.background.close()


def _default_background() -> str:
    """``scripted`` when that policy is installed, else ``random`` (as ``CivaVecEnv``)."""
    from civa_env.policies.base import available_policies

    return "scripted" if "scripted" in available_policies() else "random"

