"""Adapters over the world: the only package that imports gymnasium, pettingzoo and SB3.

``parallel_env`` (PettingZoo ``ParallelEnv``; ``obs_mode="features"`` gives it Box
observations and fixed name slots for SuperSuit), ``env``/``raw_env`` (its AEC form),
``vector_env`` (many communities, arrays over resident slots) and the gymnasium spaces;
``civa_env.envs.sb3`` holds the stable-baselines3 ``VecEnv`` and ``civa_env.envs.single`` the
single-agent Gymnasium env ``civa/Resident-v0`` (one learner among background residents,
registered by ``import civa_env``). Importing this package registers ``civa/civa-v0`` in
PettingZoo's registries. Recipes: docs/rl.md.
"""

from civa_env.envs.parallel import CivaEnv, env, parallel_env, raw_env
from civa_env.envs.vector import CivaVectorEnv, vector_env

__all__ = ["CivaEnv", "CivaVectorEnv", "env", "parallel_env", "raw_env", "vector_env"]


def _register() -> None:
    """Register ``civa/civa-v0`` in PettingZoo's parallel and AEC registries (once)."""
    import pettingzoo

    entries = (("parallel", "civa_env.envs.parallel:parallel_env"),
               ("aec", "civa_env.envs.parallel:raw_env"))
    for kind, entry in entries:
        registry = pettingzoo.parallel_registry if kind == "parallel" else pettingzoo.aec_registry
        if "civa/civa-v0" not in registry:  # a reloaded module would warn of an override
            pettingzoo.register(kind, id="civa/civa-v0", entry_point=entry)


_register()
