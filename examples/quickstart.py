"""Quickstart: a community of 25 scripted residents, half of them without benevolence."""

import civa_env
from civa_env.policies import make_policy

env = civa_env.parallel_env(n_agents=25, condition="without:benevolence", prevalence=0.5)
policy = make_policy("scripted")
policy.reset(env.cfg, seed=0)
observations, infos = env.reset(seed=0)
while env.agents:
    actions = policy.act({a: observations[a] for a in env.agents}, infos)
    observations, rewards, terminations, truncations, infos = env.step(actions)
print({k: round(v, 3) for k, v in env.summary().items() if k in ("nAUP", "SC", "ED", "IC", "CC")})
