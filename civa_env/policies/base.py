"""The batched policy interface and the registry that names policies on the command line.

A policy decides for many residents at once: ``act(batch)`` gets one ``Batch`` of all the
residents it controls today (possibly from several communities: keys are opaque, e.g. agent
names or ``(community, agent)`` tuples) and returns one action per key, in the flat or the
structured form. An LLM policy makes one batched generation call per ``act``; an RL policy
one forward pass.

Policies are named by a spec string ``name`` or ``name:argument`` (``random``,
``scripted``, ``llm``, ``ppo:runs/ppo/model.zip``); ``make_policy`` builds them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from civa_env.policies.batch import Batch
from civa_env.world.config import Config


class Policy(abc.ABC):
    """Acts for a batch of residents."""

    name: str = "policy"
    # Config fields that must agree across the communities one instance serves in a loop
    # (it learns them from the first community's config in ``reset``).
    same_across_communities: tuple[str, ...] = ()

    def reset(self, cfg: Config, seed: int | None = None) -> None:  # noqa: B027
        """Start of an episode: forget per-resident memory; ``cfg`` is the world's config."""

    @abc.abstractmethod
    def act(self, batch: Batch) -> dict[Hashable, Any]:
        """One action per key of ``batch`` (flat id or structured dict)."""

    def open_run(self, run_dir: Path | None) -> None:  # noqa: B027
        """Called by the runner before an episode with the run folder (None: not saving).

        Policies that keep files of their own (an LLM transcript) write them there.
        """

    def close(self) -> None:  # noqa: B027
        """Release models, files, processes."""

    def describe(self) -> dict[str, Any]:
        """What to write into a run's config.json about this policy."""
        return {"name": self.name}


_REGISTRY: dict[str, Callable[..., Policy]] = {}


def register_policy(name: str, factory: Callable[..., Policy]) -> None:
    """Make ``name`` (and ``name:argument``) buildable by ``make_policy``."""
    _REGISTRY[name] = factory


def available_policies() -> list[str]:
    """Registered policy names."""
    _load_builtin()
    return sorted(_REGISTRY)


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """Build a policy from ``name`` or ``name:argument`` (the argument is passed first).

    Raises:
        ValueError: unknown name, naming the known ones.
    """
    _load_builtin()
    name, _, argument = spec.partition(":")
    if name not in _REGISTRY:
        raise ValueError(f"unknown policy {spec!r}; known policies: {', '.join(sorted(_REGISTRY))}")
    factory = _REGISTRY[name]
    return factory(argument, **kwargs) if argument else factory(**kwargs)


def _load_builtin() -> None:
    """Register the built-in policies; heavy ones import their dependencies lazily."""
    if "random" in _REGISTRY:
        return
    from civa_env.policies.random import RandomPolicy

    register_policy("random", RandomPolicy)
    for module in ("civa_env.policies.scripted", "civa_env.policies.llm",
                   "civa_env.policies.sb3"):
        try:
            __import__(module)  # each registers itself on import
        except ModuleNotFoundError as err:
            if not err.name or not err.name.startswith("civa_env"):
                raise
