"""The action contract under fuzzing (issue 13; the contract is ``civa_env.world.actions``'s
module docstring): whatever ``step`` is given ends in exactly one of

* flagged content: the day is played, the reasons in ``infos[agent]["invalid"]`` are
  short (bounded, however large the input), or
* a ValueError naming the resident and the field, and the world is untouched: state,
  random streams, day and log as before, and the next valid step gives what it would
  have given had the bad call never happened;

never another exception. Every generated value carries its class (a well-typed value, or
a form error naming a field), so the expectation is not read back from the code.
"""

from __future__ import annotations

import copy
import decimal
import fractions
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import civa_env
from civa_env.world import day as world_day
from civa_env.world.actions import SHOW_CHARS, pack_actions, show

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REASON_CHARS = 160  # longest reason: fixed words plus one value shown in SHOW_CHARS
ERROR_CHARS = 600  # longest ValueError message (up to five unknown keys shown)
HUGE = "x" * 1_000_000


def _base(mode: str) -> civa_env.CivaEnv:
    """Day 1 played in a small world (6 residents, pool 12): 0 and 1 allied, 5 dead."""
    env = civa_env.parallel_env(n_agents=6, max_agents=12, max_days=30, outage_prob=0.0,
                                view_size=4, obs_mode=mode)
    env.reset(seed=5)
    actions = {a: {"primary": "idle"} for a in env.agents}
    actions["resident_0"] = {"primary": "idle", "secondary": "merge", "target": "resident_1"}
    actions["resident_1"] = {"primary": "idle", "secondary": "merge", "target": "resident_0"}
    actions["resident_5"] = {"primary": "idle", "secondary": "gift", "target": "resident_4",
                             "amount": 1e9}
    env.step(actions)
    assert env.world.state.ally_matrix()[0, 1] and not env.world.state.alive[5]
    return env


BASES = {mode: _base(mode) for mode in ("text", "numeric")}
LIVING = list(BASES["text"].agents)  # the same residents in both modes (same seed)


def fresh(mode: str = "numeric") -> civa_env.CivaEnv:
    return copy.deepcopy(BASES[mode])


def snapshot(env: civa_env.CivaEnv) -> tuple:
    """Everything that lasts between days (state, view, random streams, log, counters)."""
    return pickle.dumps(env.world), list(env.agents)


# ---- values: per field, the well-typed ones and the form errors --------------------------------

ALIASES = ["resident_01", "resident_\u0661", "resident_\uff11", " resident_1", "resident_1 ",
           "RESIDENT_1", "Resident_1", "resident_1\n", "resident_+1", "resident_-1",
           "resident_1_", "resident_1.0", "resident_", "resident_" + "9" * 30,
           "resident_" + "1" * 5000, "resident_999", "\u0131dle", "all_", "everyone!", "",
           "x" * 300, HUGE]
NAMES = [f"resident_{i}" for i in range(12)] + ["everyone", " ALL ", "*", "Everyone"]

ints_ok = st.one_of(
    st.integers(-5, 40),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**400, -(10**400)]),
    st.integers(-5, 40).map(np.int64),
    st.integers(0, 2**64 - 1).map(np.uint64),
    st.integers(-128, 127).map(np.int8),
    st.integers(-5, 40).map(float),  # integral floats are ints
    st.sampled_from([1e300, -1e300, 2.0**70]),
    st.integers(-5, 40).map(np.float16),
    st.integers(-5, 40).map(lambda x: np.array([x])),  # one element: that element
    st.integers(0, 40).map(lambda x: np.array(x, np.uint32)),
)
scalars_not_numbers = st.one_of(  # not numbers of the accepted types, nor dicts
    st.booleans(), st.just(np.bool_(True)),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.just(np.complex128(1 + 2j)), st.just(np.complex64(3)),
    st.fractions(), st.sampled_from([fractions.Fraction(10**400, 3), fractions.Fraction(2)]),
    st.decimals(allow_nan=True, allow_infinity=True), st.just(decimal.Decimal("1e400")),
    st.just(np.timedelta64(3, "D")), st.just(np.datetime64("2020-01-01")),
    st.lists(st.integers(), min_size=2, max_size=3), st.tuples(st.integers()),
    st.sets(st.integers(), max_size=2), st.binary(max_size=4), st.just(b"resident_1"),
    st.just(np.array([1, 2])), st.just(object()),
)
not_numbers = st.one_of(scalars_not_numbers,
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
non_integral = st.one_of(
    st.floats().map(lambda x: x if not x.is_integer() else x + 0.5 if abs(x) < 2**50
                    else float("nan")),  # 1.5, nan, inf
    st.sampled_from([np.float16(1.5), np.float32("nan"), np.longdouble("1e4000"),
                     np.array([2.5])]),
)
texts = st.one_of(st.text(max_size=20), st.sampled_from(ALIASES))
kind_names = st.sampled_from(["work", "WORK ", "explore", "upgrade_self", "idle", "none",
                              "gift", "Attack", "merge", "\tmerge\n"])

# Per field: (well-typed values, form errors). None (absent) is well typed where optional.
INT_BAD = st.one_of(not_numbers, non_integral)
KIND_OK = st.one_of(ints_ok, texts, kind_names)
KIND = (st.one_of(KIND_OK, st.none()), INT_BAD)
FACTORY = (st.one_of(ints_ok, st.none()), st.one_of(INT_BAD, texts))
WHO = (st.one_of(ints_ok, texts, st.sampled_from(NAMES), st.none()), INT_BAD)
AMOUNT = (st.one_of(st.floats(), st.integers(), st.sampled_from([10**400, -(10**400)]),
                    st.floats(width=16).map(np.float16), st.floats(width=32).map(np.float32),
                    st.sampled_from([np.longdouble("1e4000"), np.uint64(2**64 - 1),
                                     np.array([2.5]), np.array(3)]), st.none()),
          st.one_of(not_numbers, texts))
PRIMARY = (KIND_OK, INT_BAD)  # required: None is an error
MSG_NOT_DICT = st.one_of(st.text(max_size=5), st.integers(), st.none())
MSG_TEXT = st.one_of(st.text(max_size=30),
                     st.sampled_from([HUGE, "a\nb\tc", "\x00", "\u0661 \ud800"]))
MSG_TEXT_BAD = st.one_of(st.integers(), st.binary(max_size=3), st.none())
MSG_BAD_KEY = st.sampled_from(["colour", "To", "TEXT", 0, None, HUGE])
MESSAGES_BAD = st.one_of(st.text(max_size=5), st.integers(), st.sets(st.integers(), max_size=2))
ACTION_BAD_KEY = st.sampled_from(["colour", "Primary", "targets", 3, None, (1,), HUGE])
SEQUENCE = st.sampled_from([list, tuple])


def tag(strategy, kind):
    """Values of ``strategy`` paired with ``kind``."""
    return strategy.map(lambda v: (v, kind))


def pick(draw, spec, allow_bad: bool) -> tuple:
    """(value, well typed?) from a field's spec; form errors only when ``allow_bad``."""
    if allow_bad and draw(st.integers(0, 2)) == 0:
        return draw(spec[1]), False
    return draw(spec[0]), True


@st.composite
def message(draw, allow_bad: bool, dict_only: bool = False):
    """A message and whether it is well formed (its errors all name ``messages[k]``)."""
    if allow_bad and not dict_only and draw(st.integers(0, 7)) == 0:  # not a dict at all
        return draw(MSG_NOT_DICT), False
    msg, ok = {}, True
    if not allow_bad or draw(st.integers(0, 9)):  # a text, sometimes huge
        msg["text"] = draw(MSG_TEXT)
        if allow_bad and draw(st.integers(0, 7)) == 0:  # of the wrong type, or None
            msg["text"], ok = draw(MSG_TEXT_BAD), False
    else:
        ok = False  # the text is required
    if draw(st.booleans()):
        msg["to"], to_ok = pick(draw, WHO, allow_bad)
        ok = ok and to_ok
    if allow_bad and draw(st.integers(0, 9)) == 0:
        msg[draw(MSG_BAD_KEY)] = 1
        ok = False
    return msg, ok


@st.composite
def structured(draw, allow_bad: bool):
    """A structured action and the error fragments its form errors may raise ([]: none)."""
    action, bad = {}, []
    if not allow_bad or draw(st.integers(0, 9)):
        action["primary"], ok = pick(draw, PRIMARY, allow_bad)
        if not ok:
            bad.append("field 'primary'")
    else:
        if draw(st.booleans()):
            action["primary"] = None
        bad.append("field 'primary'")  # required
    for key, spec in (("factory", FACTORY), ("secondary", KIND), ("target", WHO),
                      ("amount", AMOUNT)):
        if draw(st.booleans()):
            action[key], ok = pick(draw, spec, allow_bad)
            if not ok:
                bad.append(f"field {key!r}")
    shape = draw(st.integers(0, 5 if allow_bad else 3))
    if shape == 1:
        action["messages"] = None
    elif shape == 2:  # one message, as a dict
        action["messages"], ok = draw(message(allow_bad, dict_only=True))
        bad += [] if ok else ["messages[0]"]
    elif shape == 3:
        msgs = [draw(message(allow_bad)) for _ in range(draw(st.integers(0, 4)))]
        action["messages"] = draw(SEQUENCE)(m for m, _ in msgs)
        bad += [f"messages[{k}]" for k, (_, ok) in enumerate(msgs) if not ok]
    elif shape == 4:
        action["messages"] = draw(MESSAGES_BAD)
        bad.append("field 'messages'")
    elif shape == 5:
        action[draw(ACTION_BAD_KEY)] = 0
        bad.append("in the action;")
    return action, bad


def valid_step(env: civa_env.CivaEnv):
    """One valid day (the same for every env copied from one base)."""
    return env.step({a: {"primary": "explore"} for a in env.agents})


def same_outcome(a, b) -> None:
    """Two steps' returns agree (rewards, flags, terminations, observations)."""
    for x, y in zip(a[1:4], b[1:4], strict=True):
        assert x == y
    assert {k: v["invalid"] for k, v in a[4].items()} == {k: v["invalid"] for k, v in b[4].items()}
    assert set(a[0]) == set(b[0])
    for name in a[0]:
        assert a[0][name]["text"] == b[0][name]["text"]
        assert np.array_equal(a[0][name]["features"], b[0][name]["features"])


def expect_refused(env, actions, who: str, fragments, mode: str) -> None:
    """``step(actions)`` raises a bounded ValueError naming ``who`` and a fragment, leaves
    the world untouched, and the next valid step is that of an env never given it."""
    before = snapshot(env)
    with pytest.raises(ValueError) as err:
        env.step(actions)
    message = str(err.value)
    assert len(message) <= ERROR_CHARS, message[:200]
    assert who in message and any(f in message for f in fragments), (who, fragments, message)
    assert snapshot(env) == before
    expect_as_if_untouched(env, mode)


_VALID: dict[str, tuple] = {}


def expect_as_if_untouched(env, mode: str) -> None:
    """The next valid step gives what it gives in a copy of the base never touched."""
    if mode not in _VALID:
        untouched = fresh(mode)
        _VALID[mode] = (valid_step(untouched), snapshot(untouched))
    result, after = _VALID[mode]
    same_outcome(valid_step(env), result)
    assert snapshot(env) == after


def expect_played(env, result) -> None:
    """The day was played: bounded reasons, finite world, finite features."""
    obs, rewards, terms, truncs, infos = result
    for name, info in infos.items():
        for reason in info["invalid"]:
            assert isinstance(reason, str) and 0 < len(reason) <= REASON_CHARS, (name, reason)
    w = env.world.state
    assert np.isfinite(w.wealth).all() and np.isfinite(w.skill).all()
    for ob in obs.values():
        assert np.isfinite(ob["features"]).all()
        assert len(ob["text"]) <= env.cfg.max_text_chars


# ---- structured actions: every field, every level -----------------------------------------------


WHO_FUZZED = st.sampled_from([None, *LIVING])
FLAT_IDS = st.integers(-2, BASES["text"].catalogue.size + 2)
DEAD_ACTION = st.sampled_from([{"colour": 1}, "garbage", None, 2**70])


@pytest.mark.parametrize("mode", ["text", "numeric"])
@FUZZ
@given(data=st.data())
def test_structured_fuzz_is_flag_or_named_value_error(mode, data):
    env = fresh(mode)
    fuzzed = data.draw(WHO_FUZZED, label="the resident given form errors")
    actions, first_bad = {}, None
    for name in LIVING:
        if name != fuzzed and data.draw(st.booleans(), label=f"{name} flat?"):
            actions[name] = data.draw(FLAT_IDS, label=name)
            continue
        actions[name], bad = data.draw(structured(name == fuzzed), label=name)
        if bad and first_bad is None:
            first_bad = (name, bad)
    actions["resident_5"] = data.draw(DEAD_ACTION)  # the dead: ignored
    event("refused" if first_bad else "played")
    if first_bad is not None:
        expect_refused(env, actions, first_bad[0], first_bad[1], mode)
    else:
        expect_played(env, env.step(actions))


# ---- the flat form: ints of every size and type -------------------------------------------------

FLAT_OK = st.one_of(
    st.integers(-3, 1600), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**400, -(10**4000)]),
    st.integers(0, 2**64 - 1).map(np.uint64), st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 1600).map(np.int16), st.integers(0, 255).map(np.uint8),
    st.integers(-3, 1600).map(lambda x: np.array(x)),
    st.integers(0, 2**64 - 1).map(lambda x: np.array([x], np.uint64)))
FLAT_BAD = st.one_of(  # (a dict is a structured action)
    scalars_not_numbers, st.floats(), st.integers(0, 30).map(np.float16), st.just(np.array(1.0)),
    st.text(max_size=5), st.sampled_from(ALIASES), st.just(np.array([1, 2])))


FLAT_GOOD = st.one_of(tag(FLAT_OK, "ok"), st.just((None, "none")))
FLAT_ANY = st.one_of(FLAT_GOOD, tag(FLAT_BAD, "bad"))


@FUZZ
@given(data=st.data())
def test_flat_fuzz_is_flag_or_named_value_error(data):
    env = fresh("numeric")
    size = env.catalogue.size
    rows = np.flatnonzero(env.world.state.alive)
    masks = dict(zip(LIVING, env.catalogue.mask(env.world.state, env.world.view, rows,
                                                env.cfg), strict=True))
    fuzzed = data.draw(WHO_FUZZED, label="the resident given a non-id")
    actions, kinds = {}, {}
    for name in LIVING:
        actions[name], kinds[name] = data.draw(FLAT_ANY if name == fuzzed else FLAT_GOOD,
                                               label=name)
    event("refused" if fuzzed is not None and kinds[fuzzed] == "bad" else "played")
    if fuzzed is not None and kinds[fuzzed] == "bad":
        expect_refused(env, actions, fuzzed, ["expected a flat action id"], "numeric")
        return
    result = env.step(actions)
    expect_played(env, result)
    for name in LIVING:
        flags = result[4][name]["invalid"]
        if kinds[name] == "none":
            assert flags == ["no action given: idle"]
            continue
        value = actions[name]
        x = int(value.reshape(())) if isinstance(value, np.ndarray) else int(value)
        if not 0 <= x < size:
            assert flags == [f"flat action id outside [0, {size}): idle"]
        else:
            assert bool(flags) == (not masks[name][x]), (name, x, flags)


# ---- the actions argument and its keys ----------------------------------------------------------

NOT_A_MAPPING = st.one_of(st.none(), st.lists(st.integers(), max_size=3), st.text(max_size=5),
                          st.integers(), st.tuples(st.integers()), st.sets(st.integers()),
                          st.just(np.zeros(3)), st.just([("resident_0", 0)]), st.just(HUGE))
NOT_AN_AGENT = st.one_of(st.sampled_from(ALIASES), st.integers(), st.just(np.int64(0)),
                         st.just(b"resident_0"), st.just(("resident_0",)), st.none(),
                         st.just(True), st.text(max_size=8).filter(
                             lambda s: s not in [f"resident_{i}" for i in range(12)]))


@FUZZ
@given(actions=NOT_A_MAPPING, mode=st.sampled_from(["text", "numeric"]))
def test_step_given_no_mapping_raises_a_clear_value_error(actions, mode):
    env = fresh(mode)
    before = snapshot(env)
    with pytest.raises(ValueError, match="step expects a dict mapping agent names") as err:
        env.step(actions)
    assert len(str(err.value)) <= ERROR_CHARS
    assert snapshot(env) == before
    with pytest.raises(ValueError, match="step expects a dict"):  # the world API too
        world_day.step(env.world, actions)
    assert snapshot(env) == before
    expect_as_if_untouched(env, mode)


@FUZZ
@given(key=NOT_AN_AGENT, action=st.sampled_from([0, {"primary": "idle"}, None, "garbage"]),
       index_of=st.booleans())
def test_unknown_agent_names_raise_and_aliases_name_nobody(key, action, index_of):
    env = fresh("numeric")
    actions = {a: 0 for a in LIVING}
    actions[key] = action
    before = snapshot(env)
    w = env.world
    with pytest.raises(ValueError, match="unknown agent") as err:
        if index_of:
            env.step(actions)
        else:  # pack_actions reads the names itself without the world's index
            pack_actions(actions, w.state, w.view, w.catalogue, w.cfg, w.day + 1)
    assert len(str(err.value)) <= ERROR_CHARS
    assert snapshot(env) == before


# ---- each input class, and how it ends ----------------------------------------------------------

GIFT = {"primary": "idle", "secondary": "gift", "target": "resident_2"}
FLAGGED = [  # (action of resident_3, a words of its one flag)
    (2**63, "outside [0,"), (np.uint64(2**64 - 1), "outside [0,"), (-(10**400), "outside [0,"),
    (np.array([2**64 - 1], np.uint64), "outside [0,"), (None, "no action given"),
    ({**GIFT, "amount": 10**400}, "gift larger than wealth held: cut"),
    ({**GIFT, "amount": float("inf")}, "gift larger than wealth held: cut"),
    ({**GIFT, "amount": np.longdouble("1e4000")}, "gift larger than wealth held: cut"),
    ({**GIFT, "amount": float("nan")}, "gift amount must be > 0"),
    ({**GIFT, "amount": -(10**400)}, "gift amount must be > 0"),
    ({**GIFT, "amount": None}, "gift amount must be > 0"),
    ({**GIFT, "amount": np.float16(0.0)}, "gift amount must be > 0"),
    ({"primary": 2**200}, "unknown primary <int of 201 bits>: idle"),
    ({"primary": 2**70}, "unknown primary 1180591620717411303424: idle"),
    ({"primary": 10**5000}, "unknown primary <int of"),
    ({"primary": HUGE}, "unknown primary 'xxx"),
    ({"primary": "\u0131dle"}, "unknown primary"),  # dotless i: not "idle" upper-cased
    ({"primary": "work", "factory": 2**64}, "unknown factory"),
    ({"primary": "idle", "secondary": np.uint64(2**64 - 1)}, "unknown secondary"),
    ({"primary": "idle", "secondary": "attack", "target": 2**63}, "unknown target"),
    ({"primary": "idle", "messages": [{"to": 10**30, "text": "hi"}]}, "message to unknown"),
    ({"primary": "idle", "messages": [{"to": "everyone", "text": HUGE}]}, "characters: cut"),
] + [({"primary": "idle", "secondary": "attack", "target": alias}, "unknown target")
     for alias in ALIASES] + [
    ({"primary": "idle", "messages": {"to": alias, "text": "hi"}}, "message to unknown")
    for alias in ALIASES if alias.strip().lower() not in ("everyone", "all", "*")]

REFUSED = [  # (action of resident_3, the field named)
    ({**GIFT, "amount": 1 + 2j}, "'amount'"), ({**GIFT, "amount": np.complex128(2)}, "'amount'"),
    ({**GIFT, "amount": fractions.Fraction(1, 2)}, "'amount'"),
    ({**GIFT, "amount": decimal.Decimal("1.5")}, "'amount'"),
    ({**GIFT, "amount": True}, "'amount'"),
    ({**GIFT, "amount": np.timedelta64(1, "D")}, "'amount'"), ({**GIFT, "amount": "1"}, "'amount'"),
    ({"primary": "idle", "amount": "lots"}, "'amount'"),  # secondary none: checked all the same
    ({"primary": "idle", "target": 1.5}, "'target'"),
    ({"primary": "idle", "secondary": "none", "target": [1]}, "'target'"),
    ({"primary": "explore", "factory": "0"}, "'factory'"),
    ({"primary": "explore", "factory": np.timedelta64(1, "D")}, "'factory'"),
    ({"primary": np.float16(1.5)}, "'primary'"), ({"primary": float("inf")}, "'primary'"),
    ({"primary": fractions.Fraction(2)}, "'primary'"), ({"primary": None}, "'primary'"),
    ({"secondary": "none"}, "'primary'"), ({"primary": "idle", "secondary": 1j}, "'secondary'"),
    ({"primary": "idle", "colour": 1}, "in the action"),
    ({"primary": "idle", 3: 1}, "in the action"),
    ({"primary": "idle", HUGE: 1}, "in the action"),
    ({"primary": "idle", "messages": [{"text": "hi", "colour": 1}]}, "messages[0]"),
    ({"primary": "idle", "messages": [{"text": "hi", "To": "everyone"}]}, "messages[0]"),
    ({"primary": "idle", "messages": [{"to": "everyone"}]}, "messages[0].text"),
    ({"primary": "idle", "messages": [{"text": None}]}, "messages[0].text"),
    ({"primary": "idle", "messages": [{"text": "a"}] * 5 + [{"text": 1}]}, "messages[5].text"),
    ({"primary": "idle", "messages": [{"text": "a", "to": 2.5}]}, "messages[0].to"),
    ({"primary": "idle", "messages": "hello"}, "'messages'"),
    ({"primary": "idle", "messages": {1, 2}}, "'messages'"),
    (True, "flat action id"), (3.0, "flat action id"), ({1, 2}, "flat action id"),
    ("resident_1", "flat action id"), (HUGE, "flat action id"), (np.float16(3), "flat action id"),
    (fractions.Fraction(3), "flat action id"), (decimal.Decimal(3), "flat action id"),
]


@pytest.mark.parametrize("action,words", FLAGGED, ids=lambda x: show(x)[:30])
def test_content_that_cannot_be_carried_out_is_flagged(action, words):
    env = fresh("numeric")
    actions = {a: 0 for a in LIVING}
    actions["resident_3"] = action
    result = env.step(actions)
    expect_played(env, result)
    flags = result[4]["resident_3"]["invalid"]
    assert any(words in f for f in flags), flags
    if isinstance(action, dict) and action.get("amount") is not None:
        gifts = [e for e in env.log.events(env.world.day) if e.kind.label == "gift"]
        held = BASES["numeric"].world.state.wealth[3]
        assert [e.amount for e in gifts] == ([] if "> 0" in words else [pytest.approx(held)])


@pytest.mark.parametrize("action,field", REFUSED, ids=lambda x: show(x)[:30])
def test_what_is_not_an_action_raises_naming_resident_and_field(action, field):
    env = fresh("numeric")
    actions = {a: 0 for a in LIVING}
    actions["resident_3"] = action
    expect_refused(env, actions, "resident_3", [field], "numeric")


def test_none_means_absent_for_every_optional_field():
    """None is the field left out: the same day as without the key."""
    full = {"primary": "idle", "factory": None, "secondary": None, "target": None,
            "amount": None, "messages": [{"to": None, "text": "hello"}]}
    bare = {"primary": "idle", "messages": [{"text": "hello"}]}
    a, b = fresh(), fresh()
    ra = a.step({**{n: 0 for n in LIVING}, "resident_3": full})
    rb = b.step({**{n: 0 for n in LIVING}, "resident_3": bare})
    same_outcome(ra, rb)
    assert snapshot(a) == snapshot(b) and ra[4]["resident_3"]["invalid"] == []


def test_canonical_names_resolve_and_only_they():
    env = fresh()
    actions = {a: 0 for a in LIVING}
    actions["resident_3"] = {"primary": "idle", "secondary": "attack", "target": "resident_2",
                             "messages": [{"to": "resident_4", "text": "hi"},
                                          {"to": " EVERYONE\t", "text": "all"}]}
    *_, infos = env.step(actions)
    assert infos["resident_3"]["invalid"] == []
    attacks = [e for e in env.log.events(env.world.day) if e.kind.label == "attack"]
    assert [(e.actor, e.target) for e in attacks] == [("resident_3", "resident_2")]
    sent = [(e.target, e.text) for e in env.log.events(env.world.day) if e.kind.label == "message"]
    assert sent == [("resident_4", "hi"), (None, "all")]


def test_dead_residents_actions_are_ignored_whatever_they_are():
    env = fresh()
    actions = {a: 0 for a in LIVING}
    actions["resident_5"] = {"colour": HUGE, 1: {1, 2}}
    *_, infos = env.step(actions)
    assert "resident_5" not in infos


def test_reasons_and_errors_stay_short_for_huge_inputs():
    env = fresh()
    *_, infos = env.step({**{a: 0 for a in LIVING}, "resident_2": {"primary": HUGE},
                          "resident_3": {"primary": "idle", "secondary": "gift",
                                         "target": HUGE, "amount": 1.0}})
    assert all(len(r) <= REASON_CHARS for a in ("resident_2", "resident_3")
               for r in infos[a]["invalid"])
    for bad in ({HUGE: 1}, {"primary": "idle", "amount": HUGE}, HUGE, [HUGE] * 10**5):
        with pytest.raises(ValueError) as err:
            env.step({**{a: 0 for a in LIVING}, "resident_3": bad})
        assert len(str(err.value)) <= ERROR_CHARS
    with pytest.raises(ValueError) as err:
        env.step({HUGE: 0})
    assert len(str(err.value)) <= ERROR_CHARS
    assert len(show(HUGE)) <= SHOW_CHARS and len(show(10**5000)) <= SHOW_CHARS


def test_validation_happens_before_anything_is_played():
    """A bad action of the last resident leaves the first residents' valid actions unplayed:
    the refused step and the valid one after it are as if the refused one never came."""
    env = fresh("text")
    good = {a: {"primary": "explore", "messages": [{"text": "x"}]} for a in LIVING}
    before = snapshot(env)
    with pytest.raises(ValueError, match="resident_4"):
        env.step({**good, "resident_4": {"primary": "explore", "amount": 1j}})
    assert snapshot(env) == before
    same_outcome(env.step(good), fresh("text").step(good))
    assert snapshot(env) == snapshot(_played(good))


def _played(actions):
    env = fresh("text")
    env.step(actions)
    return env


def test_step_after_the_last_day_still_checks_its_argument():
    env = civa_env.parallel_env(n_agents=2, max_days=1, obs_mode="numeric")
    env.reset(seed=0)
    env.step({})
    assert env.agents == [] and env.step({}) == ({}, {}, {}, {}, {})
    with pytest.raises(ValueError, match="step expects a dict"):
        env.step(None)
