"""Worlds that scale: factories in proportion to the founders, bounded factory slots."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import civa_env
from civa_env import world
from civa_env.policies.base import make_policy
from civa_env.policies.batch import Batch
from civa_env.world import factored, slots
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config, default_factories
from civa_env.world.features import FeatureLayout, feature_size
from civa_env.world.kinds import K, Primary, Secondary
from civa_env.world.state import initial_state

# A small world with more factories than slots: the slots rank each resident's known ones.
RANKED = {"n_agents": 12, "n_factories": 15, "factory_slots": 4, "known_at_start": 3,
          "max_days": 12}


def brute_slots(state, cfg, i: int) -> list[int]:
    """Resident i's known factories, largest capacity first (ties: lower number), padded."""
    known = np.flatnonzero(state.known[i]).tolist()
    ranked = sorted(known, key=lambda m: (-state.capacity[m], m))[:cfg.factory_slot_count]
    return ranked + [-1] * (cfg.factory_slot_count - len(ranked))


# ---- config ------------------------------------------------------------------------------

@pytest.mark.parametrize("n, expected", [(1, 5), (25, 5), (27, 5), (28, 6), (100, 20),
                                         (1000, 200), (10_000, 2000)])
def test_factories_grow_with_the_founders(n, expected):
    cfg = Config(n_agents=n)
    assert cfg.n_factories == default_factories(n) == expected
    assert cfg.factory_slot_count == min(expected, 8)
    assert cfg.ranks_factories == (expected > 8)


def test_derived_and_explicit_factory_counts():
    assert Config(n_agents=25, residents_per_factory=2.0).n_factories == 12
    assert Config(n_agents=1000, n_factories=5).n_factories == 5
    # A derived count follows a new n_agents; an explicit one stays.
    assert Config().replace(n_agents=1000).n_factories == 200
    assert Config(n_agents=100, n_factories=7).replace(n_agents=200).n_factories == 7
    assert Config(n_agents=100).replace(residents_per_factory=10.0).n_factories == 10
    # A saved config (n_factories written out) reloads as it was.
    cfg = Config(n_agents=1000)
    assert Config.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("field, value, words", [
    ("n_factories", 0, "n_factories must be an int >= 1"),
    ("factory_slots", 0, "factory_slots must be an int >= 1"),
    ("residents_per_factory", 0.0, "residents_per_factory must be > 0"),
    ("residents_per_factory", -5.0, "residents_per_factory must be > 0"),
])
def test_bad_factory_settings_are_named(field, value, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        Config(**{field: value})


def test_observation_and_action_sizes_stay_bounded():
    """From 100 founders up, the features, the catalogue and the factored action have the
    same sizes whatever the number of factories; the default world keeps its sizes."""
    sizes = set()
    for n in (100, 1000, 10_000, 100_000):
        cfg = Config(n_agents=n)
        sizes.add((feature_size(cfg), Catalogue(cfg).size,
                   tuple(factored.FactoredSpec.of(cfg).nvec.tolist())))
    assert len(sizes) == 1
    default = Config()
    assert (feature_size(default), Catalogue(default).size) == (269, 1573)


# ---- the slot table ----------------------------------------------------------------------

def test_identity_slots_while_factories_fit():
    cfg = Config()
    state = initial_state(cfg, np.random.default_rng(0), np.random.default_rng(1))
    assert state.factory_slots.shape == (cfg.max_agents, 5)
    assert (state.factory_slots == np.arange(5)).all()


def test_ranked_slots_hold_the_largest_known_factories_day_after_day():
    """The table in the state is the brute-force ranking of every living resident's known
    factories, at reset and after days of exploring, alliances and births."""
    cfg = Config(**RANKED, birth_threshold=12.0, upkeep=0.2, upgrade_cost=0.5)
    w = world.reset(cfg, 5)
    rng = np.random.default_rng(2)
    spec = factored.FactoredSpec.of(cfg)
    grew = over = 0
    for _ in range(10):
        for i in w.living.tolist():
            assert w.state.factory_slots[i].tolist() == brute_slots(w.state, cfg, i), i
        known_before = w.state.known.sum()
        over = max(over, int(w.state.known[w.living].sum(1).max()))
        acts = np.zeros((w.state.n_pool, factored.N_COMPONENTS), np.int64)
        acts[:, 0] = spec.n_primary - 3  # explore (reveals factories)
        acts[1::4, 0] = spec.n_primary - 2  # upgrade factory slot 0 (moves it up the ranks)
        acts[::3, 1] = Secondary.MERGE  # a few alliances share what they know
        acts[::3, 2] = rng.integers(0, 3, len(acts[::3]))
        w, _ = world.step_factored(w, acts)
        grew += int(w.state.known.sum() > known_before)
        if w.done:
            break
    assert grew >= 3
    assert over > cfg.factory_slot_count


def test_ranked_slots_in_a_batch_use_each_communitys_numbers():
    from civa_env.world.batch import Communities

    cfg = Config(**RANKED)
    batch = Communities.reset(cfg, seeds=[3, 4, 5])
    for e in range(3):
        alone = world.reset(cfg, 3 + e)
        n = cfg.max_agents
        np.testing.assert_array_equal(batch.state.factory_slots[e * n:(e + 1) * n],
                                      alone.state.factory_slots)
    table = slots.ranked(batch.state.known, batch.state.capacity, 3, cfg.factory_slot_count)
    alive = batch.state.alive
    np.testing.assert_array_equal(table[alive], batch.state.factory_slots[alive])


# ---- observation and action agree on the slots -----------------------------------------

def test_features_masks_and_actions_name_the_factory_in_the_slot():
    """Slot k's feature block describes factory factory_slots[i, k]; working at slot k (flat
    id, factored row) is working there; an empty slot is masked, and acting on it is
    flagged and idles."""
    cfg = Config(**RANKED)
    w = world.reset(cfg, 9)
    s = w.state
    rows = w.living
    seen = w.observe(rows)
    layout = FeatureLayout.of(cfg)
    table = s.factory_slots[rows]
    cap = layout.read(seen.features, "factory.capacity")
    known = layout.read(seen.features, "factory.known")
    np.testing.assert_array_equal(known, table >= 0)
    np.testing.assert_allclose(np.where(table >= 0, cap, 0),
                               np.where(table >= 0, s.capacity[np.maximum(table, 0)], 0),
                               atol=1e-5)
    cat = w.catalogue
    work_mask = seen.masks.reshape(len(rows), cat.n_primary, cat.n_secondary)[:, :4, 0]
    np.testing.assert_array_equal(work_mask.astype(bool), table >= 0)
    fmask = factored.masks(s, w.view, rows, cfg, cat)[:, :4].astype(bool)
    np.testing.assert_array_equal(fmask, table >= 0)
    # Each resident works at its last filled slot, by flat id for half and factored rows
    # for the others; resident 0 also asks for an empty slot (made empty here).
    last = (table >= 0).sum(1) - 1
    s.factory_slots[rows[0], 1:] = -1
    last[0] = 3
    acts: dict = {}
    for r, i in enumerate(rows.tolist()):
        flat = cat.encode(Primary.WORK, int(last[r]))
        acts[f"resident_{i}"] = flat if r % 2 else factored.from_flat(np.array([flat]), cfg)[0]
    w2, day = world.step(w, acts)
    chunk = w2.log.day_columns()[-1][1]
    worked = {int(a): int(f) for a, f, k in zip(chunk["actor"], chunk["factory"],
                                                 chunk["kind"], strict=True) if k == K.WORK}
    for r, i in enumerate(rows.tolist()[1:], 1):
        assert worked[i] == table[r, last[r]]
    assert rows[0] not in worked
    assert any("factory slot is empty" in x for x in day.invalid[int(rows[0])])


def test_a_briefing_lists_the_slots_and_says_how_many_are_known():
    cfg = Config(**RANKED, obs_mode="text")
    w = world.reset(cfg, 1)
    i = int(w.living[0])
    w.state.known[i] = True  # knows every factory: the briefing lists the 4 largest
    w.state.factory_slots[i] = brute_slots(w.state, cfg, i)
    for briefing in ("v1", "v2"):
        w.cfg = cfg.replace(briefing=briefing)
        text = w.observe(np.array([i])).texts[0]
        assert f"the 4 largest of the {cfg.n_factories} you know" in text
        listed = [int(x) for x in re.findall(r"- factory (\d+):", text)]
        assert sorted(listed) == sorted(brute_slots(w.state, cfg, i))
    facts = w.observe(np.array([i])).legal[0]
    assert facts["factories"] == brute_slots(w.state, cfg, i)
    assert facts["factory_slots"] == brute_slots(w.state, cfg, i)


# ---- residents in large worlds -------------------------------------------------------------

def test_scripted_residents_act_validly_where_slots_rank_factories():
    """The scripted policy names factories through the slots (its structured actions and
    its tips name the real factory): no action is flagged, and every tip names a factory
    the sender knows."""
    cfg = Config(**RANKED, obs_mode="numeric")
    policy = make_policy("scripted", seed=0)
    policy.reset(cfg, 0)
    w = world.reset(cfg, 4)
    tips = 0
    while not w.done:
        rows = w.living
        seen = w.observe(rows)
        keys = [f"resident_{i}" for i in rows.tolist()]
        acts = policy.act(Batch.from_seen(seen, keys))
        known = w.state.known.copy()
        w, day = world.step(w, acts)
        assert not day.invalid
        for msg in w.state.inbox:
            m = re.match(r"Factory (\d+) looks worth", msg.text)
            if m:
                tips += 1
                assert known[msg.sender, int(m.group(1))]
    assert tips > 0


def test_without_the_slot_table_the_scripted_policy_says_what_it_needs():
    cfg = Config(**RANKED, obs_mode="numeric")
    policy = make_policy("scripted", seed=0)
    policy.reset(cfg, 0)
    w = world.reset(cfg, 4)
    seen = w.observe(w.living)
    batch = Batch(keys=list(range(len(seen.rows))), features=seen.features,
                  masks=seen.masks.view(bool), day=np.ones(len(seen.rows), np.int64))
    with pytest.raises(ValueError, match="factory slots"):
        policy.act(batch)


def test_a_thousand_residents_stay_a_large_community():
    """With factories in proportion to the founders, 1,000 scripted residents are still
    about 1,000 after 30 days (with the old fixed 5 factories they fell to a few dozen)."""
    env = civa_env.parallel_env(n_agents=1000, obs_mode="numeric")
    policy = make_policy("scripted", seed=0)
    obs, infos = env.reset(seed=0)
    policy.reset(env.cfg, 0)
    while env.agents:
        acts = policy.act(Batch.from_observations(obs, infos))
        obs, _, _, _, infos = env.step(acts)
    assert env.world.state.day == 30
    assert np.count_nonzero(env.world.state.alive) > 800


def test_checkpoints_check_the_factory_slots_not_the_factory_count():
    """A checkpoint recorded before factory slots (the committed ones) loads where slot m is
    factory m; a larger community that grew its factories is refused with the setting that
    keeps them; two ranked worlds of different factory counts agree."""
    import json
    from pathlib import Path

    from civa_env.policies.sb3 import CheckpointMismatch, check_shape
    from civa_env.world.day import shape_signature

    meta = json.loads((Path(__file__).parents[2] / "baselines/results/rl/community/"
                       "model.civa.json").read_text())
    assert "factory_slot_count" not in meta["shape"]
    check_shape(meta, Config())
    check_shape(meta, Config(n_agents=100, n_factories=5))
    with pytest.raises(CheckpointMismatch, match=r"--set n_factories=5"):
        check_shape(meta, Config(n_agents=100))
    ranked = {"shape": shape_signature(Config(n_agents=100))}
    check_shape(ranked, Config(n_agents=10_000))
    with pytest.raises(CheckpointMismatch, match="factory_slot_count"):
        check_shape(ranked, Config())


def test_configs_written_before_factory_slots_play_as_then():
    """A config.json without factory_slots (written before them) keeps one slot per factory,
    however many; numpy ints are taken as ints."""
    old = {k: v for k, v in Config(n_agents=60, n_factories=12).to_dict().items()
           if k not in ("factory_slots", "residents_per_factory")}
    cfg = Config.from_dict(old)
    assert (cfg.factory_slots, cfg.factory_slot_count, cfg.ranks_factories) == (12, 12, False)
    assert Config.from_dict({**old, "factory_slots": 8}).ranks_factories
    cfg = Config(n_factories=np.int64(10), factory_slots=np.int64(4))
    assert (type(cfg.n_factories), type(cfg.factory_slots)) == (int, int)
    assert Config.from_dict(json.loads(cfg.to_json())) == cfg


def test_an_old_checkpoint_with_more_factories_than_slots_names_the_fix():
    from civa_env.policies.sb3 import CheckpointMismatch, check_shape
    from civa_env.world.day import shape_signature

    shape = shape_signature(Config(n_agents=60, n_factories=10, factory_slots=10))
    meta = {"shape": {k: v for k, v in shape.items()
                      if k not in ("factory_slots", "factory_slot_count", "ranks_factories")}}
    check_shape(meta, Config(n_agents=60, n_factories=10, factory_slots=10), strict=True)
    with pytest.raises(CheckpointMismatch, match=r"--set factory_slots=10"):
        check_shape(meta, Config(n_agents=60, n_factories=10))


def test_a_structured_action_names_any_known_factory_however_many():
    """Factory numbers beyond int16 (a world of 40,000 factories): a structured action at a
    known factory works there; an unknown number is flagged."""
    cfg = Config(n_agents=4, n_factories=40_000, max_days=3)
    w = world.reset(cfg, 0)
    w.state.known[0, 39_000] = True
    w2, day = world.step(w, {"resident_0": {"primary": "work", "factory": 39_000},
                             "resident_1": {"primary": "work", "factory": 40_000}})
    chunk = w2.log.day_columns()[-1][1]
    work = chunk["kind"] == K.WORK
    assert chunk["factory"][work & (chunk["actor"] == 0)].tolist() == [39_000]
    assert any("factory" in x for x in day.invalid[1])
