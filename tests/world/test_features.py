"""The feature vector as a table of named channels (``civa_env.world.features``), read back
in world units through ``FeatureLayout``; and the vectorised ``Catalogue.encode``.

Each channel is checked on a hand-built state: the value set in the state is what
``layout.read`` gives back.
"""

from __future__ import annotations

import numpy as np
import pytest

from civa_env.world import features as features_module
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.features import CHANNELS, FEATURE_CLIP, FeatureLayout, feature_size, features
from civa_env.world.kinds import Deal, Primary, Secondary
from civa_env.world.perception import compute_view, inbox_count
from civa_env.world.state import Message
from civa_env.world.values import ValueCondition

ROWS = np.arange(4)
RTOL = 1e-6  # features are float32


@pytest.fixture
def cfg(exact_cfg) -> Config:
    """Four residents, three factories, three view slots."""
    return exact_cfg(n_agents=4, n_factories=3, view_size=3, max_days=30, known_at_start=1)


def view_of(cfg: Config, state, rows: dict[int, list[int]] | None = None) -> np.ndarray:
    """A hand-built (N, V) view: resident i sees the first of the other founders, in name
    order, unless ``rows`` says otherwise (-1 for an empty slot)."""
    n, v = state.n_pool, cfg.view_size
    view = np.full((n, v), -1, np.int32)
    for i in range(cfg.n_agents):
        others = [j for j in range(cfg.n_agents) if j != i][:v]
        view[i, :len(others)] = others
    for i, seen in (rows or {}).items():
        view[i] = seen
    return view


def feats_of(cfg: Config, state, view: np.ndarray | None = None) -> np.ndarray:
    if view is None:
        view = view_of(cfg, state)
    return features(state, view, ROWS, inbox_count(state), cfg)


# ---- the table and the layout ------------------------------------------------------------------

CONFIGS = [Config(), Config(n_factories=1, view_size=1, known_at_start=1),
           Config(n_factories=7, view_size=40),
           Config(n_agents=3, n_factories=2, view_size=5, max_days=9)]


@pytest.mark.parametrize("config", CONFIGS)
def test_layout_names_are_unique_and_cover_the_vector_once(config):
    layout = FeatureLayout.of(config)
    assert layout.size == feature_size(config)
    assert len(layout.columns) == layout.size
    assert len(set(layout.columns)) == layout.size
    names = [ch.name for ch in CHANNELS]
    assert len(set(names)) == len(names)
    covered = np.zeros(layout.size, int)
    for name in names:
        covered[np.arange(layout.size)[layout.slice(name)]] += 1
    assert (covered == 1).all()
    for c, column in enumerate(layout.columns):
        assert layout.column(column) == c


@pytest.mark.parametrize("config", CONFIGS)
def test_features_have_the_layout_size(config, world):
    state = world(config)
    view = compute_view(state, config, np.random.default_rng(0))
    rows = state.alive.nonzero()[0]
    feats = features(state, view, rows, inbox_count(state), config)
    assert feats.shape == (len(rows), FeatureLayout.of(config).size)
    assert feats.dtype == np.float32
    assert np.abs(feats).max() <= FEATURE_CLIP


def test_layout_order_is_pinned():
    """The order seeded runs were recorded with: 15 own channels, the condition one-hots
    (3 + 10), 5 per factory (factory-major), then 9 per view slot (slot-major)."""
    config = Config(n_factories=4, view_size=6)
    layout = FeatureLayout.of(config)
    own = ["wealth", "skill", "day", "population", "allies", "income", "received", "given",
           "looted", "lost", "attacks", "inbox", "mean_wealth", "upkeep", "outage_prob"]
    assert [layout.index(name) for name in own] == list(range(15))
    assert layout.slice("condition.direction") == slice(15, 18)
    assert layout.slice("condition.value") == slice(18, 28)
    fac = ["known", "capacity", "workers", "output", "outage"]
    slot = ["present", "wealth", "ally", "gave_me", "i_gave", "attacked_me", "i_attacked",
            "messaged_me", "friendly_to_me"]
    for m in range(4):
        assert [layout.factory(m, c) for c in fac] == list(range(28 + 5 * m, 33 + 5 * m))
    for s in range(6):
        assert [layout.slot(s, c) for c in slot] == list(range(48 + 9 * s, 57 + 9 * s))
    assert layout.size == 48 + 9 * 6
    assert layout.columns[layout.factory(2, "factory.capacity")] == "factory[2].capacity"
    assert layout.columns[layout.slot(5, "present")] == "slot[5].present"
    assert layout.columns[17] == "condition.direction.without"
    assert layout.columns[18 + 4] == "condition.value.power"


def test_the_default_feature_size():
    """15 own + 13 condition + 5 x 5 factory + 9 x 24 slot columns (README, docs/rl.md)."""
    assert feature_size(Config()) == 269


def test_encodings_are_pinned(cfg, world):
    """``read`` undoes whatever encoding the table says, so pin the encodings themselves:
    the raw values seeded runs were recorded with."""
    table = [(ch.name, ch.encoding, ch.scale) for ch in CHANNELS]
    log, flag, hot = "log", "flag", "one_hot"
    assert table == [
        ("wealth", log, 1.0), ("skill", "scale", 1.0), ("day", "scale", "max_days"),
        ("population", "scale", "n_agents"), ("allies", "scale", "view_size"),
        ("income", log, 1.0), ("received", log, 1.0), ("given", log, 1.0),
        ("looted", log, 1.0), ("lost", log, 1.0), ("attacks", "scale", 1.0),
        ("inbox", "scale", 10.0), ("mean_wealth", log, 1.0), ("upkeep", log, 1.0),
        ("outage_prob", "scale", 1.0),
        ("condition.direction", hot, 1.0), ("condition.value", hot, 1.0),
        ("factory.known", flag, 1.0), ("factory.capacity", "scale", 10.0),
        ("factory.workers", "scale", 10.0), ("factory.output", "scale", 10.0),
        ("factory.outage", flag, 1.0),
        ("slot.present", flag, 1.0), ("slot.wealth", "relative_log", 1.0),
        ("slot.ally", flag, 1.0), ("slot.gave_me", flag, 1.0), ("slot.i_gave", flag, 1.0),
        ("slot.attacked_me", flag, 1.0), ("slot.i_attacked", flag, 1.0),
        ("slot.messaged_me", flag, 1.0), ("slot.friendly_to_me", flag, 1.0)]
    state = world(cfg, wealth=[5.0, 2.0, 8.0, 1.0], day=7, known=[[True, True, True]],
                  capacity=[12.5, 40.0, 3.0])
    layout = FeatureLayout.of(cfg)
    feats = feats_of(cfg, state)
    f32 = np.float32
    assert feats[0, layout.index("wealth")] == f32(np.log1p(5.0))
    assert feats[0, layout.index("day")] == f32(7 / 30)
    assert feats[0, layout.index("population")] == f32(1.0)
    np.testing.assert_array_equal(layout.factory_block(feats, "capacity")[0],
                                  np.float32([1.25, 4.0, 0.3]))
    # 0 sees 1, 2, 3.
    np.testing.assert_array_equal(layout.slot_block(feats, "wealth")[0],
                                  np.float32(np.log1p([2.0, 8.0, 1.0]) - np.log1p(5.0)))


def test_docstrings_list_every_channel():
    for doc in (features_module.__doc__, features_module.features.__doc__):
        for ch in CHANNELS:
            assert f"``{ch.name}``" in doc
    assert "{channels}" not in features_module.__doc__


def test_blocks_and_errors(cfg, world):
    layout = FeatureLayout.of(cfg)
    feats = feats_of(cfg, world(cfg))
    assert layout.factory_block(feats, "capacity").shape == (4, 3)
    assert layout.slot_block(feats, "slot.present").shape == (4, 3)
    np.testing.assert_array_equal(layout.factory_block(feats, "capacity")[:, 1],
                                  feats[:, layout.factory(1, "capacity")])
    # One vector reads as well as a batch.
    assert layout.read(feats[2], "wealth") == layout.read(feats, "wealth")[2]
    assert layout.read(feats[2], "slot.wealth").shape == (3,)
    with pytest.raises(KeyError, match="no feature channel 'welth'"):
        layout.read(feats, "welth")
    with pytest.raises(ValueError, match="several columns"):
        layout.index("factory.capacity")
    with pytest.raises(ValueError, match="not a slot channel"):
        layout.slot(0, "factory.capacity")
    with pytest.raises(IndexError, match="factory slot 3"):
        layout.factory(3, "capacity")


# ---- own channels ------------------------------------------------------------------------------


def read_own(cfg, state, name, view=None):
    return FeatureLayout.of(cfg).read(feats_of(cfg, state, view), name)


def test_wealth(cfg, world):
    wealth = [5.0, -2.0, 0.0, 1234.5]
    np.testing.assert_allclose(read_own(cfg, world(cfg, wealth=wealth), "wealth"), wealth,
                               rtol=RTOL)


def test_wealth_saturates_at_the_clip(cfg, world):
    got = read_own(cfg, world(cfg, wealth=[1e6, -1e6, 1.0, 1.0]), "wealth")
    np.testing.assert_allclose(got[:2], [np.expm1(FEATURE_CLIP), -np.expm1(FEATURE_CLIP)],
                               rtol=RTOL)


def test_skill(cfg, world):
    skill = [0.5, 1.25, 2.0, 0.75]
    np.testing.assert_allclose(read_own(cfg, world(cfg, skill=skill), "skill"), skill,
                               rtol=RTOL)


def test_day(cfg, world):
    np.testing.assert_array_equal(read_own(cfg, world(cfg, day=7), "day"), 7)
    assert FeatureLayout.of(cfg).scale("day") == cfg.max_days


def test_population(cfg, world):
    state = world(cfg, alive=[True, True, False, True])
    np.testing.assert_array_equal(read_own(cfg, state, "population")[[0, 1, 3]], 3)


def test_allies(cfg, world):
    state = world(cfg)
    state.allies = np.array([[0, 1], [0, 2]], np.int32)
    np.testing.assert_array_equal(read_own(cfg, state, "allies"), [2, 1, 1, 0])


@pytest.mark.parametrize("name", ["income", "received", "given", "looted", "lost"])
def test_yesterdays_report(cfg, world, name):
    values = [3.5, 0.0, 12.0, 0.25]
    state = world(cfg, **{name: values})
    np.testing.assert_allclose(read_own(cfg, state, name), values, rtol=RTOL)


def test_attacks(cfg, world):
    state = world(cfg, attacked_by=[0, 2, 5, 1])
    np.testing.assert_array_equal(read_own(cfg, state, "attacks"), [0, 2, 5, 1])


def test_inbox(cfg, world):
    state = world(cfg)
    state.inbox = [Message(0, 1, 0, "hi"), Message(0, 2, 0, "hello"),
                   Message(0, 3, -1, "to all"), Message(0, 0, 2, "you")]
    np.testing.assert_array_equal(read_own(cfg, state, "inbox"), [3, 1, 2, 1])


def test_mean_wealth(cfg, world):
    state = world(cfg, wealth=[2.0, 4.0, 100.0, 9.0], alive=[True, True, False, True])
    np.testing.assert_allclose(read_own(cfg, state, "mean_wealth"), 5.0, rtol=RTOL)


@pytest.mark.parametrize("day,upkeep", [(0, 2.0), (3, 2.0), (4, 3.0), (5, 12.0), (6, 3.0)])
def test_upkeep_is_todays(exact_cfg, world, day, upkeep):
    """Today's upkeep (the day about to be played is ``state.day + 1``): x1.5 from day 5 on,
    and x4 on the shock day 6."""
    cfg = exact_cfg(n_agents=4, n_factories=3, view_size=3, upkeep=2.0, stress_upkeep=1.5,
                    stress_day=5, shock_day=6, shock_upkeep=4.0)
    np.testing.assert_allclose(read_own(cfg, world(cfg, day=day), "upkeep"), upkeep,
                               rtol=RTOL)


@pytest.mark.parametrize("day,prob", [(0, 0.1), (3, 0.1), (4, 0.3), (9, 0.3)])
def test_outage_prob_is_todays(exact_cfg, world, day, prob):
    cfg = exact_cfg(n_agents=4, n_factories=3, view_size=3, outage_prob=0.1,
                    stress_outage=3.0, stress_day=5)
    np.testing.assert_allclose(read_own(cfg, world(cfg, day=day), "outage_prob"), prob,
                               rtol=RTOL)


# ---- the value condition ---------------------------------------------------------------------


def test_condition_direction_and_value(cfg, world):
    power = ValueCondition.parse("with:power")
    benevolence = ValueCondition.parse("without:benevolence")
    state = world(cfg, condition=[0, power.code, benevolence.code, 0])
    layout = FeatureLayout.of(cfg)
    feats = feats_of(cfg, state)
    np.testing.assert_array_equal(layout.read(feats, "condition.direction"), [0, 1, 2, 0])
    np.testing.assert_array_equal(layout.read(feats, "condition.value"),
                                  [-1, int(power.value), int(benevolence.value), -1])
    np.testing.assert_array_equal(layout.block(feats, "condition.direction").sum(1), 1)
    np.testing.assert_array_equal(layout.block(feats, "condition.value").sum(1), [0, 1, 1, 0])


# ---- factories ---------------------------------------------------------------------------------

KNOWN = [[True, False, True], [False, False, False], [True, True, True], [False, True, False]]


@pytest.mark.parametrize("name,values", [
    ("capacity", [12.5, 40.0, 3.0]),
    ("workers", [3, 0, 11]),
    ("output", [7.5, 0.0, 22.0]),
])
def test_factory_reports_of_known_factories(cfg, world, name, values):
    state = world(cfg, known=KNOWN, **{name: values})
    got = FeatureLayout.of(cfg).read(feats_of(cfg, state), f"factory.{name}")
    np.testing.assert_allclose(got, np.where(KNOWN, values, 0.0), rtol=RTOL)
    if name == "workers":
        np.testing.assert_array_equal(got, np.where(KNOWN, values, 0))


def test_factory_known(cfg, world):
    state = world(cfg, known=KNOWN)
    got = FeatureLayout.of(cfg).read(feats_of(cfg, state), "factory.known")
    assert got.dtype == bool
    np.testing.assert_array_equal(got, KNOWN)


def test_factory_outage(cfg, world):
    state = world(cfg, known=KNOWN, outage=[False, True, True])
    got = FeatureLayout.of(cfg).read(feats_of(cfg, state), "factory.outage")
    np.testing.assert_array_equal(got, np.array(KNOWN) & [False, True, True])


# ---- view slots --------------------------------------------------------------------------------


def test_slot_present(cfg, world):
    state = world(cfg)
    view = view_of(cfg, state, {0: [2, -1, 3], 3: [-1, -1, -1]})
    got = FeatureLayout.of(cfg).read(feats_of(cfg, state, view), "slot.present")
    np.testing.assert_array_equal(got, [[1, 0, 1], [1, 1, 1], [1, 1, 1], [0, 0, 0]])


def test_slot_wealth(cfg, world):
    wealth = np.array([5.0, 0.5, 40.0, 3.0])
    state = world(cfg, wealth=wealth)
    view = view_of(cfg, state, {0: [2, -1, 3]})
    layout = FeatureLayout.of(cfg)
    feats = feats_of(cfg, state, view)
    got = layout.read(feats, "slot.wealth")
    present = layout.read(feats, "slot.present")
    expected = wealth[np.where(view[:4] >= 0, view[:4], 0)]
    np.testing.assert_allclose(got[present], expected[present], rtol=1e-5)
    # Empty slots read 0, whatever the resident's wealth.
    assert layout.slot_block(feats, "wealth")[0, 1] == 0
    assert (layout.slot_block(feats, "wealth")[0] > 0).tolist() == [True, False, False]


def test_slot_ally(cfg, world):
    state = world(cfg)
    state.allies = np.array([[0, 2]], np.int32)
    got = FeatureLayout.of(cfg).read(feats_of(cfg, state), "slot.ally")
    # 0 sees 1, 2, 3; 2 sees 0, 1, 3.
    np.testing.assert_array_equal(got, [[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]])


def with_dealings(state, dealings: list[tuple[int, int, int, Deal]],
                  friendly: list[bool] | None = None):
    """Set ``state``'s recent dealings: (day, src, dst, kind), and which are friendly
    messages (none unless given)."""
    day, src, dst, kind = (np.array(x) for x in zip(*dealings, strict=True))
    state.recent_day, state.recent_src = day.astype(np.int32), src.astype(np.int32)
    state.recent_dst, state.recent_kind = dst.astype(np.int32), kind.astype(np.int8)
    state.recent_friendly = np.zeros(len(day), bool) if friendly is None else np.array(friendly)
    return state


@pytest.mark.parametrize("kind,to_me,by_me", [
    (Deal.GIFT, "slot.gave_me", "slot.i_gave"),
    (Deal.ATTACK, "slot.attacked_me", "slot.i_attacked"),
    (Deal.MESSAGE, "slot.messaged_me", None),
])
def test_slot_dealings(cfg, world, kind, to_me, by_me):
    """1 dealt with 0 today, 3 with 0 at the edge of the window, 2 with 0 before it."""
    day = 6
    state = with_dealings(world(cfg, day=day), [
        (day, 1, 0, kind), (day - cfg.recent_days + 1, 3, 0, kind),
        (day - cfg.recent_days, 2, 0, kind)])
    layout = FeatureLayout.of(cfg)
    feats = feats_of(cfg, state)  # 0 sees 1, 2, 3; 1, 2 and 3 see 0 in slot 0
    dealt = np.zeros((4, 3), bool)
    dealt[0] = [True, False, True]
    np.testing.assert_array_equal(layout.read(feats, to_me), dealt)
    if by_me is not None:
        mine = np.zeros((4, 3), bool)
        mine[[1, 3], 0] = True
        np.testing.assert_array_equal(layout.read(feats, by_me), mine)
    # Nothing else is marked.
    others = [n for n in ("slot.ally", "slot.gave_me", "slot.i_gave", "slot.attacked_me",
                          "slot.i_attacked", "slot.messaged_me", "slot.friendly_to_me")
              if n not in (to_me, by_me)]
    for name in others:
        assert not layout.read(feats, name).any(), name


def test_slot_friendly_to_me(cfg, world):
    """Friendly direct messages to 0: from 1 today and 3 at the edge of the window, set the
    flag; from 2 before the window, and 1's unfriendly message to 2, do not. Every message
    sets ``messaged_me``."""
    day = 6
    state = with_dealings(world(cfg, day=day), [
        (day, 1, 0, Deal.MESSAGE), (day - cfg.recent_days + 1, 3, 0, Deal.MESSAGE),
        (day - cfg.recent_days, 2, 0, Deal.MESSAGE), (day, 1, 2, Deal.MESSAGE)],
        friendly=[True, True, True, False])
    layout = FeatureLayout.of(cfg)
    feats = feats_of(cfg, state)  # 0 sees 1, 2, 3; 2 sees 0, 1, 3
    friendly = np.zeros((4, 3), bool)
    friendly[0] = [True, False, True]
    np.testing.assert_array_equal(layout.read(feats, "slot.friendly_to_me"), friendly)
    messaged = friendly.copy()
    messaged[2, 1] = True
    np.testing.assert_array_equal(layout.read(feats, "slot.messaged_me"), messaged)


def test_merge_proposals_and_broadcasts_are_not_shown(cfg, world):
    # A broadcast does not set the friendly flag even when marked friendly (the world never
    # marks one: send_messages classifies direct messages only).
    state = with_dealings(world(cfg, day=2), [(2, 1, 0, Deal.MERGE), (2, 2, -1, Deal.MESSAGE)],
                          friendly=[False, True])
    layout = FeatureLayout.of(cfg)
    feats = feats_of(cfg, state)
    for ch in CHANNELS:
        if ch.group == "slot" and ch.name not in ("slot.present", "slot.wealth"):
            assert not layout.read(feats, ch.name).any(), ch.name


def test_a_resident_not_in_view_is_not_marked(cfg, world):
    state = with_dealings(world(cfg, day=2), [(2, 1, 0, Deal.GIFT)])
    state.allies = np.array([[0, 1]], np.int32)
    view = view_of(cfg, state, {0: [2, 3, -1]})
    layout = FeatureLayout.of(cfg)
    feats = feats_of(cfg, state, view)
    assert not layout.read(feats, "slot.gave_me")[0].any()
    assert not layout.read(feats, "slot.ally")[0].any()


# ---- Catalogue.encode -----------------------------------------------------------------------

CATALOGUE_CONFIGS = [Config(), Config(n_factories=2, view_size=3, gift_levels=(0.5,)),
                     Config(n_factories=7, view_size=40)]


@pytest.mark.parametrize("config", CATALOGUE_CONFIGS)
def test_encode_round_trips_decode_over_all_ids(config):
    cat = Catalogue(config)
    ids = np.arange(cat.size)
    d = cat.decode(ids)
    again = cat.encode(**d)
    assert isinstance(again, np.ndarray) and again.dtype == np.int64
    np.testing.assert_array_equal(again, ids)
    np.testing.assert_array_equal(cat.encode(d["primary"], d["factory"], d["secondary"],
                                             d["slot"], d["level"]), ids)
    # Scalar calls give the same ids, as Python ints.
    scalars = [cat.encode(*(int(d[f][k]) for f in ("primary", "factory", "secondary", "slot",
                                                   "level"))) for k in range(cat.size)]
    assert scalars == ids.tolist()
    assert all(type(x) is int for x in scalars)
    # Shuffled ids round-trip too, in their order.
    perm = np.random.default_rng(0).permutation(cat.size)
    np.testing.assert_array_equal(cat.encode(**cat.decode(perm)), perm)


def test_encode_broadcasts_scalars_against_arrays():
    cat = Catalogue(Config())
    slots = np.arange(cat.view_size)
    got = cat.encode(Primary.IDLE, -1, Secondary.ATTACK, slots)
    assert got.shape == (cat.view_size,)
    assert got.tolist() == [cat.encode(Primary.IDLE, -1, Secondary.ATTACK, int(s))
                            for s in slots]
    assert type(cat.encode(np.int64(Primary.WORK), np.int16(1))) is int
    assert cat.encode([], [], [], [], []).shape == (0,)


@pytest.mark.parametrize("args,match", [
    (([Primary.WORK, Primary.WORK], [0, 5]), "factory slot 5 out of range"),
    (([Primary.UPGRADE_FACTORY], [-1]), "factory slot -1 out of range"),
    ((Primary.IDLE, -1, [Secondary.NONE, Secondary.ATTACK], [-1, 24]), "view slot 24"),
    ((Primary.IDLE, -1, [Secondary.MERGE], [-3]), "view slot -3"),
    ((Primary.IDLE, -1, Secondary.GIFT, [0, 1], [0, 3]), "gift level 3"),
    (([0, 9], [0, 0]), "9 is not a valid Primary"),
    ((Primary.IDLE, -1, [7]), "7 is not a valid Secondary"),
])
def test_encode_names_the_bad_value(args, match):
    cat = Catalogue(Config())
    with pytest.raises(ValueError, match=match):
        cat.encode(*args)
    # The same choice as scalars fails the same way.
    scalar = tuple(a[-1] if isinstance(a, list) else a for a in args)
    with pytest.raises(ValueError, match=match):
        cat.encode(*(int(a) for a in scalar))


# ---- cheap talk as the listener sees it ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["friendly", "threat", "warning", "proposes_alliance"])
def test_a_factored_message_sets_the_listeners_flags_the_next_day(kind):
    """An RL-style resident A sends cheap talk ``kind`` to B (factored row, a view slot):
    the next day B's features mark A's slot ``messaged_me``, and ``friendly_to_me`` exactly
    when the detectors' classifier reads the kind as friendly (threats and warnings not).
    The same message to everyone sets neither."""
    from civa_env import world as world_api
    from civa_env.world import factored

    config = Config(n_agents=6, n_factories=3, view_size=5, obs_mode="numeric")
    idle = factored.from_flat(np.array([(2 * config.n_factories + 2) * 4]), config)[0]
    for to_everyone in (False, True):
        w = world_api.reset(config, 0)
        acts = np.tile(idle, (w.state.n_pool, 1))
        a = int(w.living[0])
        b = int(w.view[a, 0])
        acts[a, 4] = 1 + factored.MESSAGE_KINDS.index(kind)
        acts[a, 5] = config.view_size if to_everyone else 0
        w, _ = world_api.step_factored(w, acts)
        layout = FeatureLayout.of(config)
        feats = w.observe(np.array([b])).features[0]
        slot_of_a = (w.view[b] == a).nonzero()[0]
        assert len(slot_of_a) == 1  # A dealt with B, so B sees A
        messaged = layout.read(feats, "slot.messaged_me")
        friendly = layout.read(feats, "slot.friendly_to_me")
        want = not to_everyone and kind in factored.FRIENDLY_KINDS
        assert friendly.tolist() == [s == slot_of_a[0] and want for s in range(5)]
        assert messaged.tolist() == [s == slot_of_a[0] and not to_everyone for s in range(5)]


def test_the_friendly_column_follows_the_dealings_it_marks():
    """Over an episode of random factored rows, ``recent_friendly`` stays one entry per
    dealing and marks exactly the direct messages whose text the classifier calls friendly."""
    from civa_env import world as world_api
    from civa_env.world import factored
    from civa_env.world.behaviours import KeywordIntentClassifier

    config = Config(n_agents=10, n_factories=3, view_size=4, max_days=12, obs_mode="numeric")
    rng = np.random.default_rng(3)
    nvec = factored.FactoredSpec.of(config).nvec
    w = world_api.reset(config, 1)
    clf = KeywordIntentClassifier()
    marked = 0
    while not w.done:
        acts = rng.integers(0, nvec, size=(w.state.n_pool, len(nvec)))
        w, _ = world_api.step_factored(w, acts)
        s = w.state
        assert len(s.recent_friendly) == len(s.recent_kind)
        sent = [m for m in s.inbox if m.day == s.day]
        today = (s.recent_day == s.day) & (s.recent_kind == Deal.MESSAGE)
        want = [m.recipient >= 0 and bool(clf.friendly([m.text])[0]) for m in sent]
        assert s.recent_friendly[today].tolist() == want
        assert not s.recent_friendly[s.recent_kind != Deal.MESSAGE].any()
        marked += sum(want)
    assert marked > 0
