"""RL on factored actions: the VecEnv's MultiDiscrete mode, cheap talk from learners, and
MaskablePPO that learns only from seated slots."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from civa_env import Config  # noqa: E402
from civa_env.envs.sb3 import CivaVecEnv, maskable_ppo  # noqa: E402
from civa_env.world import factored  # noqa: E402
from civa_env.world.kinds import K  # noqa: E402

SMALL = dict(n_agents=10, n_factories=3, view_size=4, max_days=20, obs_mode="numeric")


def sample(masks: np.ndarray, spec: factored.FactoredSpec, rng) -> np.ndarray:
    o = spec.offsets
    out = np.zeros((len(masks), factored.N_COMPONENTS), np.int64)
    for c in range(factored.N_COMPONENTS):
        s = np.where(masks[:, o[c]:o[c + 1]], rng.random((len(masks), int(spec.nvec[c]))), -1)
        out[:, c] = s.argmax(axis=1)
    return out


def test_factored_mode_spaces_masks_and_cheap_talk():
    venv = CivaVecEnv(Config(**SMALL), n_envs=2, background="scripted", seed=0,
                      action_mode="factored")
    spec = venv.spec
    assert venv.action_space.nvec.tolist() == spec.nvec.tolist()
    venv.reset()
    rng = np.random.default_rng(0)
    learners = set()
    for _ in range(6):
        masks = venv.action_masks()
        assert masks.shape == (venv.num_envs, spec.mask_size)
        acts = sample(masks, spec, rng)
        acts[:, 4] = 1 + factored.MESSAGE_KINDS.index("friendly")  # everyone talks
        seated = venv._occupant.ravel()
        learners |= {(s // venv.seats, int(i)) for s, i in enumerate(seated) if i >= 0}
        venv.step(acts)
    sent = set()
    for e, w in enumerate(venv.worlds):
        cols, texts = w.log.columns()
        rows = (cols["kind"] == K.MESSAGE).nonzero()[0]
        sent |= {(e, int(cols["actor"][r])) for r in rows
                 if texts[int(r)] == factored.render_message(1)}
    assert sent and sent <= learners  # learners, and only they, sent the cheap talk


def test_a_padded_seat_allows_only_nothing():
    venv = CivaVecEnv(Config(**SMALL), n_envs=1, background="random", seed=0, seats=15,
                      action_mode="factored")
    venv.reset()
    masks = venv.action_masks()
    vacant = venv._occupant.ravel() < 0
    assert vacant.any()
    assert (masks[vacant].sum(axis=1) == factored.N_COMPONENTS).all()


@pytest.mark.parametrize("mode", ["flat", "factored"])
def test_maskable_ppo_trains_only_on_seated_slots(mode, one_torch_thread, tmp_path):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback

    from civa_env.envs.sb3_buffer import SeatedRolloutBuffer

    class Seats(BaseCallback):
        """What the env says was seated at each step (on_step runs before the buffer's add)."""

        def __init__(self) -> None:
            super().__init__()
            self.rows: list[np.ndarray] = []

        def _on_step(self) -> bool:
            self.rows.append(self.training_env.last_seated.copy())
            return True

    # More seats than founders: some slots are padding from the start.
    venv = CivaVecEnv(Config(**SMALL), n_envs=1, background="random", seed=0, seats=14,
                      action_mode=mode)
    model = maskable_ppo(venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, verbose=0,
                         policy_kwargs={"net_arch": [32]})
    seats = Seats()
    model.learn(total_timesteps=16 * venv.num_envs, callback=seats)
    buf = model.rollout_buffer
    seated = buf.seated
    # The buffer tells vacant seats by their masks: exactly what the env says.
    np.testing.assert_array_equal(seated, np.stack(seats.rows))
    assert 0 < seated.sum() < seated.size  # some padding, some residents
    sizes = [len(batch.actions) for batch in buf.get(32)]
    assert sum(sizes) == int(seated.sum())
    assert min(sizes) >= 16  # nearly equal minibatches: never a lone transition
    assert np.isfinite(buf.advantages).all()
    # A saved model holds no env (the buffer keeps no reference to it); loaded to train on,
    # it goes on leaving padding out.
    path = tmp_path / "m.zip"
    model.save(path)
    import zipfile
    with zipfile.ZipFile(path) as zf:
        data = zf.read("data").decode()
    assert "CivaVecEnv" not in data and len(data) < 60_000
    again = MaskablePPO.load(path, env=venv)
    assert isinstance(again.rollout_buffer, SeatedRolloutBuffer)
    again.learn(total_timesteps=16 * venv.num_envs)
    assert not again.rollout_buffer.seated.all()


@pytest.mark.parametrize("masked", [True, False])
def test_factored_head_matches_sb3_contribs_to_the_bit(masked):
    import torch
    from sb3_contrib.common.maskable.distributions import MaskableMultiCategoricalDistribution

    from civa_env.envs.sb3_policy import FactoredMaskedDistribution

    spec = factored.FactoredSpec.of(Config(**SMALL))
    dims = spec.nvec.tolist()
    rng = np.random.default_rng(0)
    logits = torch.as_tensor(rng.normal(0.0, 3.0, (40, spec.mask_size)), dtype=torch.float32)
    masks = rng.random((40, spec.mask_size)) < 0.4
    masks[:, spec.offsets[:-1]] = True  # "nothing" is always allowed
    results = []
    for cls in (MaskableMultiCategoricalDistribution, FactoredMaskedDistribution):
        x = logits.clone().requires_grad_(True)
        dist = cls(dims).proba_distribution(x * 1.0)
        if masked:
            dist.apply_masking(torch.as_tensor(masks, dtype=torch.float32))  # as in training
        torch.manual_seed(0)
        actions = dist.sample()
        log_prob, entropy = dist.log_prob(actions), dist.entropy()
        (log_prob.sum() + 0.01 * entropy.sum()).backward()
        parts = torch.cat([d.logits for d in dist.distributions], dim=1)
        results.append((actions, log_prob, entropy, dist.mode(), parts, x.grad))
    for ours, theirs in zip(*results, strict=True):
        assert torch.equal(ours, theirs)


def test_maskable_ppo_learns_what_sb3_contribs_policy_learns(one_torch_thread):
    import torch
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    params = []
    for policy in (MaskableActorCriticPolicy, "MlpPolicy"):
        venv = CivaVecEnv(Config(**SMALL), n_envs=1, background="random", seed=0,
                          action_mode="factored")
        model = maskable_ppo(venv, policy, n_steps=16, batch_size=32, n_epochs=2, seed=0,
                             verbose=0, policy_kwargs={"net_arch": [32]})
        model.learn(total_timesteps=32 * venv.num_envs)
        params.append([p.detach().clone() for p in model.policy.parameters()])
    assert type(model.policy.action_dist).__name__ == "FactoredMaskedDistribution"
    assert all(torch.equal(a, b) for a, b in zip(*params, strict=True))
