"""Policies: who decides for a batch of residents. See ``base.Policy``."""

from civa_env.policies.base import Policy, available_policies, make_policy, register_policy
from civa_env.policies.batch import Batch
from civa_env.policies.random import RandomPolicy

__all__ = ["Batch", "Policy", "RandomPolicy", "available_policies", "make_policy",
           "register_policy"]
