"""PettingZoo's own test utilities, at a small, the default and a large community size,
plus the checks they leave out (every observation inside its space at every step, no
revival, names from the pool)."""

from __future__ import annotations

import functools
import importlib
import string
import types

import numpy as np
import pytest
from pettingzoo.test import (
    api_test,
    bombardment_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    performance_benchmark,
    render_test,
    seed_test,
    state_test,
)
from pettingzoo.utils.wrappers import BaseWrapper

import civa_env
from civa_env.envs import parallel as community

# The module itself (pettingzoo.test re-exports its function under the same name).
perf_module = importlib.import_module("pettingzoo.test.performance_benchmark")

# (n_agents, days): days kept low so that the large size stays fast.
SIZES = {"small": (3, 8), "default": (25, 8), "large": (200, 4)}


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def size(request) -> dict:
    n, days = SIZES[request.param]
    return {"n_agents": n, "max_days": days}


def test_registry_makes_both_forms():
    import pettingzoo

    par = pettingzoo.make("parallel", "civa/civa-v0", n_agents=4)
    aec = pettingzoo.make("aec", "civa/civa-v0", n_agents=4)
    assert isinstance(par.unwrapped, civa_env.CivaEnv)
    assert isinstance(aec.unwrapped, civa_env.CivaEnv)
    assert par.possible_agents == [f"resident_{i}" for i in range(16)]


def test_parallel_api(size):
    parallel_api_test(civa_env.parallel_env(**size), num_cycles=size["max_days"] + 2)


def test_parallel_seed(size):
    parallel_seed_test(lambda: civa_env.parallel_env(**size))


def test_aec_api(size):
    api_test(civa_env.env(**size), num_cycles=size["max_days"] + 2)


def test_aec_seed(size):
    seed_test(lambda: civa_env.env(**size), num_cycles=size["max_days"] + 2)


def test_module_exposes_pettingzoo_factories():
    for mod in (civa_env, community):
        assert callable(mod.parallel_env) and callable(mod.env) and callable(mod.raw_env)
    assert community.env is community.raw_env


def test_max_cycles(size):
    # max_cycles_test takes the median of per-agent turn counts over *all* possible agents:
    # with unused names in the pool the median would be 0, so the pool is the founders here
    # (which also rules out births). It calls mod.parallel_env(max_cycles=4) and
    # mod.env(max_cycles=4); max_cycles is an alias of max_days.
    n = size["n_agents"]
    mod = types.SimpleNamespace(
        parallel_env=functools.partial(civa_env.parallel_env, n_agents=n, max_agents=n),
        env=functools.partial(civa_env.env, n_agents=n, max_agents=n))
    max_cycles_test(mod)


def test_render(size, capsys):
    render_test(lambda render_mode=None: civa_env.env(render_mode=render_mode, **size))
    printed = capsys.readouterr().out
    assert f"CIVA day 0/{size['max_days']}" in printed  # human mode printed the picture


def test_render_ansi_picture():
    env = civa_env.parallel_env(n_agents=30, render_mode="ansi")
    env.reset(seed=1)
    text = env.render()
    assert text.startswith("CIVA day 0/30: 30 alive")
    assert "factories (capacity/workers)" in text and "... and 10 more" in text
    assert civa_env.parallel_env(n_agents=3).render() is None  # no render mode: nothing


def test_state(size):
    state_test(civa_env.env(**size), civa_env.parallel_env(**size))


def test_state_vector_reflects_world():
    env = civa_env.parallel_env(n_agents=3, max_agents=4, n_factories=2)
    env.reset(seed=0)
    state = env.state()
    assert state.shape == env.state_space.shape == (4 * (4 + 2) + 2 + 1,)
    rows = state[: 4 * 6].reshape(4, 6)
    np.testing.assert_array_equal(rows[:, 0], [1, 1, 1, 0])  # alive
    np.testing.assert_allclose(rows[:3, 1], env.world.state.wealth[:3], rtol=1e-6)
    np.testing.assert_allclose(state[-3:-1], env.world.state.capacity, rtol=1e-6)
    assert state[-1] == 0  # day
    env.step({a: 0 for a in env.agents})
    assert env.state()[-1] == 1


class _StepReturnsObservation(BaseWrapper):
    """Test-only AEC wrapper for ``bombardment_test``.

    Upstream ``bombardment_test`` reads ``env.step(action)``'s return value as the next
    observation (an old AEC convention), while ``api_test`` asserts that ``step`` returns
    None. The env follows ``api_test``; this wrapper returns the next agent's observation so
    that ``bombardment_test`` checks real observations instead of ``None``.
    """

    def step(self, action):
        self.env.step(action)
        if not self.env.agents:
            return None  # episode over: bombardment_test resets before reading it
        return self.env.last()[0]


def test_bombardment(size):
    cycles = {3: 30, 25: 10, 200: 3}[size["n_agents"]]
    bombardment_test(_StepReturnsObservation(civa_env.env(**size)), cycles=cycles)


def test_bombardment_wrapper_sees_real_observations():
    env = _StepReturnsObservation(civa_env.env(n_agents=3, max_days=2))
    env.reset(seed=0)
    first = env.agent_selection
    obs = env.step(0)
    assert isinstance(obs, dict) and set(obs) == {"text", "features", "action_mask"}
    assert env.agent_selection != first


def test_performance_benchmark(size, monkeypatch, capsys):
    # performance_benchmark runs for 5 s of wall time; a fake clock that advances one second
    # per reading makes it run a few full rounds (with resets at the episode's end) instead.
    ticks = iter(range(10**6))
    monkeypatch.setattr(perf_module, "time", types.SimpleNamespace(time=lambda: next(ticks)))
    performance_benchmark(civa_env.env(**{**size, "max_days": 2}))
    assert "Finished performance benchmark" in capsys.readouterr().out


# ---- checks the utilities leave out --------------------------------------------------------


def _random_structured(rng: np.random.Generator, names: list[str], all_names: list[str]) -> dict:
    """Structured actions with messages, some with non-ASCII or over-long text."""
    texts = ["hello friend", "Grüße — ☀ naïve", "x" * 400, "line\nbreak\ttab", "\x00\x07bell",
             ""]
    out = {}
    for a in names:
        action = {"primary": int(rng.integers(0, 5)), "factory": int(rng.integers(0, 5)),
                  "secondary": int(rng.integers(0, 4)),
                  "target": str(rng.choice(all_names)), "amount": float(rng.uniform(0, 15))}
        action["messages"] = [{"to": str(rng.choice(all_names + ["everyone"])),
                               "text": str(rng.choice(texts))}
                              for _ in range(int(rng.integers(0, 3)))]
        out[a] = action
    return out


@pytest.mark.parametrize("n_agents,days", [(3, 30), (25, 30), (200, 6)])
def test_every_observation_in_space_every_step(n_agents, days):
    env = civa_env.parallel_env(n_agents=n_agents, max_days=days, max_agents=2 * n_agents,
                                birth_threshold=14.0, birth_prob=0.5)
    space = env.observation_space("resident_0")
    text_space = space["text"]
    rng = np.random.default_rng(n_agents)
    obs, infos = env.reset(seed=n_agents)
    ever_dead: set[str] = set()
    used = set(env.agents)
    while env.agents:
        for a, o in obs.items():
            day = env.world.state.day
            assert space.contains(o), f"{a} day {day}: observation outside the space"
            assert len(o["text"]) <= text_space.max_length
            assert set(o["text"]) <= set(string.printable)
        names = list(env.agents)
        actions = (_random_structured(rng, names, env.possible_agents[: env.world.state.n_used])
                   if env.world.state.day % 2 else
                   {a: int(rng.choice(np.flatnonzero(obs[a]["action_mask"]))) for a in names})
        before = list(env.agents)
        obs, rewards, terms, truncs, infos = env.step(actions)
        # Results for everyone who acted (newcomers join with their first observation).
        assert set(before) <= set(obs) == set(rewards) == set(terms) == set(truncs) == set(infos)
        newcomers = set(obs) - set(before)
        assert not newcomers & used, "a used name came back as a newcomer"
        for a in newcomers:
            assert not terms[a] and a in env.agents
        used |= newcomers
        assert set(env.agents) <= set(env.possible_agents)
        assert not ever_dead & set(env.agents), "a dead resident came back"
        assert not ever_dead & newcomers
        ever_dead |= {a for a in before if terms[a]}
        for a in before:
            assert (a in env.agents) == (not terms[a] and not truncs[a])
    for o in obs.values():
        assert space.contains(o)
    # Newcomers took names in pool order (one born on the last day never acts, so it never
    # appears in the dicts).
    w = env.world.state
    last_day = {env.possible_agents[i] for i in np.flatnonzero(w.born_day == w.day)
                if w.parent[i] >= 0}
    assert used == set(env.possible_agents[: w.n_used]) - last_day
    if n_agents >= 25:
        assert env.world.state.n_used > n_agents, "births expected with the low threshold"


def test_numeric_mode_leaves_text_empty_but_in_space():
    env = civa_env.parallel_env(n_agents=5, obs_mode="numeric")
    obs, infos = env.reset(seed=0)
    for a in env.agents:
        assert obs[a]["text"] == ""
        assert env.observation_space(a).contains(obs[a])
    obs, *_ = env.step({a: 0 for a in env.agents})
    assert all(o["text"] == "" for o in obs.values())


def test_spaces_fixed_by_config_not_community_size():
    # With the factories held fixed (5), and with them growing with the founders (100
    # and 500 founders have 20 and 100 factories, both seen through 8 factory slots).
    small = civa_env.parallel_env(n_agents=5)
    big = civa_env.parallel_env(n_agents=500, n_factories=5)
    assert small.action_space("resident_0").n == big.action_space("resident_0").n
    grown = civa_env.parallel_env(n_agents=500)
    assert grown.cfg.n_factories == 100
    assert (civa_env.parallel_env(n_agents=100).observation_space("resident_0")["features"].shape
            == grown.observation_space("resident_0")["features"].shape)
    assert civa_env.parallel_env(n_agents=100).action_space("resident_0") == \
        grown.action_space("resident_0")
    assert (small.observation_space("resident_0")["features"].shape
            == big.observation_space("resident_0")["features"].shape)
    assert small.action_space("resident_0") is small.action_space("resident_3")
