"""RL residents: the SB3 vector env, training, checkpoints and mixed communities.

Training runs in a small world (10 residents, 3 factories, 4 view slots: 189 flat actions,
75 features) so that the whole file takes about a minute on two CPU cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from civa_env import Config  # noqa: E402
from civa_env.envs.sb3 import CivaVecEnv, idle_action  # noqa: E402
from civa_env.policies import make_policy  # noqa: E402
from civa_env.policies.batch import Batch  # noqa: E402
from civa_env.policies.sb3 import CheckpointMismatch, read_metadata  # noqa: E402
from civa_env.world import factored  # noqa: E402
from civa_env.world.day import shape_signature  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(n_agents=10, n_factories=3, view_size=4, max_days=30, obs_mode="numeric")


def _load_train_module():
    spec = importlib.util.spec_from_file_location("civa_train_ppo",
                                                  ROOT / "baselines" / "train_ppo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


train_ppo = _load_train_module()


def _small_args(tmp: Path, **kw) -> object:
    base = dict(out_dir=str(tmp), n_agents=10, n_factories=3, view_size=4, reward="survival",
                total_timesteps=20_000, eval_episodes=0, plot=False, checkpoint_every=0,
                background="random")
    base.update(kw)
    return train_ppo.Args(**base)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A small MaskablePPO checkpoint (trained briefly; used for loading and mixing)."""
    tmp = tmp_path_factory.mktemp("ckpt")
    summary = train_ppo.train(_small_args(tmp, total_timesteps=4_000, exp_name="tiny"))
    return Path(summary["checkpoint"])


# ---- (a) learning ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trained_policy_beats_random_residents(tmp_path, seed):
    """After a short MaskablePPO run, trained residents outlive random ones (survival reward)."""
    summary = train_ppo.train(_small_args(tmp_path, seed=seed))
    cfg = Config(**{k: v for k, v in SMALL.items()}, reward="survival")
    ppo = make_policy(f"ppo:{summary['checkpoint']}", seed=seed)
    rnd = make_policy("random", seed=seed)
    policies = {"ppo": ppo, "random": rnd}
    # Side by side in the same communities (the step loop): the training reward per resident.
    mixed = train_ppo.play(cfg, {"ppo": 0.5, "random": 0.5}, policies, 4, 500 + 10 * seed)
    ppo_return = np.mean([r["by_policy"]["ppo"]["mean_return"] for r in mixed])
    rnd_return = np.mean([r["by_policy"]["random"]["mean_return"] for r in mixed])
    assert ppo_return > rnd_return + 5.0, (ppo_return, rnd_return)
    # And as whole communities: nAUP of all-PPO against all-random.
    all_ppo = train_ppo.play(cfg, {"ppo": 1.0}, policies, 4, 700 + 10 * seed)
    all_rnd = train_ppo.play(cfg, {"random": 1.0}, policies, 4, 700 + 10 * seed)
    naup_ppo = np.mean([r["nAUP"] for r in all_ppo])
    naup_rnd = np.mean([r["nAUP"] for r in all_rnd])
    # (Factored actions, 20k steps: all-PPO nAUP 0.32 against random's 0.15 at seed 0, the
    # weakest seed; the flat catalogue cleared +0.2 at every seed.)
    assert naup_ppo > naup_rnd + 0.1, (naup_ppo, naup_rnd)


@pytest.mark.parametrize("reward", ["survival", "community", "wealth"])
def test_evaluation_returns_match_the_env_rewards(reward):
    """``play``'s per-policy returns, rebuilt from the step loop's records, equal the sum of
    the rewards the env hands out (deaths, newcomers and the last day included)."""
    from civa_env.envs.parallel import CivaEnv
    from civa_env.world.day import policy_seed

    cfg = Config(**SMALL, reward=reward, birth_threshold=11.0, birth_prob=0.6, upkeep=1.3)
    for name, seed in [("random", 0), ("scripted", 1)]:
        env, policy = CivaEnv(cfg), make_policy(name)
        policy.reset(cfg, seed=policy_seed(seed, 0))  # the step loop's seed for policy 0
        obs, infos = env.reset(seed=seed)
        returns: dict[str, float] = {}
        while env.agents:
            live = {a: obs[a] for a in env.agents}
            obs, rewards, _, _, infos = env.step(policy.act(Batch.from_observations(live, infos)))
            for a, r in rewards.items():
                returns[a] = returns.get(a, 0.0) + r
        (record,) = train_ppo.play(cfg, {name: 1.0}, {name: make_policy(name)}, 1, seed)
        group = record["by_policy"][name]
        assert group["residents"] == env.world.state.n_used > cfg.n_agents  # newcomers counted
        expected = sum(returns.values()) / env.world.state.n_used
        assert group["mean_return"] == pytest.approx(expected, abs=1e-3)
        # The breakdown is the runner's: wealth at the end averages the living only.
        living = env.world.state.alive
        assert group["mean_wealth_end"] == pytest.approx(
            env.world.state.wealth[living].mean() if living.any() else 0.0)


def test_evaluation_tables_from_a_checkpoint(checkpoint, tmp_path):
    args = _small_args(tmp_path, eval_episodes=2)
    cfg = train_ppo.world_config(args)
    out = train_ppo.evaluate(checkpoint, cfg, args, tmp_path,
                             populations={"halves": [("ppo", 0.5), ("random", 0.5)]})
    group = out["halves"]["by_policy"]
    assert group["ppo"]["residents"] >= 5 and group["random"]["residents"] >= 5
    assert 0.0 <= group["ppo"]["survival"] <= 1.0
    table = (tmp_path / "eval.md").read_text()
    assert "| halves | ppo |" in table and "| halves | random |" in table


def test_training_world_defaults_are_the_configs():
    """``Args`` restates no world default: a bare ``Args`` gives the default ``Config``."""
    import dataclasses

    args = train_ppo.Args()
    assert train_ppo.world_config(args) == Config(reward=args.reward, obs_mode="numeric")
    defaults = {f.name: f.default for f in dataclasses.fields(train_ppo.Args)}
    for name in train_ppo.WORLD_FIELDS:
        if name != "reward":  # training's own default (survival trains fastest)
            assert defaults[name] == getattr(Config, name), name
    small = train_ppo.world_config(train_ppo.parse_args(["--n-factories", "1", "--n-agents", "7"]))
    assert (small.n_factories, small.known_at_start, small.n_agents) == (1, 1, 7)


# ---- (b) both algorithms on the vector env; masks reach MaskablePPO --------------------------
class _Recorder(CivaVecEnv):
    """Counts actions that the masks (as they were when the action was chosen) forbid."""

    invalid = 0
    chosen = 0

    def step_async(self, actions):
        acts = np.asarray(actions).reshape(-1)
        ok = self._masks[np.arange(len(acts)), acts]
        self.invalid += int((~ok).sum())
        self.chosen += len(acts)
        super().step_async(actions)


@pytest.mark.parametrize("algo", ["maskable_ppo", "ppo"])
def test_algorithms_run_on_vecenv_and_maskable_gets_masks(algo):
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    venv = _Recorder(Config(**SMALL, reward="wealth"), n_envs=2, background="random", seed=3)
    cls = MaskablePPO if algo == "maskable_ppo" else PPO
    model = cls("MlpPolicy", venv, n_steps=32, batch_size=320, n_epochs=1, seed=0, device="cpu")
    model.learn(640)
    assert venv.chosen >= 640
    if algo == "maskable_ppo":
        assert venv.invalid == 0  # MaskablePPO read the masks through env_method
    else:
        assert venv.invalid > 0  # an untrained unmasked policy picks forbidden ids: check has teeth
    # MaskablePPO's own helper sees one mask per slot.
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

    assert is_masking_supported(venv)
    masks = get_action_masks(venv)
    assert masks.shape == (venv.num_envs, venv.catalogue.size) and masks.dtype == bool
    assert masks.any(axis=1).all()


def test_vecenv_mixes_configs_and_rejects_other_shapes():
    a = Config(**SMALL, condition="with:benevolence")
    b = Config(**SMALL, condition="without:benevolence", reward="wealth")
    venv = CivaVecEnv([a, b], background="random", seed=0)
    assert venv.num_envs == 2 * venv.seats
    obs = venv.reset()
    assert obs.shape == (venv.num_envs, shape_signature(a)["feature_size"])
    c = Config(**{**SMALL, "view_size": 5})
    with pytest.raises(ValueError, match="view_size"):
        CivaVecEnv([a, c], background="random")


# ---- (c) a checkpoint loads in a fresh process and acts --------------------------------------
def test_checkpoint_loads_in_fresh_process(checkpoint):
    code = f"""
import json, sys
import civa_env
assert "torch" not in sys.modules and "stable_baselines3" not in sys.modules
from civa_env.policies import Batch, make_policy
from civa_env.world import factored
from civa_env.world.features import FeatureLayout
from civa_env.world.kinds import Secondary
cfg = civa_env.Config(**{SMALL!r})
layout = FeatureLayout.of(cfg)
env = civa_env.parallel_env(cfg)
policy = make_policy("ppo:{checkpoint}", seed=0)
policy.reset(cfg, seed=0)
obs, infos = env.reset(seed=5)
days = valid = total = 0
o = factored.FactoredSpec.of(cfg).offsets
while env.agents and days < 10:
    acts = policy.act(Batch.from_observations(obs, infos))
    for a, x in acts.items():
        total += 1
        # the choice without its message is a valid flat id, except for what independent
        # component masks cannot rule out (a merge proposal to a slot already allied:
        # factored.py's docstring; the world flags it); a message goes to a valid slot
        flat = factored.to_flat(x[None], cfg, env.catalogue)[0]
        comp = factored.masks_from_flat(obs[a]["action_mask"][None], cfg, env.catalogue)[0]
        allied = bool(layout.read(obs[a]["features"], "slot.ally")[x[2]])
        flat_ok = obs[a]["action_mask"][flat] or (x[1] == Secondary.MERGE and allied)
        valid += int(flat_ok and (x[4] == 0 or comp[o[5] + x[5]]))
    obs, r, te, tr, infos = env.step(acts)
    days += 1
print(json.dumps({{"days": days, "valid": valid, "total": total, "algo": policy.algo,
                  "mode": policy.meta["action_mode"]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["days"] == 10 and result["algo"] == "MaskablePPO"
    assert result["mode"] == "factored"  # train_ppo.py's default
    assert result["total"] >= 10 and result["valid"] == result["total"]


def test_checkpoint_records_shape(checkpoint):
    meta = read_metadata(checkpoint)
    assert meta["algo"] == "MaskablePPO"
    assert meta["shape"] == shape_signature(Config(**SMALL))
    assert checkpoint.with_suffix(".civa.json").exists()


def test_cli_run_with_ppo_policy(checkpoint, tmp_path):
    # Trained with 10 residents, run with 12: the pool size is not part of the network.
    if importlib.util.find_spec("civa_env.cli") is None:
        pytest.skip("no CLI")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "civa_env.cli", "run", "--policy",
           f"ppo:{checkpoint}=0.5,scripted=0.5", "--agents", "12", "--days", "5",
           "--set", "n_factories=3", "--set", "view_size=4", "--out", str(out),
           "--no-progress"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["by_policy"]) == {f"ppo:{checkpoint}", "scripted"}


# ---- (d) a checkpoint for another world gives a clear error ---------------------------------
def test_mismatched_checkpoint_names_the_fields(checkpoint):
    policy = make_policy(f"ppo:{checkpoint}")
    with pytest.raises(CheckpointMismatch, match=r"view_size: trained with 4, this world has 6"):
        policy.reset(Config(**{**SMALL, "view_size": 6}))
    with pytest.raises(CheckpointMismatch, match=r"factory_slot_count: trained with 3, this "
                                                 r"world has 4; feature_size: .*; "
                                                 r"catalogue_size: "):
        policy.reset(Config(**{**SMALL, "n_factories": 4}))
    # Observations of another layout fed directly are refused too.
    import civa_env

    env = civa_env.parallel_env(**{**SMALL, "n_factories": 4})
    obs, infos = env.reset(seed=0)
    with pytest.raises(CheckpointMismatch, match="features"):
        policy.act(Batch.from_observations(obs, infos))


def test_checkpoint_runs_in_other_community_sizes_and_text_limits(checkpoint):
    """The network does not depend on the pool size or text limits: accepted by default."""
    import civa_env

    other = Config(**{**SMALL, "n_agents": 20}, max_messages=3, max_message_chars=100,
                   max_text_chars=2000)
    policy = make_policy(f"ppo:{checkpoint}", seed=0)
    policy.reset(other, seed=0)
    env = civa_env.parallel_env(other)
    obs, infos = env.reset(seed=0)
    actions = policy.act(Batch.from_observations(obs, infos))
    flat = {a: factored.to_flat(x[None], other, env.catalogue)[0] for a, x in actions.items()}
    assert len(actions) == 20 and all(obs[a]["action_mask"][f] for a, f in flat.items())
    # @strict checks every recorded field, and names each one that differs.
    strict = make_policy(f"ppo:{checkpoint}@strict")
    with pytest.raises(CheckpointMismatch, match=r"max_agents: trained with 40, this world has "
                                                 r"80; max_messages: trained with 2, .* has 3"):
        strict.reset(other)
    strict.reset(Config(**SMALL))
    make_policy(f"ppo:{checkpoint}@nonstrict").reset(other)  # the old spelling still loads
    with pytest.raises(ValueError, match="unknown ppo option"):
        make_policy(f"ppo:{checkpoint}@loose")


def test_bad_checkpoint_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        make_policy(f"ppo:{tmp_path / 'nope.zip'}")
    junk = tmp_path / "junk.zip"
    junk.write_text("not a zip")
    with pytest.raises(ValueError, match="not a stable-baselines3 zip"):
        make_policy(f"ppo:{junk}")


# ---- (e) deaths and newcomers ---------------------------------------------------------------
def test_deaths_and_newcomers_keep_shapes_and_episodes_consistent():
    # Births are easy (threshold 11); half the seats act at random (and die), the other half
    # work (and live to the end, and have children).
    cfg = Config(**{**SMALL, "max_days": 15}, reward="survival", birth_threshold=11.0,
                 birth_prob=0.6)
    venv = CivaVecEnv(cfg, n_envs=2, learner_fraction=0.6, background="random", seats=8, seed=1)
    obs = venv.reset()
    n_slots, n_feat = obs.shape
    rng = np.random.default_rng(0)
    seated_newcomers = deaths = truncations = vacant_steps = 0
    for _ in range(3 * cfg.max_days):
        masks = venv.action_masks()
        assert masks.shape == (n_slots, venv.catalogue.size) and masks.any(axis=1).all()
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        cat = venv.catalogue
        for slot in range(0, n_slots, 2):  # work at the first known factory, no secondary
            work = np.flatnonzero(masks[slot].reshape(cat.n_primary, -1)[: cat.factory_slots, 0])
            if len(work):
                actions[slot] = cat.encode(0, factory=int(work[0]))
        obs, rewards, dones, infos = venv.step(actions)
        assert obs.shape == (n_slots, n_feat) and rewards.shape == dones.shape == (n_slots,)
        assert np.isfinite(obs).all() and np.abs(obs).max() <= 10.0
        seated_newcomers += int((venv._occupant >= cfg.n_agents).sum())
        vacant = (venv._occupant < 0).ravel()
        vacant_steps += int(vacant.sum())
        # Vacant seats: zero features, only idle allowed.
        assert (obs[vacant] == 0).all()
        assert (venv.action_masks()[vacant].sum(axis=1) == 1).all()
        for slot in np.flatnonzero(dones):
            info = infos[slot]
            assert info["terminal_observation"].shape == (n_feat,)
            if "episode" in info:  # a resident's life: +1 a day alive, -1 on the day it died
                ep = info["episode"]
                if info["TimeLimit.truncated"]:
                    truncations += 1
                    assert ep["r"] == ep["l"]
                else:
                    deaths += 1
                    assert ep["r"] == ep["l"] - 2
    assert deaths > 0 and truncations > 0 and vacant_steps > 0
    assert seated_newcomers > 0  # learner newcomers took over vacant seats
    assert len(venv.finished_communities) >= 4  # both communities reset and went on
    assert all(0.0 <= c["nAUP"] for c in venv.finished_communities)


def test_extinction_ends_every_seat():
    # Everyone starves on day 1: the community ends by extinction, not truncation.
    cfg = Config(**{**SMALL, "max_days": 30}, start_wealth=(0.1, 0.2), upkeep=5.0,
                 reward="survival")
    venv = CivaVecEnv(cfg, n_envs=1, background="random", seed=0)
    venv.reset()
    idle = np.full(venv.num_envs, idle_action(venv.catalogue))
    _, rewards, dones, infos = venv.step(idle)
    assert dones.all()
    assert all(not i["TimeLimit.truncated"] for i in infos if "episode" in i)
    assert (rewards[[("episode" in i) for i in infos]] == -1).all()
    assert venv.finished_communities[0]["final_population"] == 0


# ---- (f) RL, scripted and LLM residents in one community ------------------------------------
def test_mixed_community_with_llm_scripted_and_rl(checkpoint, tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("llguidance")
    from civa_env.experiments.runner import run_community
    from civa_env.policies.llm.models.tiny import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tiny-llm")
    cfg = Config(**{**SMALL, "obs_mode": "text", "max_days": 3, "n_agents": 10},
                 max_agents=40)
    spec = f"ppo:{checkpoint}"
    ppo = make_policy(spec, seed=0)
    batches: list[int] = []
    forward = ppo.logits

    def counting_logits(feats):
        batches.append(len(feats))
        return forward(feats)

    ppo.logits = counting_logits
    mix = {spec: 0.4, "scripted": 0.3, "llm": 0.3}
    result = run_community(cfg, mix, seed=0, run_dir=tmp_path / "run", progress=False,
                           plots=False, policies={spec: ppo},
                           policy_kwargs={"llm": {"model": str(model_dir), "cache": None,
                                                  "max_new_tokens_cap": 160}})
    by_policy = result.summary["by_policy"]
    assert set(by_policy) == {spec, "scripted", "llm"}
    assert by_policy[spec]["founders"] == 4
    assert by_policy["llm"]["founders"] == 3
    for group in by_policy.values():
        assert group["resident_days"] > 0 and 0.0 <= group["survival"] <= 1.0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "complete" and set(metrics["by_policy"]) == set(mix)
    # One forward pass a day for all the RL residents alive that day.
    assert len(batches) == result.summary["days"]
    assert sum(batches) == by_policy[spec]["resident_days"]
