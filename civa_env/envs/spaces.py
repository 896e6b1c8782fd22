"""Gymnasium spaces of the CIVA community: the observation and the structured action."""

from __future__ import annotations

import string

import numpy as np
from gymnasium import spaces

from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.features import FEATURE_CLIP, feature_size
from civa_env.world.kinds import Primary, Secondary


def features_space(cfg: Config) -> spaces.Box:
    """The feature vector: float32 in [-FEATURE_CLIP, FEATURE_CLIP], ``feature_size(cfg)``."""
    return spaces.Box(-FEATURE_CLIP, FEATURE_CLIP, shape=(feature_size(cfg),), dtype=np.float32)


def mask_space(catalogue: Catalogue) -> spaces.Box:
    """The action mask: int8 0/1 over the flat catalogue."""
    return spaces.Box(0, 1, shape=(catalogue.size,), dtype=np.int8)


def observation_space(cfg: Config, catalogue: Catalogue) -> spaces.Dict | spaces.Box:
    """The per-resident observation space: ``Dict(text, features, action_mask)`` in the
    ``text`` and ``numeric`` modes, the features ``Box`` alone in ``features`` mode (no
    ``Text``: what SuperSuit's wrappers and SB3's ``MlpPolicy`` accept)."""
    if cfg.obs_mode == "features":
        return features_space(cfg)
    return spaces.Dict({
        "text": spaces.Text(max_length=cfg.max_text_chars, min_length=0, charset=string.printable),
        "features": features_space(cfg),
        "action_mask": mask_space(catalogue),
    })


def structured_action_space(cfg: Config) -> spaces.Dict:
    """Documentation-grade space of the structured form (targets as view slots)."""
    message = spaces.Dict({
        "to": spaces.Discrete(cfg.view_size + 1),  # view slot, or view_size = everyone
        "text": spaces.Text(cfg.max_message_chars, charset=string.printable),
    })
    return spaces.Dict({
        "primary": spaces.Discrete(len(Primary)),
        "factory": spaces.Discrete(cfg.n_factories),
        "secondary": spaces.Discrete(len(Secondary)),
        "target": spaces.Discrete(cfg.view_size),
        "amount": spaces.Box(0.0, 1000.0, shape=(), dtype=np.float32),
        "messages": spaces.Sequence(message),
    })
