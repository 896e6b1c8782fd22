"""A policy's behaviour never depends on how the observation is rendered: scripted
communities give identical event logs with text on and off, in every condition."""

from __future__ import annotations

import io

import pytest

import civa_env
from civa_env.experiments.runner import run_community
from civa_env.policies import Batch, make_policy
from civa_env.world.config import Config
from civa_env.world.values import all_conditions


def scripted_log(condition: str, seed: int, obs_mode: str) -> str:
    """The JSONL event log of a scripted community played through the PettingZoo env."""
    env = civa_env.parallel_env(n_agents=25, max_days=30, seed=seed, condition=condition,
                                prevalence=1.0 if condition != "baseline" else 0.0,
                                obs_mode=obs_mode)
    policy = make_policy("scripted")
    policy.reset(env.cfg, seed)
    obs, infos = env.reset(seed=seed)
    while env.agents:
        live = {a: obs[a] for a in env.agents}
        obs, _, _, _, infos = env.step(policy.act(Batch.from_observations(live, infos)))
    out = io.StringIO()
    for d in range(env.log.n_days):
        env.log.write_day(out, d)
    return out.getvalue()


@pytest.mark.parametrize("condition", all_conditions())
def test_scripted_log_is_the_same_with_text_on_and_off(condition):
    for seed in range(3):
        text = scripted_log(condition, seed, "text")
        assert text == scripted_log(condition, seed, "numeric"), (condition, seed)
        assert '"kind": "message"' in text or condition == "without:benevolence"


@pytest.mark.parametrize("condition", ["with:power", "without:benevolence", "baseline"])
def test_step_loop_summary_is_the_same_with_text_on_and_off(condition):
    cfg = Config(n_agents=25, condition=condition, prevalence=0.5)
    a = run_community(cfg.replace(obs_mode="text"), "scripted", seed=3, progress=False,
                      plots=False)
    b = run_community(cfg.replace(obs_mode="numeric"), "scripted", seed=3, progress=False,
                      plots=False)
    assert a.summary == b.summary
