"""CIVA: a simulated community for studying how human values shape what AI agents do together.

    import civa_env
    env = civa_env.parallel_env(n_agents=25, seed=0, condition="without:benevolence",
                                prevalence=0.5)

The package is layered (README "Project layout"): ``civa_env.world`` is the simulation
(numpy and scipy; numba for the attack kernel, loaded on first use), ``civa_env.envs`` the
gymnasium/PettingZoo adapters, then ``policies``,
``experiments``, ``viewer`` and the ``civa`` command line. ``import civa_env`` stays light: the
adapters are imported on first use of ``parallel_env``, ``env``, ``raw_env``, ``CivaEnv`` or
``vector_env`` (many communities as one batch of arrays, ``civa_env.envs.vector``), and
``civa/civa-v0`` is registered with PettingZoo as soon as both CIVA and PettingZoo are imported,
in either order; likewise ``civa/Resident-v0`` (``civa_env.envs.single.ResidentEnv``, one
learner among background residents) with Gymnasium.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

from civa_env.world.config import Config
from civa_env.world.values import Value, ValueCondition

__version__ = "0.2.0.dev0"
__all__ = ["CivaEnv", "Config", "Value", "ValueCondition", "env", "parallel_env", "raw_env",
           "vector_env", "__version__"]

_ADAPTERS = ("CivaEnv", "env", "parallel_env", "raw_env", "vector_env")


def __getattr__(name: str) -> Any:
    """The PettingZoo adapters, imported on first use (PEP 562)."""
    if name in _ADAPTERS:
        return getattr(importlib.import_module("civa_env.envs"), name)
    raise AttributeError(f"module 'civa_env' has no attribute {name!r}")


RESIDENT_ENV_ID = "civa/Resident-v0"


def _register_gymnasium() -> None:
    """Register ``civa/Resident-v0`` with Gymnasium (once; the entry point is a string, so
    nothing of ``civa_env.envs`` is imported until ``gymnasium.make``)."""
    gymnasium = sys.modules["gymnasium"]
    if RESIDENT_ENV_ID not in gymnasium.registry:
        gymnasium.register(id=RESIDENT_ENV_ID, entry_point="civa_env.envs.single:ResidentEnv")


def _register_pettingzoo() -> None:
    importlib.import_module("civa_env.envs")


_REGISTRARS = {"pettingzoo": _register_pettingzoo, "gymnasium": _register_gymnasium}


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Registers ``civa/civa-v0`` once PettingZoo finishes importing (and ``civa/Resident-v0``
    once Gymnasium does).

    ``pettingzoo.make("parallel", "civa/civa-v0")`` needs the entry in PettingZoo's registry,
    but importing PettingZoo here would load gymnasium into every ``import civa_env.world``.
    This finder wraps PettingZoo's own loader so that registration runs right after it.
    """

    def __init__(self, name: str = "pettingzoo") -> None:
        self.name = name

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        register = _REGISTRARS[fullname]

        def exec_then_register(module: Any) -> None:
            exec_module(module)
            register()

        loader.exec_module = exec_then_register
        return spec


for _name, _register in _REGISTRARS.items():
    if _name in sys.modules:
        _register()
    elif not any(isinstance(f, _RegisterAfterImport) and f.name == _name
                 for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport(_name))
