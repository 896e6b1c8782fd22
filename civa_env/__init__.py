"""CIVA: a simulated community for studying how human values shape what AI agents do together.

    import civa_env
    env = civa_env.parallel_env(n_agents=25, seed=0, condition="without:benevolence",
                                prevalence=0.5)
"""

from civa_env.community import CivaEnv, env, parallel_env, raw_env
from civa_env.config import Config
from civa_env.values import Value, ValueCondition

__version__ = "0.1.0"
__all__ = ["CivaEnv", "Config", "Value", "ValueCondition", "env", "parallel_env", "raw_env",
           "__version__"]


def _register() -> None:
    """Register ``civa/civa-v0`` in PettingZoo's parallel and AEC registries (once)."""
    import pettingzoo

    entries = (("parallel", "civa_env.community:parallel_env"),
               ("aec", "civa_env.community:raw_env"))
    for kind, entry in entries:
        registry = pettingzoo.parallel_registry if kind == "parallel" else pettingzoo.aec_registry
        if "civa/civa-v0" not in registry:  # a reloaded module would warn of an override
            pettingzoo.register(kind, id="civa/civa-v0", entry_point=entry)


_register()
