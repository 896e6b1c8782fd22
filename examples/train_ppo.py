"""Train RL residents in a few lines, then put them in a community with scripted residents.

    python examples/train_ppo.py            # one to two minutes on a CPU

The full training script, with logging, checkpoints and evaluation, is
``baselines/train_ppo.py``; this example shows the pieces it is made of.
"""

from __future__ import annotations

from pathlib import Path

from civa_env import Config
from civa_env.envs.sb3 import CivaVecEnv, maskable_ppo
from civa_env.experiments.runner import run_communities
from civa_env.policies import make_policy
from civa_env.policies.sb3 import save_checkpoint

# A small world (10 residents, 3 factories, 4 residents in view) so training takes a minute.
cfg = Config(n_agents=10, n_factories=3, view_size=4, reward="survival", obs_mode="numeric")

# Every resident of two communities is a slot of one SB3 VecEnv (parameter sharing); residents
# beyond the learner's seats (and their descendants) are played by the scripted policy.
# Factored actions: one choice per component (cheap-talk messages included), one mask each.
venv = CivaVecEnv(cfg, n_envs=2, background="scripted", seed=0, action_mode="factored")
# MaskablePPO that learns only from seats holding a resident (vacant seats are padding).
model = maskable_ppo(venv, n_steps=64, batch_size=640, n_epochs=4, learning_rate=1e-3,
                     gamma=0.95, seed=0, device="cpu")
model.learn(30_000)  # MaskablePPO reads the masks through venv.env_method("action_masks")

# Save with the world's shape recorded, so loading in another world fails with a clear error.
path = save_checkpoint(model, Path("runs/examples/ppo_small.zip"), cfg)
print(f"saved {path}")

# Half trained residents, half scripted (or random) ones, in five communities run side by side
# in the step loop that `civa run` uses (no run folders); metrics are broken down by policy.
policies = {"ppo": make_policy(f"ppo:{path}", seed=0), "scripted": make_policy("scripted"),
            "random": make_policy("random")}
for mix in [{"ppo": 0.5, "scripted": 0.5}, {"ppo": 0.5, "random": 0.5}]:
    results = run_communities([cfg] * 5, range(100, 105), mix, None, policies=policies,
                              progress=False, plots=False)
    naup = sum(r.summary["nAUP"] for r in results) / len(results)
    survival = {name: sum(r.summary["by_policy"][name]["survival"] for r in results) / len(results)
                for name in mix}
    print(f"{' + '.join(mix)}: nAUP {naup:.2f}; share of residents alive at the end "
          + ", ".join(f"{k} {v:.2f}" for k, v in survival.items()))
