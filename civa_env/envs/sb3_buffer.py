"""``SeatedRolloutBuffer``: MaskablePPO's rollout buffer without the padding of vacant seats.

``CivaVecEnv`` has a fixed number of learner slots (SB3's VecEnv cannot grow or shrink), so a
seat left vacant by a death is padded until a newcomer takes it or the community ends: zero
features, and a mask that allows only the "nothing" value of each action component (``idle``
in the flat catalogue). Padding is still stepped and still gets values, but this buffer
leaves its transitions out of every minibatch. In the default world about 60% of slot-steps
are padding.

A vacant seat is told by its mask, recorded with the transition: a seated resident can
always explore or idle, so its mask allows more than one value of the primary component,
while a vacant seat's allows exactly one value per component. The buffer therefore needs no
reference to the env (a saved model holds none, and a loaded one keeps leaving padding out).

The seated transitions are cut into minibatches of nearly equal sizes, about ``batch_size``
each: their count is no multiple of it, and a lone last transition would make MaskablePPO's
advantage normalisation (by the standard deviation) NaN. A rollout with fewer than two
seated transitions trains on all of them as one minibatch, padding included, rather than on
none (MaskablePPO's ``train`` needs at least one minibatch).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from gymnasium import spaces
from sb3_contrib.common.maskable.buffers import MaskableRolloutBuffer

_TENSORS = ("observations", "actions", "values", "log_probs", "advantages", "returns",
            "action_masks")


class SeatedRolloutBuffer(MaskableRolloutBuffer):
    """See the module docstring."""

    def reset(self) -> None:
        self.seated = np.ones((self.buffer_size, self.n_envs), bool)
        super().reset()

    def add(self, *args: Any, action_masks: np.ndarray | None = None, **kwargs: Any) -> None:
        if action_masks is not None:
            allowed = np.asarray(action_masks).reshape(self.n_envs, -1).sum(axis=1)
            self.seated[self.pos] = allowed > self._nothing_count()
        super().add(*args, action_masks=action_masks, **kwargs)

    def _nothing_count(self) -> int:
        """How many values a vacant seat's mask allows (one per component)."""
        if isinstance(self.action_space, spaces.MultiDiscrete):
            return len(self.action_space.nvec)
        return 1

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        assert self.full, ""
        # The order of swap_and_flatten: (steps, envs) -> (envs, steps) -> flat.
        seated = self.seated.swapaxes(0, 1).reshape(-1)
        if not self.generator_ready:
            for name in _TENSORS:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        keep = seated.nonzero()[0]
        if len(keep) < 2:
            keep = np.arange(len(seated))
        indices = keep[np.random.permutation(len(keep))]
        size = batch_size or len(indices)
        for part in np.array_split(indices, max(1, round(len(indices) / size))):
            yield self._get_samples(part)
