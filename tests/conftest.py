"""Shared fixtures: small and exact configs, seeded envs, hand-built world states."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import civa_env
from civa_env.world.actions import ActionBatch
from civa_env.world.config import Config
from civa_env.world.day import reset as reset_world
from civa_env.world.state import WorldState

# Config overrides that take the randomness out of the rules, so that tests can compute
# exact answers: no production or upkeep noise, no outages, no births, nothing found.
EXACT = {
    "production_noise": 0.0,
    "upkeep_noise": 0.0,
    "outage_prob": 0.0,
    "birth_prob": 0.0,
    "explore_reveal_prob": 0.0,
    "explore_find_prob": 0.0,
}


@pytest.fixture
def small_cfg() -> Config:
    """Three residents, five days, text on."""
    return Config(n_agents=3, max_days=5, seed=0)


@pytest.fixture
def exact_cfg() -> Callable[..., Config]:
    """Factory of noise-free configs: ``exact_cfg(n_agents=4, upkeep=2.0)``."""

    def make(**overrides: Any) -> Config:
        fields = {"n_agents": 3, "max_days": 30, "seed": 0, **EXACT, **overrides}
        return Config.from_kwargs(**fields)

    return make


def sample_factored(obs: dict, spec: Any, rng: np.random.Generator,
                    talk: bool = True) -> np.ndarray:
    """A uniformly random valid value of each component of each slot of a vector env's
    observation (``spec``: its ``factored.FactoredSpec``); ``talk=False``: no messages."""
    from civa_env.world import factored

    m = obs["action_mask"].astype(bool)
    o = spec.offsets
    acts = np.empty((len(m), factored.N_COMPONENTS), np.int64)
    for c in range(factored.N_COMPONENTS):
        s = np.where(m[:, o[c]:o[c + 1]], rng.random((len(m), int(spec.nvec[c]))), -1.0)
        acts[:, c] = s.argmax(axis=1)
    if not talk:
        acts[:, 4] = 0
    return acts


def assert_same_actions(got: Any, want: Any, where: str) -> None:
    """Two ``ActionBatch``es hold the same actions bit for bit (floats compared as bits), the
    same flags in the same order and the same messages."""
    for name in ("primary", "factory", "secondary", "target", "amount"):
        x, y = getattr(got, name), getattr(want, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x.view(np.uint64) if x.dtype.kind == "f" else x,
                                      y.view(np.uint64) if y.dtype.kind == "f" else y,
                                      err_msg=f"{where}: {name}")
    assert list(got.invalid.items()) == list(want.invalid.items()), where
    assert got.messages == want.messages, where


def build_world(cfg: Config, seed: int = 0, **arrays: Any) -> WorldState:
    """The state of ``world.reset(cfg, seed)``, then arrays set by hand (``wealth=[...]``
    sets the first entries)."""
    state = reset_world(cfg, seed).state
    for name, value in arrays.items():
        current = getattr(state, name)
        if isinstance(current, np.ndarray):
            value = np.asarray(value, dtype=current.dtype)
            if value.ndim == current.ndim and value.shape[0] < current.shape[0]:
                current[: value.shape[0]] = value
            else:
                current[...] = value
        else:
            setattr(state, name, value)
    return state


@pytest.fixture
def world() -> Callable[..., WorldState]:
    """Factory of hand-built states: ``world(cfg, wealth=[5, 5, 5], skill=[1, 1, 1])``."""
    return build_world


def idle_batch(cfg: Config) -> ActionBatch:
    """Everyone idles, for the pool of ``cfg``."""
    return ActionBatch.idle(cfg.max_agents)


@pytest.fixture
def batch() -> Callable[[Config], ActionBatch]:
    """Factory of all-idle action batches to edit by hand."""
    return idle_batch


@pytest.fixture
def seeded_env() -> Callable[..., civa_env.CivaEnv]:
    """Factory of reset envs: ``env, obs, infos = seeded_env(seed=3, n_agents=5)``."""

    def make(seed: int | None = 0, **config: Any):
        env = civa_env.parallel_env(seed=seed, **config)
        obs, infos = env.reset(seed=seed)
        return env, obs, infos

    return make


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module's tests (the LLM tests use it): small models'
    ops are too small to gain from more, and on a busy 2-core machine spinning thread pools
    made a day several times slower."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def simd_pin() -> str | None:
    """The ``NPY_DISABLE_CPU_FEATURES`` value that makes numpy use its X86_V3 (AVX2) kernels,
    which call libm for float64 exp and log1p as the world's compiled kernels do (its
    AVX-512 kernels of exp, log1p, ... can differ in the last bit); "" when none need
    disabling, None when the machine lacks X86_V3."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    if not __cpu_features__.get("X86_V3"):
        return None
    order = list(__cpu_dispatch__)
    above = order[order.index("X86_V3") + 1:] if "X86_V3" in order else []
    return " ".join(f for f in above if __cpu_features__.get(f))


@pytest.fixture
def numpy_like_libm(request: pytest.FixtureRequest) -> None:
    """For tests comparing a compiled kernel with the numpy code it replaced, bit for bit:
    where numpy would use AVX-512 kernels for exp or log1p (which may differ from libm in
    the last bit), the test runs in a subprocess with them disabled, and is skipped here."""
    pin = simd_pin()
    if not pin or os.environ.get("NPY_DISABLE_CPU_FEATURES"):
        return
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid],
        cwd=root, capture_output=True, text=True,
        env={**os.environ, "NPY_DISABLE_CPU_FEATURES": pin})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    pytest.skip("checked in a subprocess with numpy's X86_V3 kernels (this machine's AVX-512 "
                "exp and log1p may differ from libm in the last bit)")

