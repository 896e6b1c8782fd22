"""Actions thrown at ``step``: arbitrary content becomes a flagged no-op, non-actions raise a
ValueError naming the resident and the field, and the env never loses a resident's state.
Also the flat catalogue (encode/decode) and the action mask against what ``step`` accepts."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import civa_env
from civa_env.world.actions import Catalogue, pack_actions
from civa_env.world.catalogue import is_allied
from civa_env.world.config import Config
from civa_env.world.kinds import Primary, Secondary

N, POOL = 6, 12
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _base_env() -> civa_env.CivaEnv:
    """Day 2 of a small world with an alliance (0-1) and a dead resident (5)."""
    env = civa_env.parallel_env(n_agents=N, max_agents=POOL, max_days=30, outage_prob=0.0)
    env.reset(seed=11)
    actions = {a: {"primary": "idle"} for a in env.agents}
    actions["resident_0"] = {"primary": "idle", "secondary": "merge", "target": "resident_1"}
    actions["resident_1"] = {"primary": "idle", "secondary": "merge", "target": "resident_0"}
    actions["resident_5"] = {"primary": "idle", "secondary": "gift", "target": "resident_4",
                             "amount": 1e9}
    env.step(actions)
    assert env.world.state.ally_matrix()[0, 1] and not env.world.state.alive[5]
    return env


BASE = _base_env()


def fresh() -> civa_env.CivaEnv:
    """A copy of the base env (hypothesis runs many examples per test: one copy each)."""
    return copy.deepcopy(BASE)


@pytest.fixture
def env() -> civa_env.CivaEnv:
    return fresh()


# ---- an oracle of what is valid content, straight from README "Rules" --------------------------


CANONICAL = re.compile(r"resident_(0|[1-9][0-9]*)")  # the only names that resolve
ASCII_SPACE = " \t\n\r\f\v"


def _resident(value, env, i, *, everyone: bool):
    """Index named by ``value`` (name or view slot), EVERYONE (-1) or None (unknown)."""
    v = env.cfg.view_size
    if isinstance(value, str):
        word = value.strip(ASCII_SPACE)
        if everyone and word.isascii() and word.lower() in ("everyone", "all", "*"):
            return -1
        if CANONICAL.fullmatch(value):  # exactly: no whitespace, no leading zero
            return int(value[9:])
        return None
    if everyone and value == v:
        return -1
    if 0 <= value < v and env.world.view[i, value] >= 0:
        return int(env.world.view[i, value])
    return None


def expect_valid(env, name: str, action: dict) -> bool:
    """Whether a well-typed structured action should pass without a flag."""
    w, cfg, i = env.world.state, env.cfg, int(name.split("_")[1])
    alive = lambda j: j is not None and 0 <= j < w.n_pool and w.alive[j]  # noqa: E731

    def kind(enum_cls, value):
        if value is None:  # absent
            return enum_cls(0)
        if isinstance(value, str):
            word = value.strip(ASCII_SPACE)
            return enum_cls.__members__.get(word.upper()) if word.isascii() else None
        return enum_cls(value) if value in set(enum_cls) else None

    primary = kind(Primary, action["primary"])
    if primary is None:
        return False
    if primary in (Primary.WORK, Primary.UPGRADE_FACTORY):
        f = action.get("factory")
        if f is None or not 0 <= f < cfg.n_factories or not w.known[i, f]:
            return False
    upgrading = primary in (Primary.UPGRADE_SELF, Primary.UPGRADE_FACTORY)
    if upgrading and w.wealth[i] < cfg.upgrade_cost:
        return False
    secondary = kind(Secondary, action.get("secondary", 0))
    if secondary is None:
        return False
    if secondary != Secondary.NONE:
        target = action.get("target")
        j = None if target is None else _resident(target, env, i, everyone=False)
        if not alive(j) or j == i:
            return False
        if secondary == Secondary.MERGE and is_allied(w, np.array([i]), np.array([j]))[0]:
            return False
        if secondary == Secondary.GIFT:
            amount = action.get("amount")
            amount = 0.0 if amount is None else amount
            if not amount > 0 or amount > max(w.wealth[i], 0.0) + 1e-9:
                return False
    messages = action.get("messages") or []
    if isinstance(messages, dict):
        messages = [messages]
    if len(messages) > cfg.max_messages:
        return False
    for msg in messages:
        to = msg.get("to")
        j = _resident("everyone" if to is None else to, env, i, everyone=True)
        if j is None or (j != -1 and (not alive(j) or j == i)):
            return False
        if len(msg["text"]) > cfg.max_message_chars:
            return False
    return True


# ---- strategies ----------------------------------------------------------------------------------

NAMES = [f"resident_{i}" for i in range(POOL)] + ["resident_999", "resident_x", "Bob", ""]
target_values = st.one_of(st.sampled_from(NAMES), st.integers(-3, 30),
                          st.sampled_from(["  resident_2 ", "resident_02", "resident_\u0662",
                                           "RESIDENT_2"]))
texts = st.one_of(st.text(max_size=40), st.text(min_size=270, max_size=300),
                  st.sampled_from(["peace", "ünïcödé ☀", "\x00\n\t", ""]))
message = st.fixed_dictionaries(
    {"text": texts},
    optional={"to": st.one_of(target_values, st.none(),
                              st.sampled_from(["everyone", "ALL", " * "]))})
structured = st.fixed_dictionaries(
    {"primary": st.one_of(st.integers(-2, 7),
                          st.sampled_from(["work", "WORK ", "explore", "upgrade_self",
                                           "upgrade_factory", "idle", "sleep", "upgrade-self"]))},
    optional={
        "factory": st.one_of(st.none(), st.integers(-3, 9)),
        "secondary": st.one_of(st.integers(-1, 5), st.none(),
                               st.sampled_from(["none", "gift", "attack", "merge", "Gift", "hug"])),
        "target": st.one_of(st.none(), target_values),
        "amount": st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                            st.floats(0, 30), st.integers(-5, 50), st.none()),
        "messages": st.one_of(st.none(), st.lists(message, max_size=4), message),
    })


def living(env) -> list[str]:
    return list(env.agents)


def check_consistent(env, before: dict, obs, terms, truncs) -> None:
    """No resident's state is lost: the living are env.agents; only the starved left."""
    w = env.world.state
    assert np.isfinite(w.wealth).all() and np.isfinite(w.skill).all()
    alive_names = {env.possible_agents[i] for i in np.flatnonzero(w.alive)}
    assert set(env.agents) == alive_names
    for a in before:
        i = env.possible_agents.index(a)
        if terms[a]:
            assert not w.alive[i] and w.wealth[i] < 0 and w.died_day[i] == w.day
        else:
            assert w.alive[i] and a in env.agents and w.wealth[i] >= 0
    assert set(before) <= set(obs)
    assert w.alive[: w.n_used].sum() + (w.died_day >= 0).sum() == w.n_used


# ---- structured content: flagged no-ops ----------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_arbitrary_structured_content_is_flagged_exactly_when_invalid(data):
    env = fresh()
    names = living(env)
    actions = {a: data.draw(structured, label=a) for a in names}
    expected = {a: expect_valid(env, a, act) for a, act in actions.items()}
    before = {a: env.world.state.wealth[env.possible_agents.index(a)] for a in names}
    obs, rewards, terms, truncs, infos = env.step(actions)
    for a in names:
        flags = infos[a]["invalid"]
        assert bool(flags) == (not expected[a]), (a, actions[a], flags)
        assert all(isinstance(r, str) and r for r in flags)
    check_consistent(env, before, obs, terms, truncs)
    # Every flag is also in the event log as an INVALID event with its reasons.
    logged = {e.actor for e in env.log.events(env.world.state.day) if e.kind.label == "invalid"}
    assert logged == {a for a in names if infos[a]["invalid"]}


@SETTINGS
@given(data=st.data())
def test_arbitrary_flat_ids_never_crash(data):
    env = fresh()
    size = env.catalogue.size
    ids = st.one_of(st.integers(-5, size + 5), st.integers(-(2**62), 2**62),
                    st.integers(0, size - 1).map(np.int64),
                    st.integers(0, size - 1).map(lambda x: np.array(x, np.int32)))
    actions = {a: data.draw(ids, label=a) for a in living(env)}
    masks = {a: o["action_mask"] for a, o in _observe(env).items()}
    before = dict.fromkeys(actions)
    obs, rewards, terms, truncs, infos = env.step(actions)
    for a, x in actions.items():
        x = int(x)
        in_range = 0 <= x < size
        assert bool(infos[a]["invalid"]) == (not in_range or not masks[a][x]), (a, x)
    check_consistent(env, before, obs, terms, truncs)


def _observe(env):
    """The current observations (the base env's last step returned them; recompute masks)."""
    rows = np.flatnonzero(env.world.state.alive)
    masks = env.catalogue.mask(env.world.state, env.world.view, rows, env.cfg)
    return {env.possible_agents[i]: {"action_mask": masks[k]} for k, i in enumerate(rows.tolist())}


@SETTINGS
@given(seed=st.integers(0, 2**16), days=st.integers(1, 8))
def test_mask_matches_what_step_accepts(seed, days):
    # Masked-valid flat ids are never flagged, masked-invalid ones always are, on states
    # reached by random play (gifts are fractions of the wealth held, so never cut).
    env = civa_env.parallel_env(n_agents=8, max_agents=16, view_size=5, n_factories=3,
                                birth_threshold=14.0)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(days):
        if not env.agents:
            return
        actions, valid = {}, {}
        for a in env.agents:
            mask = obs[a]["action_mask"]
            pool = np.flatnonzero(mask == 0)  # sometimes every choice is valid
            if rng.random() < 0.7 or len(pool) == 0:
                pool = np.flatnonzero(mask)
            actions[a] = int(rng.choice(pool))
            valid[a] = bool(mask[actions[a]])
        obs, _, _, _, infos = env.step(actions)
        for a in actions:
            assert bool(infos[a]["invalid"]) == (not valid[a]), (
                a, env.catalogue.describe(actions[a]), infos[a]["invalid"])


def test_missing_action_idles_flagged_and_dead_actions_ignored(env):
    obs, rewards, terms, truncs, infos = env.step({"resident_0": 0, "resident_5": "garbage"})
    assert infos["resident_1"]["invalid"] == ["no action given: idle"]
    assert "resident_5" not in infos  # dead before the step: its action is ignored
    assert all(infos[a] for a in BASE.agents)


def test_flags_name_the_reason(env):
    w = env.world.state
    unknown = int(np.flatnonzero(~w.known[2])[0])
    actions = {a: {"primary": "idle"} for a in env.agents}
    actions["resident_2"] = {"primary": "work", "factory": unknown}
    actions["resident_3"] = {"primary": "idle", "secondary": "attack", "target": "resident_5"}
    actions["resident_4"] = {"primary": "idle", "secondary": "gift", "target": "resident_3",
                             "amount": float("nan")}
    actions["resident_0"] = {"primary": "idle", "secondary": "merge", "target": "resident_1",
                             "messages": [{"to": "resident_3", "text": "x" * 500},
                                          {"to": "resident_0", "text": "me"}, {"text": "c"}]}
    actions["resident_1"] = {"primary": "idle", "secondary": "gift", "target": "resident_1",
                             "amount": 1.0}
    *_, infos = env.step(actions)
    assert infos["resident_2"]["invalid"] == ["factory not known to the resident: idle"]
    assert "dead" in infos["resident_3"]["invalid"][0]
    assert "amount" in infos["resident_4"]["invalid"][0]
    r0 = " | ".join(infos["resident_0"]["invalid"])
    assert "already allied" in r0 and "at most 2" in r0 and "280" in r0 and "self" in r0
    assert "oneself" in infos["resident_1"]["invalid"][0]
    # The long message went out cut to 280 characters; the one to self was dropped.
    sent = [e for e in env.log.events(env.world.state.day) if e.kind.label == "message"]
    assert [(e.actor, e.target, len(e.text)) for e in sent] == [
        ("resident_0", "resident_3", 280)]


# ---- non-actions: ValueError naming the resident and the field -----------------------------------

WRONG_WHOLE = [[1, 2], "work", "resident_1", 3.0, 2.5, True, (0,), {1, 2}, np.array([1, 2]),
               np.array(1.5)]  # (None is no action: idle, flagged)


@pytest.mark.parametrize("action", WRONG_WHOLE, ids=lambda x: type(x).__name__)
def test_wrong_type_whole_action_raises(env, action):
    day, wealth = env.world.state.day, env.world.state.wealth.copy()
    actions = {a: 0 for a in env.agents}
    actions["resident_3"] = action
    with pytest.raises(ValueError, match="resident_3"):
        env.step(actions)
    # nothing happened
    assert env.world.state.day == day and np.array_equal(env.world.state.wealth, wealth)
    env.step({a: 0 for a in env.agents})  # and the env goes on
    assert env.world.state.day == day + 1


WRONG_FIELDS = [
    ({"primary": "idle", "colour": "red"}, "colour"),
    ({"factory": 1}, "primary"),
    ({"primary": None}, "primary"),
    ({"primary": 1.5}, "primary"),
    ({"primary": True}, "primary"),
    ({"primary": [0]}, "primary"),
    ({"primary": "work", "factory": "one"}, "factory"),
    ({"primary": "work", "factory": 0.5}, "factory"),
    ({"primary": "idle", "secondary": 2.5}, "secondary"),
    ({"primary": "idle", "secondary": "attack", "target": 1.5}, "target"),
    ({"primary": "idle", "secondary": "attack", "target": ["resident_1"]}, "target"),
    ({"primary": "idle", "secondary": "gift", "target": "resident_1", "amount": "lots"}, "amount"),
    ({"primary": "idle", "secondary": "gift", "target": "resident_1", "amount": [1.0]}, "amount"),
    ({"primary": "idle", "messages": "hello"}, "messages"),
    ({"primary": "idle", "messages": ["hello"]}, "messages[0]"),
    ({"primary": "idle", "messages": [{"to": "everyone"}]}, "messages[0]"),
    ({"primary": "idle", "messages": [{"to": "everyone", "text": 5}]}, "messages[0].text"),
    ({"primary": "idle", "messages": [{"to": 1.5, "text": "hi"}]}, "messages[0].to"),
    ({"primary": "idle", "messages": [{"text": "ok"}, {"to": 2.5, "text": "hi"}]},
     "messages[1].to"),
    ({"primary": "idle", "messages": [{"text": "ok", "colour": 1}]}, "messages[0]"),
    ({"primary": "idle", "target": 1.5}, "target"),  # checked with secondary none too
    ({"primary": "idle", "amount": "lots"}, "amount"),
    ({"primary": "explore", "factory": "one"}, "factory"),
    ({"primary": "idle", "secondary": "gift", "target": "resident_1", "amount": 1j}, "amount"),
]


@pytest.mark.parametrize("action,field", WRONG_FIELDS, ids=[f for _, f in WRONG_FIELDS])
def test_wrong_type_field_raises_naming_resident_and_field(env, action, field):
    wealth = env.world.state.wealth.copy()
    actions = {a: {"primary": "idle"} for a in env.agents}
    actions["resident_2"] = action
    with pytest.raises(ValueError) as err:
        env.step(actions)
    message = str(err.value)
    assert "resident_2" in message and field in message, message
    assert np.array_equal(env.world.state.wealth, wealth)


def test_unknown_agent_raises(env):
    for bad in ("resident_99", "agent_0", 3):
        with pytest.raises(ValueError, match="unknown agent"):
            env.step({bad: 0})


wrong_values = st.one_of(st.lists(st.integers(), min_size=2, max_size=3), st.binary(max_size=3),
                         st.floats(allow_nan=False).filter(lambda x: not float(x).is_integer()),
                         st.booleans(), st.dictionaries(st.text(max_size=3), st.integers(),
                                                        max_size=2))


@SETTINGS
@given(field=st.sampled_from(["primary", "factory", "secondary", "target", "amount"]),
       value=wrong_values, who=st.sampled_from(["resident_0", "resident_2", "resident_4"]))
def test_any_wrong_type_raises_naming_resident_and_field(field, value, who):
    assume(not (field == "amount" and isinstance(value, float)))  # a float amount is fine
    env = fresh()
    action = {"primary": "work", "factory": 0, "secondary": "gift", "target": "resident_3",
              "amount": 1.0, field: value}
    actions = {a: 0 for a in env.agents}
    actions[who] = action
    day = env.world.state.day
    with pytest.raises(ValueError) as err:
        env.step(actions)
    assert who in str(err.value) and field in str(err.value), str(err.value)
    assert env.world.state.day == day


# ---- the catalogue -------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [Config(), Config(n_factories=2, view_size=3, gift_levels=(0.5,)),
                                 Config(n_factories=7, view_size=40)])
def test_catalogue_encode_decode_round_trip(cfg):
    cat = Catalogue(cfg)
    m, v, levels = cfg.n_factories, cfg.view_size, len(cfg.gift_levels)
    assert cat.size == (2 * m + 3) * (1 + v * (levels + 2))
    d = cat.decode(np.arange(cat.size))
    again = [cat.encode(int(d["primary"][k]), int(d["factory"][k]), int(d["secondary"][k]),
                        int(d["slot"][k]), max(int(d["level"][k]), 0)) for k in range(cat.size)]
    assert again == list(range(cat.size))
    # Every meaningful choice has exactly one id.
    choices = {(int(d["primary"][k]), int(d["factory"][k]), int(d["secondary"][k]),
                int(d["slot"][k]), int(d["level"][k])) for k in range(cat.size)}
    assert len(choices) == cat.size
    assert set(d["primary"].tolist()) == set(Primary)
    assert set(d["secondary"].tolist()) == set(Secondary)
    needs_factory = np.isin(d["primary"], [Primary.WORK, Primary.UPGRADE_FACTORY])
    assert ((d["factory"] >= 0) == needs_factory).all()
    assert ((d["slot"] >= 0) == (d["secondary"] != Secondary.NONE)).all()
    assert ((d["level"] >= 0) == (d["secondary"] == Secondary.GIFT)).all()


def test_catalogue_encode_rejects_out_of_range():
    cat = Catalogue(Config())
    with pytest.raises(ValueError, match="factory"):
        cat.encode(Primary.WORK, 5)
    with pytest.raises(ValueError, match="slot"):
        cat.encode(Primary.IDLE, -1, Secondary.ATTACK, 24)
    assert cat.describe(cat.encode(Primary.WORK, 2, Secondary.GIFT, 3, 1)) == (
        "work factory slot 2 + gift slot 3 (25% of wealth)")


def test_flat_gift_is_a_fraction_of_wealth(env):
    i = 2
    slot = 0
    j = int(env.world.view[i, slot])
    w_i, w_j = env.world.state.wealth[i], env.world.state.wealth[j]
    flat = env.catalogue.encode(Primary.IDLE, -1, Secondary.GIFT, slot, 2)  # 50%
    batch = pack_actions({"resident_2": flat}, env.world.state, env.world.view, env.catalogue,
                         env.cfg, env.world.state.day + 1)
    assert batch.target[i] == j and batch.amount[i] == pytest.approx(0.5 * w_i)
    assert batch.invalid.get(i) is None
    assert math.isclose(w_j, env.world.state.wealth[j])  # packing changes nothing


def test_mask_of_no_residents_is_empty(env):
    masks = env.catalogue.mask(env.world.state, env.world.view, np.empty(0, np.int64), env.cfg)
    assert masks.shape == (0, env.catalogue.size)
