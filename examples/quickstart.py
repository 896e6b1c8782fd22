"""Quickstart: a community of 25 scripted residents, half of them without benevolence.

The PettingZoo loop by hand, then the same community through the step loop
(``run_community``), which also writes a run folder when given one.
"""

import civa_env
from civa_env.experiments.runner import run_community
from civa_env.policies import Batch, make_policy

env = civa_env.parallel_env(n_agents=25, condition="without:benevolence", prevalence=0.5)
policy = make_policy("scripted")
policy.reset(env.cfg, seed=0)
observations, infos = env.reset(seed=0)
while env.agents:
    living = {a: observations[a] for a in env.agents}
    actions = policy.act(Batch.from_observations(living, infos))
    observations, rewards, terminations, truncations, infos = env.step(actions)
print({k: round(v, 3) for k, v in env.summary().items() if k in ("nAUP", "SC", "ED", "IC", "CC")})

result = run_community(env.cfg, "scripted", seed=0, progress=False, plots=False)
print({k: round(result.summary[k], 3) for k in ("nAUP", "SC", "ED", "IC", "CC")})
