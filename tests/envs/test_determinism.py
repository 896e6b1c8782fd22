"""Multi-step determinism: the same config and seed give the same episode, step by step
(``parallel_seed_test`` only compares one step)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pytest

import civa_env

TEXTS = ["hello friend", "I will attack you", "let us share factory 2", "ünïcode ☀ text", ""]


def seeded_actions(obs: dict, agents: list[str], rng: np.random.Generator, env) -> dict:
    """Random actions from the masks, half flat ids, half structured dicts with messages."""
    actions = {}
    for a in agents:
        valid = np.flatnonzero(obs[a]["action_mask"])
        # Mostly work and no secondary action, so that the community lasts the episode.
        if rng.random() < 0.6:
            valid = valid[valid % env.catalogue.n_secondary == 0]
        if rng.random() < 0.8:
            worked = valid[env.catalogue.p_kind[valid // env.catalogue.n_secondary] == 0]
            valid = worked if len(worked) else valid
        flat = int(rng.choice(valid))
        if rng.random() < 0.5:
            actions[a] = flat
            continue
        d = env.catalogue.decode(np.array([flat]))
        others = [b for b in agents if b != a] or [a]
        actions[a] = {
            "primary": int(d["primary"][0]), "factory": int(d["factory"][0]),
            "secondary": str(rng.choice(["none", "none", "gift", "attack", "merge"])),
            "target": str(rng.choice(others)), "amount": float(rng.uniform(0, 5)),
            "messages": [{"to": str(rng.choice(others + ["everyone"])),
                          "text": str(rng.choice(TEXTS))} for _ in range(int(rng.integers(0, 3)))],
        }
    return actions


def run(seed: int, tmp_path=None, **config) -> dict:
    """A whole episode with seeded random actions; everything it returned, as JSON text."""
    env = civa_env.parallel_env(**{"n_agents": 12, "max_agents": 30, "max_days": 30,
                                   "birth_threshold": 15.0, **config})
    obs, infos = env.reset(seed=seed)
    rng = np.random.default_rng(1000 + seed)
    trace = [_dump((obs, infos))]
    while env.agents:
        out = env.step(seeded_actions(obs, list(env.agents), rng, env))
        obs = out[0]
        trace.append(_dump(out))
    lines = [json.dumps(r, sort_keys=True) for r in env.log.records()]
    if tmp_path is not None:
        path = tmp_path / f"events_{seed}_{len(list(tmp_path.iterdir()))}.jsonl"
        env.log.write_jsonl(path)
        lines_file = path.read_text()
    else:
        lines_file = None
    return {"trace": trace, "log": lines, "file": lines_file, "days": env.world.state.day,
            "state": env.state().tobytes(), "summary": json.dumps(env.summary(), sort_keys=True)}


def _dump(value) -> str:
    """Exact JSON of nested dicts with arrays (arrays as raw bytes in hex: no rounding)."""

    def convert(x):
        if isinstance(x, Mapping):  # dicts, and the lazily computed legal facts
            return {str(k): convert(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [convert(v) for v in x]
        if isinstance(x, np.ndarray):
            return [str(x.dtype), list(x.shape), x.tobytes().hex()]
        if isinstance(x, (np.floating, float)):
            return float(x).hex()
        if isinstance(x, np.integer):
            return int(x)
        return x

    return json.dumps(convert(value), sort_keys=True)


def test_same_seed_same_episode(tmp_path):
    a = run(3, tmp_path)
    b = run(3, tmp_path)
    assert a["days"] == 30, "the episode should last all 30 days"
    assert len(a["trace"]) == len(b["trace"]) == 31
    for day, (x, y) in enumerate(zip(a["trace"], b["trace"], strict=True)):
        assert x == y, f"observations, rewards or infos differ on day {day}"
    assert a["log"] == b["log"]
    assert a["file"] == b["file"] and a["file"].count("\n") > 100
    assert a["state"] == b["state"] and a["summary"] == b["summary"]
    # The log holds messages and births, so the comparison covers them.
    assert any('"kind": "message"' in line for line in a["log"])
    assert any('"kind": "birth"' in line for line in a["log"])


def test_different_seed_differs():
    a, b = run(3), run(4)
    assert a["trace"][0] != b["trace"][0]
    assert a["log"] != b["log"]


def test_reset_restarts_the_same_episode():
    env = civa_env.parallel_env(n_agents=6, max_days=5)

    def episode():
        obs, infos = env.reset(seed=9)
        rng = np.random.default_rng(0)
        out = [_dump((obs, infos))]
        while env.agents:
            step = env.step(seeded_actions(obs, list(env.agents), rng, env))
            obs = step[0]
            out.append(_dump(step))
        return out

    assert episode() == episode()


def test_config_seed_is_the_default_seed():
    # Config(seed=...) seeds the first reset() without a seed; a later reset() without a
    # seed continues the same generator (a new episode, not a replay).
    a = civa_env.parallel_env(n_agents=5, seed=21)
    b = civa_env.parallel_env(n_agents=5)
    obs_a, _ = a.reset()
    obs_b, _ = b.reset(seed=21)
    assert _dump(obs_a) == _dump(obs_b)
    obs_a2, _ = a.reset()
    assert _dump(obs_a2) != _dump(obs_a)
    c = civa_env.parallel_env(civa_env.Config(n_agents=5, seed=21))
    assert _dump(c.reset()[0]) == _dump(obs_a)


def test_aec_form_is_deterministic():
    def episode():
        env = civa_env.env(n_agents=4, max_days=6, seed=2)
        env.reset(seed=2)
        rng = np.random.default_rng(5)
        seen = []
        for agent in env.agent_iter():
            obs, reward, term, trunc, info = env.last()
            seen.append((agent, obs["features"].tobytes(), obs["text"], reward, term, trunc))
            action = None if term or trunc else int(
                rng.choice(np.flatnonzero(obs["action_mask"])))
            env.step(action)
        return seen

    first = episode()
    assert len(first) > 20 and first == episode()


@pytest.mark.parametrize("obs_mode", ["numeric"])
def test_numeric_mode_same_world_as_text_mode(obs_mode):
    # Turning text off must not change the world: the same seed gives the same event log.
    # (Both modes draw the same random numbers; structured actions use names, not views.)
    text = run(5, n_agents=8, max_days=10)
    numeric = run(5, n_agents=8, max_days=10, obs_mode=obs_mode)
    assert text["log"] == numeric["log"]


def test_small_config_episode_truncates_at_max_days(small_cfg, seeded_env):
    # The same small world twice through the shared fixtures: same days, same log.
    logs = []
    for _ in range(2):
        env, obs, infos = seeded_env(**small_cfg.to_dict())  # reset with the config's seed
        steps = 0
        while env.agents:
            _, _, terms, truncs, _ = env.step({a: 0 for a in env.agents})
            steps += 1
        assert steps == small_cfg.max_days and all(truncs.values())
        logs.append([json.dumps(r, sort_keys=True) for r in env.log.records()])
    assert logs[0] == logs[1]
