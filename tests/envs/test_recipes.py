"""The ecosystem's own recipes work (docs/rl.md "The ecosystem's own recipes").

``obs_mode="features"`` gives Box observations and keeps every pool name as a fixed slot, so
that PettingZoo's API test and the PettingZoo tutorial's SuperSuit + SB3 pipeline run; the
single-agent ``civa/Resident-v0`` passes Gymnasium's and SB3's env checkers and trains with
MaskablePPO. The doc's code blocks are run here with fewer steps.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import civa_env
from civa_env.policies import Batch, make_policy
from civa_env.world.catalogue import Catalogue
from civa_env.world.kinds import Primary

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(n_agents=6, max_agents=12, n_factories=3, view_size=4, max_days=12)


def contains_text(space: spaces.Space) -> bool:
    if isinstance(space, spaces.Text):
        return True
    if isinstance(space, spaces.Dict):
        return any(contains_text(s) for s in space.spaces.values())
    if isinstance(space, (spaces.Tuple, spaces.Sequence)):
        inner = space.spaces if isinstance(space, spaces.Tuple) else [space.feature_space]
        return any(contains_text(s) for s in inner)
    return False


# ---- features mode ---------------------------------------------------------------------------
def test_features_mode_spaces_are_boxes_and_observations_lie_in_them():
    numeric = civa_env.parallel_env(obs_mode="numeric", **SMALL)
    assert contains_text(numeric.observation_space("resident_0"))  # what broke SuperSuit
    env = civa_env.parallel_env(obs_mode="features", seed=0, **SMALL)
    space = env.observation_space("resident_0")
    assert isinstance(space, spaces.Box) and not contains_text(space)
    assert space == numeric.observation_space("resident_0")["features"]
    obs, infos = env.reset(seed=0)
    assert env.agents == env.possible_agents and len(env.living_agents) == SMALL["n_agents"]
    idle = Catalogue(env.cfg).encode(Primary.IDLE)
    for _ in range(SMALL["max_days"]):
        for a in env.agents:
            assert space.contains(obs[a]), a
            mask = infos[a]["action_mask"]
            assert mask.shape == (env.action_space(a).n,) and mask.any()
            if infos[a].get("vacant"):
                assert not obs[a].any() and mask.nonzero()[0].tolist() == [idle]
        actions = {a: int(np.flatnonzero(infos[a]["action_mask"])[-1]) for a in env.agents}
        obs, _, _, _, infos = env.step(actions)
        if not env.agents:
            break


def test_parallel_api_test_passes_in_features_mode():
    from pettingzoo.test import api_test, parallel_api_test

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(civa_env.parallel_env(obs_mode="features", seed=0, **SMALL),
                          num_cycles=40)
    assert not [w for w in caught if "possible_agents" in str(w.message)]
    api_test(civa_env.env(obs_mode="features", seed=0, **SMALL), num_cycles=100)  # AEC form
    # The living residents as agents: the unused names never finish.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(civa_env.parallel_env(obs_mode="numeric", seed=0, **SMALL),
                          num_cycles=40)
    assert [w for w in caught if "not all possible_agents are terminated" in str(w.message)]


def scripted_play(obs_mode: str, seed: int) -> tuple[str, dict[str, list]]:
    """A scripted community through the ParallelEnv: its JSONL log and, per name, what the
    env reported (vacant days, terminations, truncations)."""
    # Poor founders (some start with 1): seed 2 has 3 deaths and 6 births.
    env = civa_env.parallel_env(n_agents=10, max_agents=30, max_days=30, seed=seed,
                                start_wealth=(1.0, 12.0), obs_mode=obs_mode)
    policy = make_policy("scripted")
    policy.reset(env.cfg, seed)
    obs, infos = env.reset(seed=seed)
    seen: dict[str, list] = {"terminated": [], "truncated": [], "vacant": set(), "born": set()}
    while env.agents:
        living = env.living_agents
        if obs_mode == "features":  # the same facts: features, and the mask from the infos
            seen["vacant"] |= {a for a in env.agents if infos[a].get("vacant")}
        live = {a: obs[a] for a in living}  # (an array observation: mask from the infos)
        actions = policy.act(Batch.from_observations(live, {a: infos[a] for a in living}))
        before = set(living)
        obs, _, term, trunc, infos = env.step(actions)
        seen["born"] |= set(env.living_agents) - before
        seen["terminated"] += [a for a, t in term.items() if t]
        seen["truncated"] += [a for a, t in trunc.items() if t]
    out = io.StringIO()
    for d in range(env.log.n_days):
        env.log.write_day(out, d)
    seen["died"] = [e.actor for e in env.log.events() if e.kind.name == "DEATH"]
    return out.getvalue(), seen


def test_features_mode_same_world_and_vacant_names_are_not_deaths():
    log, seen = scripted_play("features", seed=2)
    assert log == scripted_play("numeric", seed=2)[0]  # the policy reads the same facts
    died = set(seen["died"])
    assert died and seen["born"], "the test wants deaths and births"
    assert set(seen["terminated"]) == died  # only starved residents are terminated
    assert seen["born"] <= seen["vacant"]  # newcomers took vacant names
    pool = {f"resident_{i}" for i in range(30)}
    assert set(seen["truncated"]) == pool - died  # the survivors and the names never used


# ---- SuperSuit pipeline ----------------------------------------------------------------------
def test_unused_names_are_not_mistaken_for_deaths_in_the_supersuit_pipeline():
    ss = pytest.importorskip("supersuit")
    # The living residents as agents (numeric mode, reduced to the features Box): on day 0,
    # with nobody dead, the unused names already count as dead.
    numeric = civa_env.parallel_env(obs_mode="numeric", seed=0, **SMALL)
    boxed = ss.observation_lambda_v0(numeric, lambda ob, space: ob["features"],
                                     lambda space: space["features"])
    with pytest.raises(AssertionError, match="agent death"):
        ss.pettingzoo_env_to_vec_env_v1(ss.black_death_v3(boxed)).reset(seed=0)
    assert numeric.world.day == 0 and len(numeric.agents) == SMALL["n_agents"]

    # Features mode: one slot per name; vacant slots say so, and black death pads exactly
    # the slots of the residents who starved.
    env = civa_env.parallel_env(obs_mode="features", reward="survival", **SMALL)
    vec = ss.pettingzoo_env_to_vec_env_v1(ss.black_death_v3(env))
    names = env.possible_agents
    assert vec.num_envs == SMALL["max_agents"]
    obs, infos = vec.reset(seed=0)
    ever_alive, dead = set(env.living_agents), set()
    rng = np.random.default_rng(0)
    n_dead = n_vacant = 0
    for _ in range(SMALL["max_days"]):
        actions = np.array([rng.choice(np.flatnonzero(inf["action_mask"])) if inf else 0
                            for inf in infos])
        obs, rewards, term, trunc, infos = vec.step(actions)
        if env.world.day == 0:  # the episode ended and the vector env reset
            break
        # A resident who starved today gets its last observation; from the next day on
        # black death pads its slot (an empty info).
        padded = {names[k] for k, inf in enumerate(infos) if not inf}
        assert padded == dead
        living = set(env.living_agents)
        ever_alive |= living
        dead = ever_alive - living
        vacant = {names[k] for k, inf in enumerate(infos) if inf.get("vacant")}
        assert vacant == set(names) - ever_alive
        assert not obs[[names.index(a) for a in padded | vacant]].any()
        assert not term.any() and not trunc.any()  # black death: done only at the end
        n_dead, n_vacant = max(n_dead, len(dead)), max(n_vacant, len(vacant))
    assert n_dead > 0 and n_vacant > 0


def recipe(name: str) -> str:
    """The python block after ``<!-- recipe: NAME -->`` in docs/rl.md, with 256 steps."""
    text = (ROOT / "docs" / "rl.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- recipe: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"docs/rl.md has no recipe {name!r}"
    code, n = re.subn(r"total_timesteps=[\d_]+", "total_timesteps=256", match.group(1))
    assert n == 1
    return code


def test_supersuit_recipe_trains_and_its_checkpoint_is_a_policy(tmp_path, monkeypatch,
                                                                 one_torch_thread):
    pytest.importorskip("supersuit")
    pytest.importorskip("stable_baselines3")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(recipe("supersuit"), "docs/rl.md:supersuit", "exec"), scope)
    model, env = scope["model"], scope["env"]
    assert model.num_timesteps >= 256
    assert env.num_envs == 4 * scope["cfg"].max_agents
    from civa_env.envs.single import ResidentEnv

    # The checkpoint plays as the background of the single-agent env.
    single = ResidentEnv(scope["cfg"], background="ppo:runs/supersuit_ppo.zip", max_days=3)
    single.reset(seed=0)
    for _ in range(3):
        *_, terminated, truncated, _ = single.step(0)
        if terminated or truncated:
            break
    assert single.world.day >= 1


# ---- single-agent env ------------------------------------------------------------------------
def test_resident_env_passes_both_checkers():
    from gymnasium.utils.env_checker import check_env

    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from civa_env.envs.single import ResidentEnv

    env = ResidentEnv(background="scripted", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # render-mode notes of the checker
        check_env(env)
    sb3_check_env(env, warn=True)
    assert isinstance(env.observation_space, spaces.Box)
    assert env.action_space == spaces.Discrete(Catalogue(env.cfg).size)


def test_resident_env_registered_deterministic_and_ends_like_the_learner():
    import gymnasium

    env = gymnasium.make("civa/Resident-v0", background="scripted", reward="survival",
                         **SMALL)
    assert env.unwrapped.cfg.n_agents == SMALL["n_agents"]

    idle = Catalogue(env.unwrapped.cfg).encode(Primary.IDLE)

    def play(env, seed: int, policy: str) -> tuple[list, bool, bool]:
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        trace = [obs]
        while True:
            mask = env.unwrapped.action_masks()
            assert np.array_equal(mask, info["action_mask"])
            action = idle if policy == "idle" else rng.choice(np.flatnonzero(mask))
            obs, reward, terminated, truncated, info = env.step(action)
            trace += [obs, reward]
            if terminated or truncated:
                return trace, terminated, truncated

    a, term_a, trunc_a = play(env, 4, "random")
    b, term_b, trunc_b = play(env, 4, "random")
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert (term_a, trunc_a) == (term_b, trunc_b)
    inner = env.unwrapped
    learner = inner.learner
    if term_a:  # starved: reward -1 on the last day, and no longer alive
        assert a[-1] == -1.0 and not inner.world.state.alive[learner]
    # Idling lives to the end of a three-day world: truncated, not terminated.
    short = gymnasium.make("civa/Resident-v0", background="random", **{**SMALL, "max_days": 3})
    trace, terminated, truncated = play(short, 4, "idle")
    assert truncated and not terminated and short.unwrapped.world.day == 3
    assert len(trace) == 1 + 2 * 3


def test_single_agent_recipe_trains_with_maskable_ppo(tmp_path, monkeypatch, one_torch_thread):
    pytest.importorskip("sb3_contrib")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(recipe("single"), "docs/rl.md:single", "exec"), scope)
    assert scope["model"].num_timesteps >= 256 and scope["days"] >= 1
