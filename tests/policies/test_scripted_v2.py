"""Scripted residents with social memory (``scripted:v2``) on hand-built histories.

Small worlds where every resident but one follows a fixed script (gifts and attacks on given
days); the one under test is a v2 resident that reads only its observation. Where a test is
about a mechanism, the tendency it exercises is forced to 0 or 1 on the policy's table (the
values' own rows are checked separately), so the outcome does not hang on a random draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import civa_env
from civa_env.experiments.runner import run_community
from civa_env.policies import make_policy
from civa_env.policies.batch import Batch
from civa_env.policies.scripted import ScriptedPolicy
from civa_env.policies.scripted_memory import (
    BETRAYAL_FACTOR,
    MEMORY_HALF_LIFE,
    MemoryScriptedPolicy,
    _slot_columns,
)
from civa_env.policies.scripted_table import (
    BASELINE_V2,
    CHANGES,
    CHANGES_V2,
    FIELDS,
    FIELDS_V2,
    MEMORY_CHANGES,
    MEMORY_MEANINGS,
    TABLE_VERSION_V2,
    condition_row,
    fields_table_markdown,
    tendency_table,
    tendency_table_markdown,
)
from civa_env.world.kinds import EventKind, Secondary
from civa_env.world.values import N_CONDITION_CODES, Value, ValueCondition

ROOT = Path(__file__).resolve().parents[2]
ME = "resident_0"


def force(policy: MemoryScriptedPolicy, **fields: float) -> None:
    """Set tendencies for every condition row of the policy's table."""
    for name, value in fields.items():
        policy.table[:, FIELDS_V2.index(name)] = value


def world(seed: int = 0, n: int = 4, days: int = 25, **kwargs):
    """A quiet world: low upkeep, no births, everyone in everyone's view."""
    kw = dict(n_agents=n, max_days=days, upkeep=0.05, birth_prob=0.0, obs_mode="numeric",
              start_wealth=(20.0, 20.0))
    kw.update(kwargs)
    return civa_env.parallel_env(seed=seed, **kw)


def live(env, script, policy: MemoryScriptedPolicy, seed: int = 0, poor: tuple[str, ...] = (),
         poor_from: int = 1):
    """Play ``env`` to the end: ME by ``policy``, the others by ``script(day, agent)`` (an
    action dict or None for idling). ``poor`` residents are kept destitute (wealth 1) by the
    test from day ``poor_from`` on (seen from the next day's observation). Returns the
    event log as (day, kind, actor, target) tuples."""
    policy.reset(env.cfg, seed)
    obs, infos = env.reset(seed=seed)
    while env.agents:
        day = env.world.day + 1
        actions = {a: script(day, a) or {"primary": "idle"} for a in env.agents if a != ME}
        if ME in env.agents:
            batch = Batch.from_observations({ME: obs[ME]}, {ME: infos[ME]})
            actions.update(policy.act(batch))
        for name in poor if day >= poor_from else ():
            env.world.state.wealth[int(name.split("_")[1])] = 1.0
        obs, _, _, _, infos = env.step(actions)
        assert not any(i["invalid"] for i in infos.values()), infos
    return [(e.day, e.kind, e.actor, e.target) for e in env.log.events()]


def deeds(log, kind: EventKind, actor: str = ME, target: str | None = None) -> list[int]:
    return [d for d, k, a, t in log if k == kind and a == actor
            and (target is None or t == target)]


def attack(target: str = ME) -> dict:
    return {"primary": "idle", "secondary": "attack", "target": target}


def gift(target: str = ME, amount: float = 1.0) -> dict:
    return {"primary": "idle", "secondary": "gift", "target": target, "amount": amount}


def quiet(policy: MemoryScriptedPolicy) -> MemoryScriptedPolicy:
    """Switch off everything a test does not look at (random secondaries)."""
    force(policy, attack=0, desperate=0, deceive=0, gift=0, reciprocity=0, retaliate=0,
          ally=0, ally_when_attacked=0, exploit_weak=0, talk=0, explore=0, upgrade_self=0,
          upgrade_factory=0, rest=0)
    return policy


# ---- retaliation, trust, forgiveness -------------------------------------------------------

def test_retaliates_against_its_attacker_when_the_odds_allow():
    def script(day, agent):
        return attack() if agent == "resident_1" and day == 1 else None

    policy = quiet(MemoryScriptedPolicy(seed=0))
    force(policy, retaliate=1.0, retaliate_odds=0.0)
    log = live(world(), script, policy)
    back = deeds(log, EventKind.ATTACK)
    assert back and set(deeds(log, EventKind.ATTACK, target="resident_1")) == set(back)
    assert back[0] == 2  # answered the next day
    # Remembered beyond the observation's 3-day window: answered until the decayed count of
    # one attack falls under RETALIATE_MIN (one half-life), then never again.
    assert max(back) == 1 + int(MEMORY_HALF_LIFE)
    # Odds too poor (p_win < retaliate_odds): no answer.
    policy = quiet(MemoryScriptedPolicy(seed=0))
    force(policy, retaliate=1.0, retaliate_odds=0.99)
    assert deeds(live(world(), script, policy), EventKind.ATTACK) == []


def test_values_weigh_retaliation_and_forgiveness():
    power, kind = condition_row("with:power", TABLE_VERSION_V2), \
        condition_row("with:benevolence", TABLE_VERSION_V2)
    base = condition_row("baseline", TABLE_VERSION_V2)
    assert power["retaliate"] > base["retaliate"] > kind["retaliate"]
    assert power["retaliate_odds"] < base["retaliate_odds"] < kind["retaliate_odds"]
    assert kind["forgive_days"] < base["forgive_days"] < power["forgive_days"]
    assert power["exploit_weak"] > 0 == base["exploit_weak"]
    security, universal = condition_row("with:security", TABLE_VERSION_V2), \
        condition_row("with:universalism", TABLE_VERSION_V2)
    assert security["guard_at"] < base["guard_at"] < universal["guard_at"]
    assert condition_row("with:tradition", TABLE_VERSION_V2)["conform"] == 1
    assert condition_row("with:conformity", TABLE_VERSION_V2)["conform"] == 1
    assert universal["gift_scope"] == 1


def test_power_retaliates_and_benevolence_rarely_does():
    """The real rows (no forcing): answered attacks over several seeds."""
    def script(day, agent):
        return attack() if agent == "resident_1" and day in (1, 6, 11) else None

    answered = {}
    for condition in ("with:power", "with:benevolence"):
        n = 0
        for seed in range(4):
            policy = MemoryScriptedPolicy(seed=seed)
            force(policy, attack=0, exploit_weak=0, deceive=0, desperate=0)
            log = live(world(seed, condition=condition, prevalence=1.0, days=16), script,
                       policy, seed)
            n += len(deeds(log, EventKind.ATTACK, target="resident_1"))
        answered[condition] = n
    assert answered["with:power"] > 3 * max(answered["with:benevolence"], 1)


def test_stops_giving_to_an_attacker_and_forgives_after_the_documented_time():
    """r1 gives every day but attacks on day 3. ME returns gifts (reciprocity 1) on days
    2-3, then none while r1 is distrusted: an attack after ME's gifts is a betrayal, so for
    BETRAYAL_FACTOR x forgive_days days after day 3; then gifts resume."""
    forgive = 3

    def script(day, agent):
        if agent == "resident_1":
            return attack() if day == 3 else gift()
        return None

    policy = quiet(MemoryScriptedPolicy(seed=0))
    force(policy, reciprocity=1.0, comfort=0.0, forgive_days=forgive)
    log = live(world(days=16), script, policy)
    given = deeds(log, EventKind.GIFT, target="resident_1")
    trusted_again = 3 + int(BETRAYAL_FACTOR * forgive) + 1
    assert given[:2] == [2, 3]
    assert not [d for d in given if 3 < d < trusted_again]
    assert trusted_again in given
    # A longer forgive_days keeps it distrusted to the end.
    policy = quiet(MemoryScriptedPolicy(seed=0))
    force(policy, reciprocity=1.0, comfort=0.0, forgive_days=20)
    assert deeds(live(world(days=16), script, policy), EventKind.GIFT,
                 target="resident_1") == [2, 3]


def test_plain_attacker_is_distrusted_for_forgive_days():
    """A stranger's attack (no alliance, message or gift before it) is not a betrayal: the
    attacker, destitute from the day of its attack, gets no help for forgive_days days,
    then does (a gift before the attack would make it a betrayal: twice as long)."""
    forgive = 4

    def script(day, agent):
        return attack() if agent == "resident_1" and day == 2 else None

    policy = quiet(MemoryScriptedPolicy(seed=0))
    force(policy, gift=1.0, gift_scope=1.0, gift_share=0.0, comfort=0.0,
          forgive_days=forgive, guard_at=1.01)
    log = live(world(n=2, days=12), script, policy, poor=("resident_1",), poor_from=3)
    assert deeds(log, EventKind.GIFT, target="resident_1") == list(range(2 + forgive + 1, 13))
    # Without the attack it is helped as soon as it is seen destitute (day 4).
    log = live(world(n=2, days=12), lambda day, agent: None, policy, poor=("resident_1",),
               poor_from=3)
    assert deeds(log, EventKind.GIFT, target="resident_1") == list(range(4, 13))


# ---- mirroring, alliances, climate ---------------------------------------------------------

def test_baseline_mirrors_a_cooperator():
    """A baseline v2 resident (its real row) gives back to a resident who keeps giving, never
    attacks it, and seeks an alliance with it."""
    def script(day, agent):
        return gift(amount=2.0) if agent == "resident_1" else None

    policy = MemoryScriptedPolicy(seed=1)
    log = live(world(days=20), script, policy, seed=1)
    back = deeds(log, EventKind.GIFT, target="resident_1")
    assert len(back) >= 5
    assert len(back) > len(deeds(log, EventKind.GIFT, target="resident_2"))
    assert deeds(log, EventKind.ATTACK) == []


def test_seeks_an_alliance_when_attacked():
    def script(day, agent):
        if agent == "resident_1":
            return attack() if day == 3 else None
        if agent == "resident_2" and day == 1:
            return gift()
        return None

    policy = quiet(MemoryScriptedPolicy(seed=0))
    force(policy, ally_when_attacked=1.0)
    log = live(world(days=6), script, policy)
    proposals = [(d, t) for d, k, a, t in log if k == EventKind.MERGE_PROPOSAL and a == ME]
    assert proposals and proposals[0][0] == 4
    assert proposals[0][1] == "resident_2"  # the best record among the trusted
    assert "resident_1" not in {t for _, t in proposals}


def test_guards_when_most_recent_deeds_around_it_are_hostile():
    """Helping a destitute stranger every day (gift 1) until most deeds seen are hostile:
    then no gifts, no exploring, until the climate cools."""
    def hostile(day, agent):
        return attack() if agent == "resident_1" and day in (3, 4) else None

    def run(script, **fields):
        policy = quiet(MemoryScriptedPolicy(seed=0))
        force(policy, gift=1.0, gift_scope=1.0, gift_share=0.0, comfort=0.0,
              **{"explore": 1.0, **fields})
        return live(world(days=14), script, policy, poor=("resident_3",))

    calm = run(lambda day, agent: None)
    assert deeds(calm, EventKind.GIFT, target="resident_3") == list(range(2, 15))
    log = run(hostile)
    helped = deeds(log, EventKind.GIFT, target="resident_3")
    # Attacked on days 3 and 4 (seen on days 4 and 5): guards from day 4, until the hostile
    # deeds' decayed count falls under GUARD_MIN_DEEDS (half-life CLIMATE_HALF_LIFE).
    # Decayed hostile count: day 4: 1, 5: 1.79, 6: 1.42, 7: 1.13, 8: 0.89 (< 1).
    assert helped == [2, 3, *range(8, 15)]
    explored = {d for d, k, a, _ in log if k == EventKind.EXPLORE and a == ME}
    assert not explored & set(range(4, 8)) and explored & set(range(8, 15))
    # A resident that never guards (guard_at > 1) keeps helping.
    never = run(hostile, guard_at=1.01, explore=0.0)
    assert set(range(2, 9)) <= set(deeds(never, EventKind.GIFT, target="resident_3"))


def test_the_climate_threshold_is_value_dependent():
    """The same hostile share (0.6) makes a security holder guard, not a universalist."""
    policy = MemoryScriptedPolicy(seed=0)
    codes = np.array([_code("with:security"), _code("baseline"), _code("with:universalism")])
    t = policy._tendencies(codes)
    view = {"hostile": np.full(3, 3.0), "friendly": np.full(3, 2.0)}
    assert policy._climate(view, t).tolist() == [True, True, False]
    view = {"hostile": np.full(3, 1.0), "friendly": np.full(3, 2.0)}  # share 1/3
    assert policy._climate(view, t).tolist() == [True, False, False]


def _code(condition: str) -> int:
    return ValueCondition.parse(condition).code


# ---- modes, seeds, memory bookkeeping, registry, docs --------------------------------------

def play(seed: int, mode: str = "numeric", **kwargs):
    env = civa_env.parallel_env(seed=seed, obs_mode=mode, **kwargs)
    policy = make_policy("scripted:v2")
    policy.reset(env.cfg, seed)
    obs, infos = env.reset(seed=seed)
    while env.agents:
        batch = Batch.from_observations({a: obs[a] for a in env.agents},
                                        {a: infos[a] for a in env.agents})
        obs, _, _, _, infos = env.step(policy.act(batch))
    return [(e.day, e.kind, e.actor, e.target, e.amount, e.text) for e in env.log.events()]


def test_same_events_with_text_on_and_off():
    kw = dict(condition="with:power", prevalence=0.5, max_days=20, n_agents=15)
    text = play(3, "text", **kw)
    assert text == play(3, "numeric", **kw)
    kinds = {e[1] for e in text}
    assert {EventKind.ATTACK, EventKind.GIFT} <= kinds


def test_seeded_runs_are_reproducible():
    kw = dict(condition="without:benevolence", prevalence=0.5, max_days=20)
    assert play(5, **kw) == play(5, **kw)
    assert play(5, **kw) != play(6, **kw)
    # Through the runner too (its batches carry one LegalBook: the fast path for names).
    cfg = civa_env.Config(condition="with:power", prevalence=0.5, seed=2, max_days=20)
    a = run_community(cfg, "scripted:v2", 2, None, progress=False, plots=False)
    b = run_community(cfg, "scripted:v2", 2, None, progress=False, plots=False)
    assert a.summary == b.summary


def test_slot_names_read_the_same_from_legal_facts_and_the_legal_book():
    env = civa_env.parallel_env(seed=3, condition="with:power", prevalence=0.5,
                                obs_mode="numeric")
    obs, infos = env.reset(seed=3)
    for _ in range(4):
        obs, _, _, _, infos = env.step({a: attack("resident_1") if a == "resident_2" else 0
                                        for a in env.agents})
    pz = Batch.from_observations({a: obs[a] for a in env.agents},
                                 {a: infos[a] for a in env.agents})
    seen = env.world.observe(env.world.living)
    book = Batch.from_seen(seen, list(pz.keys))
    v = env.cfg.view_size
    assert (_slot_columns(pz, v) == _slot_columns(book, v)).all()
    assert (_slot_columns(pz, v) >= 0).sum() > 0


def test_memory_resets_and_keeps_only_the_living():
    env = civa_env.parallel_env(seed=2, condition="with:power", prevalence=1.0, upkeep=1.4,
                                max_days=25)
    policy = make_policy("scripted:v2")
    policy.reset(env.cfg, 2)
    obs, infos = env.reset(seed=2)
    deaths = 0
    while env.agents:
        actions = policy.act(Batch.from_observations({a: obs[a] for a in env.agents}, infos))
        assert set(policy.memory.rows) == set(env.agents)
        obs, _, terminations, _, infos = env.step(actions)
        deaths += sum(terminations.values())
    assert deaths > 0
    assert policy.memory.pair["att_tot"].sum() > 0
    policy.reset(env.cfg, 2)
    assert not policy.memory.rows and policy.memory.pair["att_tot"].sum() == 0


def test_without_legal_facts_it_acts_with_empty_memories():
    env = civa_env.parallel_env(seed=1, condition="with:power", prevalence=1.0,
                                obs_mode="numeric", max_days=10)
    policy = make_policy("scripted:v2")
    policy.reset(env.cfg, 1)
    obs, infos = env.reset(seed=1)
    while env.agents:
        batch = Batch.from_observations({a: obs[a] for a in env.agents}, day=env.world.day + 1)
        obs, _, _, _, infos = env.step(policy.act(batch))
        assert not any(i["invalid"] for i in infos.values())
    assert policy.memory.pair["att_tot"].sum() == 0


def test_registry_and_describe():
    assert type(make_policy("scripted")) is ScriptedPolicy
    assert type(make_policy("scripted:v1")) is ScriptedPolicy
    v2 = make_policy("scripted:v2")
    assert isinstance(v2, MemoryScriptedPolicy)
    assert v2.describe() == {"name": "scripted", "table_version": "scripted-v2"}
    with pytest.raises(ValueError, match="table version"):
        make_policy("scripted:v3")


def test_v2_table_covers_every_condition_and_docs_match():
    table = tendency_table(TABLE_VERSION_V2)
    assert table.shape == (N_CONDITION_CODES, len(FIELDS_V2))
    assert FIELDS_V2[:len(FIELDS)] == FIELDS and set(BASELINE_V2) == set(FIELDS_V2)
    assert set(FIELDS_V2[len(FIELDS):]) == set(MEMORY_MEANINGS)
    assert set(CHANGES_V2) == set(CHANGES)
    for (head, value), changes in CHANGES_V2.items():
        assert isinstance(value, Value) and set(changes) <= set(FIELDS_V2)
        # v1's changes carry over unless the memory table names the field again.
        for field, v1 in CHANGES[(head, value)].items():
            assert changes[field] == v1 or field in MEMORY_CHANGES[(head, value)]
    # v1's table is unchanged by v2's existence.
    assert tendency_table().shape == (N_CONDITION_CODES, len(FIELDS))
    doc = (ROOT / "docs" / "scripted.md").read_text()
    assert tendency_table_markdown(TABLE_VERSION_V2) in doc, "paste the v2 table into the docs"
    assert fields_table_markdown(TABLE_VERSION_V2) in doc, "paste the v2 fields into the docs"


def test_actions_are_valid_in_a_full_community():
    env = civa_env.parallel_env(seed=4, condition="with:security", prevalence=0.5,
                                max_days=30, obs_mode="numeric")
    policy = make_policy("scripted:v2")
    policy.reset(env.cfg, 4)
    obs, infos = env.reset(seed=4)
    secondaries = set()
    while env.agents:
        actions = policy.act(Batch.from_observations({a: obs[a] for a in env.agents}, infos))
        for agent, action in actions.items():
            if isinstance(action, int):
                assert obs[agent]["action_mask"][action] == 1
            else:
                secondaries.add(action["secondary"])
        obs, _, _, _, infos = env.step(actions)
        assert not any(i["invalid"] for i in infos.values())
    assert {Secondary.GIFT, Secondary.MERGE} <= secondaries
