"""``FactoredMlpPolicy``: MaskablePPO's ``MlpPolicy`` with a leaner masked ``MultiDiscrete`` head.

sb3-contrib's ``MaskableMultiCategoricalDistribution`` builds two torch ``Categorical``s per
component at every forward pass (one on the raw logits, then one on the masked logits), and
each checks its arguments and its samples. At CIVA's factored action (6 components, 76
logits) that bookkeeping took more CPU than the network itself: about a fifth of a training
run. ``FactoredMaskedDistribution`` computes the same tensors with the same torch operations
in the same order, without the objects and their checks, so a seed gives the same samples,
log-probabilities, entropies and gradients, to the bit (``tests/envs/test_rl_factored.py``
compares the two). What the checks caught (a NaN logit, an action out of range) is not
checked.

Per component ``c`` with logits ``l`` and mask ``m`` (``n`` normalises: ``x - logsumexp(x)``):

* unmasked: ``n(n(l))`` (``MaskableCategorical`` normalises once when built and once when
  its masking is cleared);
* masked: ``n(where(m, n(l), -1e8))``;
* a sample is ``multinomial(softmax(.), 1)`` per component, in component order (the same
  random draws as ``Categorical.sample``); the entropy leaves masked values out.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn

HUGE_NEG = -1e8  # the logit of a masked value (sb3-contrib's)


def _normalise(logits: th.Tensor) -> th.Tensor:
    """Log-probabilities: what ``Categorical(logits=...)`` keeps as its ``logits``."""
    return logits - logits.logsumexp(dim=-1, keepdim=True)


class Component(NamedTuple):
    """One component's distribution, as ``SB3Policy.logits`` reads it (``.logits``)."""

    logits: th.Tensor  # (B, n) log-probabilities, masked values at about -1e8


class FactoredMaskedDistribution(MaskableDistribution):
    """Masked MultiCategorical distribution; see the module docstring.

    Args:
        action_dims: size of each component (the ``MultiDiscrete``'s ``nvec``).
    """

    def __init__(self, action_dims: list[int]) -> None:
        super().__init__()
        self.action_dims = [int(n) for n in action_dims]
        self._base: list[th.Tensor] = []  # n(l) per component
        self._masks: list[th.Tensor] | None = None  # (B, n) bool per component
        self._logits: list[th.Tensor] | None = None
        self._probs: list[th.Tensor] | None = None

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        """The logits of every component side by side."""
        return nn.Linear(latent_dim, sum(self.action_dims))

    def proba_distribution(self, action_logits: th.Tensor) -> FactoredMaskedDistribution:
        """Set the distribution from the action net's output (unmasked)."""
        logits = action_logits.view(-1, sum(self.action_dims))
        self._base = [_normalise(part) for part in th.split(logits, self.action_dims, dim=1)]
        self._masks = None
        self._logits = None
        self._probs = None
        return self

    def apply_masking(self, masks: th.Tensor | np.ndarray | None) -> None:
        """Keep only the values ``masks`` allows ((B, sum of nvec), any dtype; None unmasks)."""
        assert self._base, "proba_distribution must come before apply_masking"
        self._probs = None
        if masks is None:
            self._masks = None
            self._logits = None
            return
        device = self._base[0].device
        full = th.as_tensor(masks, dtype=th.bool, device=device).view(-1, sum(self.action_dims))
        self._masks = list(th.split(full, self.action_dims, dim=1))
        huge_neg = th.tensor(HUGE_NEG, dtype=self._base[0].dtype, device=device)
        self._logits = [_normalise(th.where(m, base, huge_neg))
                        for m, base in zip(self._masks, self._base, strict=True)]

    @property
    def logits(self) -> list[th.Tensor]:
        """(B, n) log-probabilities per component."""
        if self._logits is None:
            self._logits = [_normalise(base) for base in self._base]
        return self._logits

    @property
    def probs(self) -> list[th.Tensor]:
        """(B, n) probabilities per component."""
        if self._probs is None:
            self._probs = [th.softmax(lg, dim=-1) for lg in self.logits]
        return self._probs

    @property
    def distributions(self) -> list[Component]:
        """One entry per component with its ``logits`` (what sb3-contrib's class lists)."""
        return [Component(lg) for lg in self.logits]

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """(B,) summed log-probability of (B, components) actions."""
        actions = actions.view(-1, len(self.action_dims)).long()
        parts = [lg.gather(-1, a.unsqueeze(-1)).squeeze(-1)
                 for lg, a in zip(self.logits, th.unbind(actions, dim=1), strict=True)]
        return th.stack(parts, dim=1).sum(dim=1)

    def entropy(self) -> th.Tensor:
        """(B,) summed entropy; masked values contribute nothing."""
        if self._masks is None:
            parts = []
            for lg, p in zip(self.logits, self.probs, strict=True):
                clamped = th.clamp(lg, min=th.finfo(lg.dtype).min)
                parts.append(-(clamped * p).sum(-1))
        else:
            zero = th.tensor(0.0, device=self._base[0].device)
            parts = [-th.where(m, lg * p, zero).sum(-1)
                     for m, lg, p in zip(self._masks, self.logits, self.probs, strict=True)]
        return th.stack(parts, dim=1).sum(dim=1)

    def sample(self) -> th.Tensor:
        """(B, components) one draw per component."""
        return th.stack([th.multinomial(p, 1, True).T.reshape(-1) for p in self.probs], dim=1)

    def mode(self) -> th.Tensor:
        """(B, components) the most likely value of each component."""
        return th.stack([th.argmax(p, dim=1) for p in self.probs], dim=1)

    def actions_from_params(self, action_logits: th.Tensor,
                            deterministic: bool = False) -> th.Tensor:
        """Actions of an unmasked distribution with these logits."""
        self.proba_distribution(action_logits)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(self, action_logits: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Sampled actions and their log-probabilities."""
        actions = self.actions_from_params(action_logits)
        return actions, self.log_prob(actions)


class FactoredMlpPolicy(MaskableActorCriticPolicy):
    """MaskablePPO's ``MlpPolicy``; on a ``MultiDiscrete`` action its head is a
    ``FactoredMaskedDistribution`` (same network, same initialisation)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.action_space, spaces.MultiDiscrete):
            self.action_dist = FactoredMaskedDistribution(list(self.action_space.nvec))
