"""The simulation: numpy (and scipy) only, no gymnasium or pettingzoo.

``reset(cfg, seed) -> World`` draws a world; ``step(world, actions) -> (World, Day)`` plays one
day (validation, rules, census, behaviours, running nAUP and the next view);
``step_factored(world, acts)`` plays it from factored actions (``world.factored``), an array
(N, C) of ints, the path of the vector API. Every client (the
PettingZoo env, the vector env, the SB3 VecEnv, the runner, the viewer) is an adapter over
these calls.
"""

from civa_env.world.config import Config
from civa_env.world.day import Day, Observation, World, reset, step, step_factored

__all__ = ["Config", "Day", "Observation", "World", "reset", "step", "step_factored"]
