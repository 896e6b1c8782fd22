"""The config (validation, config.json) and the values layer (conditions, prompts,
assignment by prevalence, prompts in briefings)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import civa_env
from civa_env.world import values
from civa_env.world.config import Config
from civa_env.world.values import (
    N_CONDITION_CODES,
    PROMPT_VERSION,
    Direction,
    Value,
    ValueCondition,
    assign_conditions,
    prompt_for,
)

# ---- config ------------------------------------------------------------------------------------


def test_defaults_are_the_rules():
    cfg = Config()
    assert (cfg.n_agents, cfg.max_agents, cfg.max_days, cfg.n_factories) == (25, 100, 30, 5)
    assert cfg.start_wealth == (8.0, 12.0) and cfg.capacity_range == (4.0, 14.0)
    assert (cfg.production_k, cfg.production_n_half, cfg.outage_prob) == (1.0, 3.0, 0.1)
    assert (cfg.upkeep, cfg.idle_upkeep_factor, cfg.birth_threshold, cfg.birth_prob) == (
        1.0, 0.7, 20.0, 0.3)
    assert (cfg.merge_window, cfg.loot_fraction, cfg.view_size, cfg.max_messages) == (2, 0.5, 24, 2)


@pytest.mark.parametrize("kwargs,words", [
    ({"n_agentz": 5}, ["unknown config field", "n_agentz", "n_agents"]),
    ({"colour": "red"}, ["unknown config field", "colour"]),
    ({"n_agents": 0}, ["n_agents"]),
    ({"n_agents": 2.5}, ["n_agents"]),
    ({"n_agents": 10, "max_agents": 5}, ["max_agents"]),
    ({"max_days": 0}, ["max_days"]),
    ({"prevalence": 1.5}, ["prevalence", "[0, 1]", "1.5"]),
    ({"prevalence": -0.1}, ["prevalence"]),
    ({"outage_prob": 2.0}, ["outage_prob"]),
    ({"known_at_start": 9}, ["known_at_start"]),
    ({"obs_mode": "pixels"}, ["obs_mode", "pixels"]),
    ({"reward": "money"}, ["reward", "money"]),
    ({"render_mode": "rgb_array"}, ["render_mode"]),
    ({"gift_levels": (0.0, 0.5)}, ["gift_levels"]),
    ({"start_wealth": (12, 8)}, ["start_wealth"]),
    ({"condition": "with:greed"}, ["unknown value", "greed", "benevolence"]),
    ({"condition": "maybe:power"}, ["unknown value condition", "maybe:power", "baseline"]),
    ({"condition": "power"}, ["unknown value condition"]),
    ({"condition": 3}, ["condition must be a string"]),
])
def test_bad_config_gives_clear_error(kwargs, words):
    with pytest.raises(ValueError) as err:
        civa_env.parallel_env(**kwargs)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.mark.parametrize("kwargs,words", [
    ({"start_skill": (0.0, 0.0), "attack_wealth_weight": 0.0},
     ["start_skill", "attack_wealth_weight", "attack_wealth_cap", "divides by zero"]),
    ({"start_skill": (0.0, 1.0)}, ["start_skill", "above 0", "[0.0, 1.0]"]),
    ({"start_skill": (-1.0, 1.0), "attack_wealth_weight": 0.5}, ["start_skill"]),
    ({"production_n_half": -1.0}, ["production_n_half", "production_k", "1 - s(0)"]),
    ({"capacity_range": (-2.0, 3.0)}, ["capacity_range", "[-2.0, 3.0]"]),
    ({"production_noise": 50.0}, ["production_noise", "20", "overflows"]),
    ({"upkeep_noise": 1e300}, ["upkeep_noise"]),
])
def test_degenerate_worlds_are_refused_by_name(kwargs, words):
    with pytest.raises(ValueError) as err:
        Config(**kwargs)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_the_skill_refusal_guards_a_real_division_by_zero(world):
    """Strength is skill when wealth is 0 (a gift of everything, an attack): two residents
    of skill 0 without wealth make an attack divide 0 by 0, whatever the wealth weight."""
    from civa_env.world.actions import ActionBatch
    from civa_env.world.kinds import Secondary
    from civa_env.world.rules import step_day

    cfg = Config(n_agents=3, seed=0)
    state = world(cfg, skill=[0.0, 0.0, 1.0], wealth=[0.0, 0.0, 5.0])
    batch = ActionBatch.idle(cfg.max_agents)
    batch.secondary[0], batch.target[0] = Secondary.ATTACK, 1
    with pytest.raises(ZeroDivisionError):
        step_day(state, batch, np.random.default_rng(0), cfg)
    # The least skill the config allows keeps every strength above 0.
    low = Config(n_agents=3, seed=0, start_skill=(1e-12, 1e-12), attack_wealth_weight=0.0)
    state = world(low, wealth=[0.0, 0.0, 5.0])
    after, _ = step_day(state, batch, np.random.default_rng(0), low)
    assert np.isfinite(after.wealth).all()


def test_the_edges_of_the_allowed_range_play_without_nan():
    cfg = Config(n_agents=30, max_days=6, start_skill=(1e-12, 1e-12), attack_wealth_weight=0.0,
                 production_n_half=0.0, capacity_range=(0.0, 0.0), production_noise=20.0,
                 upkeep_noise=20.0, obs_mode="numeric", seed=1)
    env = civa_env.parallel_env(cfg)
    obs, _ = env.reset()
    rng = np.random.default_rng(0)
    while env.agents:
        obs, *_ = env.step({a: int(rng.choice(np.flatnonzero(obs[a]["action_mask"])))
                            for a in env.agents})
        assert not np.isnan(env.world.state.wealth).any()


def test_max_cycles_alias_and_replace():
    assert Config.from_kwargs(max_cycles=7).max_days == 7
    cfg = Config(n_agents=4)
    other = cfg.replace(max_cycles=3, prevalence=0.5)
    assert (other.max_days, other.prevalence, other.n_agents) == (3, 0.5, 4)
    assert cfg.max_days == 30  # the original is frozen and unchanged
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_agents = 5  # type: ignore[misc]


def test_env_does_not_mutate_a_given_config():
    cfg = Config(n_agents=4, seed=3)
    env = civa_env.parallel_env(cfg, max_days=6)
    assert env.cfg.max_days == 6 and cfg.max_days == 30


def test_config_json_round_trip(tmp_path):
    cfg = Config(n_agents=7, max_days=12, condition="without:benevolence", prevalence=0.4,
                 gift_levels=(0.2, 0.4), seed=5, obs_mode="numeric")
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    assert json.loads(path.read_text())["condition"] == "without:benevolence"
    back = Config.load(str(path))
    assert back == cfg and back.gift_levels == (0.2, 0.4)
    assert Config.from_dict(cfg.to_dict()) == cfg
    # A run's config.json may nest the env's config under "env".
    path.write_text(json.dumps({"env": cfg.to_dict(), "policy": {"name": "random"}}))
    assert Config.load(str(path)) == cfg


@pytest.mark.parametrize("content,words", [
    ('{"n_agents": 5,', ["not valid JSON"]),
    ("", ["not valid JSON"]),
    ('{"n_agents": 5, "bogus": 1}', ["bogus"]),
    ('{"prevalence": 3}', ["prevalence"]),
    ("[1, 2]", ["JSON object"]),
])
def test_config_load_names_the_file(tmp_path, content, words):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        Config.load(str(path))
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value)


# ---- values -------------------------------------------------------------------------------------


def test_ten_values_with_definitions():
    assert len(Value) == 10 and set(values.DEFINITIONS) == set(Value)
    assert [v.label for v in Value][:2] == ["self-direction", "stimulation"]
    for spelling in ("Self-Direction", "self_direction", " SELF DIRECTION "):
        assert Value.parse(spelling) == Value.SELF_DIRECTION
    with pytest.raises(ValueError, match="known values"):
        Value.parse("greed")


def test_condition_parse_and_codes():
    conditions = values.all_conditions()
    assert len(conditions) == N_CONDITION_CODES == 21 and conditions[0] == "baseline"
    codes = [ValueCondition.parse(c).code for c in conditions]
    assert sorted(codes) == list(range(21))
    for c in conditions:
        parsed = ValueCondition.parse(c)
        assert str(parsed) == c and ValueCondition.from_code(parsed.code) == parsed
    assert ValueCondition.parse(" WITH:Power ") == ValueCondition(Direction.WITH, Value.POWER)
    with pytest.raises(ValueError):
        ValueCondition.from_code(21)


def test_prompts_for_all_codes():
    assert PROMPT_VERSION and isinstance(PROMPT_VERSION, str)
    assert prompt_for(0) == ""
    prompts = [prompt_for(c) for c in range(1, 21)]
    assert all(prompts) and len(set(prompts)) == 20
    for c in range(1, 21):
        cond = ValueCondition.from_code(c)
        text = prompt_for(c)
        assert cond.value.label in text and cond.prompt() == text
        assert text.isascii() and text.isprintable()
        assert ("do not care" in text) == (cond.direction == Direction.WITHOUT)


@pytest.mark.parametrize("prevalence,n,expected", [
    (0.0, 25, 0), (0.5, 25, 13), (0.3, 10, 3), (1.0, 7, 7), (0.49, 100, 49), (0.5, 5, 3)])
def test_assignment_by_prevalence_is_exact_and_seeded(prevalence, n, expected):
    """floor(prevalence * n + 0.5) holders: half-way cases round up (README "Values")."""
    cond = ValueCondition.parse("with:benevolence")
    codes = assign_conditions(cond, prevalence, n, np.random.default_rng(1))
    assert (codes == cond.code).sum() == expected
    assert set(codes.tolist()) <= {0, cond.code}
    again = assign_conditions(cond, prevalence, n, np.random.default_rng(1))
    np.testing.assert_array_equal(codes, again)
    if 0 < prevalence < 1:
        others = [assign_conditions(cond, prevalence, n, np.random.default_rng(s))
                  for s in range(2, 8)]
        assert any(not np.array_equal(codes, o) for o in others)  # who holds it depends on the seed
    baseline = assign_conditions(ValueCondition.parse("baseline"), prevalence, n,
                                 np.random.default_rng(1))
    assert not baseline.any()


@pytest.mark.parametrize("condition", ["with:power", "without:universalism"])
def test_prompt_in_briefings_of_holders_only(condition):
    env = civa_env.parallel_env(n_agents=10, condition=condition, prevalence=0.4,
                                briefing="v1")  # v1 carries the value text
    obs, _ = env.reset(seed=2)
    cond = ValueCondition.parse(condition)
    prompt = cond.prompt()
    holders = [a for a in env.agents if env.world.state.condition[env.possible_agents.index(a)]]
    assert len(holders) == 4
    for a in env.agents:
        assert (prompt in obs[a]["text"]) == (a in holders)
    # The feature vector carries the condition too (direction and value one-hot).
    from civa_env.world.features import FeatureLayout

    layout = FeatureLayout.of(env.cfg)
    for a in env.agents:
        feats = obs[a]["features"]
        direction = layout.read(feats, "condition.direction")
        value = layout.read(feats, "condition.value")
        assert layout.block(feats, "condition.direction").sum() == 1
        if a in holders:
            assert direction == int(cond.direction) and value == int(cond.value)
            assert layout.block(feats, "condition.value").sum() == 1
        else:
            assert direction == 0 and value == -1
            assert layout.block(feats, "condition.value").sum() == 0


def test_newcomers_keep_their_parents_prompt():
    env = civa_env.parallel_env(n_agents=6, max_agents=20, condition="with:benevolence",
                                prevalence=0.5, birth_threshold=10.0, birth_prob=1.0,
                                briefing="v1")  # v1 carries the value text
    obs, _ = env.reset(seed=0)
    prompt = ValueCondition.parse("with:benevolence").prompt()
    best = {}
    for a in env.agents:
        i = env.possible_agents.index(a)
        best[a] = int(np.flatnonzero(env.world.state.known[i])[0])
    obs, *_ = env.step({a: {"primary": "work", "factory": best[a]} for a in env.agents})
    w = env.world.state
    newcomers = np.flatnonzero(w.parent >= 0)
    assert len(newcomers) > 0
    for k in newcomers.tolist():
        name = env.possible_agents[k]
        assert w.condition[k] == w.condition[w.parent[k]]
        assert (prompt in obs[name]["text"]) == bool(w.condition[k])


@pytest.mark.parametrize("field,value", [
    ("n_factories", "5"), ("view_size", None), ("max_agents", "10"), ("prevalence", None),
    ("outage_prob", "0.1"), ("upkeep", "1"), ("start_wealth", 5), ("gift_levels", 0.5),
    ("n_agents", True),
])
def test_wrong_typed_config_value_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        Config.from_kwargs(**{field: value})


def test_replace_keeps_a_derived_pool_in_step_with_n_agents():
    assert Config().replace(n_agents=50).max_agents == 200
    assert Config(max_agents=30).replace(n_agents=10).max_agents == 30  # explicit pool kept
    env = civa_env.parallel_env(config=Config(), n_agents=60)
    assert len(env.possible_agents) == 240


@pytest.mark.parametrize("kwargs,field", [
    ({"upkeep": -5.0}, "upkeep"), ({"fight_cost": -3.0}, "fight_cost"),
    ({"merge_window": 0}, "merge_window"), ({"recent_days": 0}, "recent_days"),
    ({"inbox_size": -1}, "inbox_size"), ({"upkeep": float("nan")}, "upkeep"),
    ({"start_wealth": (8.0, float("inf"))}, "start_wealth"),
])
def test_out_of_range_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Config(**kwargs)


def test_load_of_a_folder_names_it(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        Config.load(str(tmp_path))
