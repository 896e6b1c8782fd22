"""Scripted value-driven residents: valid, seeded, vectorised, and driven by their values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import civa_env
from civa_env.experiments.runner import run_community
from civa_env.policies import make_policy
from civa_env.policies.batch import Batch
from civa_env.policies.scripted import ScriptedPolicy
from civa_env.policies.scripted_table import (
    BASELINE,
    CHANGES,
    FIELDS,
    fields_table_markdown,
    tendency_table,
    tendency_table_markdown,
)
from civa_env.world.kinds import EventKind
from civa_env.world.values import N_CONDITION_CODES, Value, all_conditions

ROOT = Path(__file__).resolve().parents[2]


def play(seed: int = 0, **kwargs):
    """One episode with every resident scripted; returns env, actions per day, invalid flags."""
    env = civa_env.parallel_env(seed=seed, **kwargs)
    policy = make_policy("scripted")
    policy.reset(env.cfg, seed)
    obs, infos = env.reset(seed=seed)
    days, invalid = [], []
    while env.agents:
        live = {a: obs[a] for a in env.agents}
        actions = policy.act(Batch.from_observations(live, {a: infos[a] for a in env.agents}))
        for agent, action in actions.items():
            if isinstance(action, int):
                assert obs[agent]["action_mask"][action] == 1, "flat id outside the mask"
        days.append(actions)
        obs, _, _, _, infos = env.step(actions)
        invalid += [(a, i["invalid"]) for a, i in infos.items() if i["invalid"]]
    return env, days, invalid


@pytest.mark.parametrize("mode", ["text", "numeric"])
def test_actions_are_valid_in_both_observation_modes(mode):
    env, days, invalid = play(seed=3, obs_mode=mode, condition="with:power", prevalence=0.5)
    assert invalid == []
    assert len(days) == env.cfg.max_days or env.world.state.alive.sum() == 0
    kinds = {type(a) for day in days for a in day.values()}
    assert kinds == {int, dict}  # flat ids when possible, dicts for gifts and messages


def test_seeded_and_deterministic():
    a = play(seed=5, condition="without:benevolence", prevalence=0.5)
    b = play(seed=5, condition="without:benevolence", prevalence=0.5)
    c = play(seed=6, condition="without:benevolence", prevalence=0.5)
    assert a[1] == b[1]
    assert a[0].summary()["population"] == b[0].summary()["population"]
    assert a[1] != c[1]


def test_table_covers_every_condition_and_docs_match():
    table = tendency_table()
    assert table.shape == (N_CONDITION_CODES, len(FIELDS))
    assert set(BASELINE) == set(FIELDS)
    for (head, value), changes in CHANGES.items():
        assert head in ("with", "without") and isinstance(value, Value)
        assert set(changes) <= set(FIELDS)
        assert changes, f"{head}:{value.label} changes nothing"
    assert len(CHANGES) == 20
    # Rows by condition code differ from baseline exactly where CHANGES says.
    for code, condition in enumerate(all_conditions()[1:], start=1):
        head, _, tail = condition.partition(":")
        changed = {FIELDS[k] for k in np.flatnonzero(table[code] != table[0])}
        expected = {f for f, v in CHANGES[(head, Value.parse(tail))].items() if v != BASELINE[f]}
        assert changed == expected, condition
    doc = (ROOT / "docs" / "scripted.md").read_text()
    assert tendency_table_markdown() in doc, "docs/scripted.md is out of date: paste the table"
    assert fields_table_markdown() in doc, "docs/scripted.md is out of date: paste the fields"


def test_scripted_takes_no_argument():
    with pytest.raises(ValueError, match="no argument"):
        make_policy("scripted:fast")
    assert isinstance(make_policy("scripted"), ScriptedPolicy)


def _by_condition(condition: str, seeds=range(3), prevalence=0.5):
    """Per-condition breakdown summed over a few mixed communities."""
    totals: dict[str, dict[str, float]] = {}
    for seed in seeds:
        cfg = civa_env.Config(condition=condition, prevalence=prevalence, seed=seed)
        result = run_community(cfg, "scripted", seed, None, progress=False, plots=False)
        for group, g in result.summary["by_condition"].items():
            t = totals.setdefault(group, {"days": 0, "attack": 0, "gift": 0, "deception": 0,
                                          "upgrade_self": 0, "idle": 0, "explore": 0})
            t["days"] += g["resident_days"]
            for k in ("attack", "gift", "upgrade_self", "idle", "explore"):
                t[k] += g["actions"][k]
            t["deception"] += g["behaviours"]["deception"]
    return {group: {k: v / max(t["days"], 1) for k, v in t.items() if k != "days"}
            for group, t in totals.items()}


def test_values_shape_behaviour_within_one_community():
    # Tendencies are inputs: residents holding a value act on it next to baseline neighbours.
    power = _by_condition("with:power")
    assert power["with:power"]["attack"] > 3 * power["baseline"]["attack"]
    assert power["with:power"]["deception"] > 0
    # Baseline residents never plan a masked attack; the detector may still pair an
    # alliance proposal with a later desperate attack, so only a low rate is expected.
    assert power["baseline"]["deception"] < power["with:power"]["deception"] / 5
    kind = _by_condition("with:benevolence")
    unkind = _by_condition("without:benevolence")
    assert kind["with:benevolence"]["gift"] > kind["baseline"]["gift"]
    assert unkind["without:benevolence"]["gift"] == 0
    assert unkind["without:benevolence"]["attack"] > unkind["baseline"]["attack"]
    rest = _by_condition("with:hedonism")
    assert rest["with:hedonism"]["idle"] > rest["baseline"]["idle"]
    explore = _by_condition("with:stimulation")
    assert explore["with:stimulation"]["explore"] > explore["baseline"]["explore"]


def test_deceptive_attack_follows_a_friendly_message_to_the_victim():
    env, _, _ = play(seed=1, condition="with:power", prevalence=1.0)
    events = list(env.log.events())
    friendly = {(e.actor, e.target, e.day) for e in events
                if e.kind == EventKind.MESSAGE and e.text and "will not attack" in e.text}
    assert friendly
    attacks = [(e.actor, e.target, e.day) for e in events if e.kind == EventKind.ATTACK]
    masked = [a for a in attacks if (a[0], a[1], a[2] - 1) in friendly]
    assert masked, "no attack followed a friendly message to its victim"
    assert env.summary()["behaviours"]["deception"] >= len(masked)


def test_without_legal_facts_deceives_through_broadcasts():
    """A batch built from features alone (no legal facts: no names per view slot) still
    prepares attacks, with a broadcast peaceful message."""
    env = civa_env.parallel_env(seed=1, condition="with:power", prevalence=1.0,
                                obs_mode="numeric")
    policy = make_policy("scripted")
    policy.reset(env.cfg, 1)
    obs, infos = env.reset(seed=1)
    while env.agents:
        batch = Batch.from_observations({a: obs[a] for a in env.agents}, day=env.world.day + 1)
        assert batch.legal_facts is None
        obs, _, _, _, infos = env.step(policy.act(batch))
    broadcasts = [e for e in env.log.events()
                  if e.kind == EventKind.MESSAGE and e.target is None and "peace" in e.text]
    assert broadcasts
    assert env.summary()["behaviours"]["deception"] > 0


def test_memory_is_kept_for_the_living_only():
    """Residents who die are forgotten; the living keep their memory (same actions)."""
    env = civa_env.parallel_env(seed=2, condition="with:power", prevalence=1.0, upkeep=1.4,
                                max_days=25)
    policy = make_policy("scripted")
    policy.reset(env.cfg, 2)
    obs, infos = env.reset(seed=2)
    deaths = 0
    while env.agents:
        actions = policy.act(Batch.from_observations({a: obs[a] for a in env.agents}, infos))
        remembered = set(policy._last_factory) | set(policy._plan)
        assert remembered <= set(env.agents)
        obs, _, terminations, _, infos = env.step(actions)
        deaths += sum(terminations.values())
    assert deaths > 0 and env.world.state.n_used > len(policy._last_factory)
