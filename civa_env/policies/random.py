"""Uniformly random valid actions (from the action mask)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from civa_env.policies.base import Policy
from civa_env.policies.batch import Batch
from civa_env.world.config import Config


class RandomPolicy(Policy):
    """Picks a uniformly random valid flat action for each resident, vectorised."""

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, cfg: Config, seed: int | None = None) -> None:
        """Reseed (with ``seed`` if given)."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, batch: Batch) -> dict[Hashable, Any]:
        """A random valid flat id per key."""
        if not len(batch):
            return {}
        scores = self.rng.random(batch.masks.shape)
        scores[~batch.masks] = -1.0
        return dict(zip(batch.keys, scores.argmax(axis=1).tolist(), strict=True))
