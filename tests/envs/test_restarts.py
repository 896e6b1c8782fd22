"""Fresh communities drawn together (``day.first_days``, ``state.initial_states``,
``Communities.replace``) are, bit for bit, the worlds ``world.reset`` draws alone."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import sample_factored

import civa_env
from civa_env import world
from civa_env.world import seeding
from civa_env.world import state as state_mod
from civa_env.world.batch import Communities, community
from civa_env.world.config import Config
from civa_env.world.day import STREAMS, first_day, first_days, seed_streams
from civa_env.world.state import _ARRAY_FIELDS, initial_state, initial_states, seeded_states

IDENTITY = {"n_agents": 9, "max_days": 10}
RANKED = {"n_agents": 9, "max_days": 10, "n_factories": 12, "factory_slots": 4,
          "known_at_start": 3}
WORLDS = [IDENTITY, RANKED, {**IDENTITY, "known_at_start": 0},
          {**RANKED, "known_at_start": 12, "view_size": 3},
          {**IDENTITY, "condition": "with:benevolence", "prevalence": 0.4}]


def assert_same(lone, batch_state, e: int) -> None:
    mine = community(batch_state, e)
    for name in _ARRAY_FIELDS:
        a, b = getattr(mine, name), getattr(lone, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert (mine.day, mine.n_used) == (lone.day, lone.n_used)


def assert_same_stream(a: np.random.Generator, b: np.random.Generator) -> None:
    assert a.bit_generator.state == b.bit_generator.state
    assert a.bit_generator.seed_seq.spawn_key == b.bit_generator.seed_seq.spawn_key


@pytest.mark.parametrize("kw", WORLDS)
@pytest.mark.parametrize("seeds", [[3], [0, 1], [5, 17, 2**40 + 9, 123456789, 2**63 - 1]])
def test_first_days_are_each_seeds_first_day(kw, seeds):
    cfg = Config(**kw)
    state, view, gens = first_days(cfg, seeds)
    assert state.communities == len(seeds)
    n = cfg.max_agents
    for e, seed in enumerate(seeds):
        lone, lone_view, lone_gen = first_day(cfg, seed)
        assert_same(lone, state, e)
        mine = view[e * n:(e + 1) * n]
        np.testing.assert_array_equal(np.where(mine >= 0, mine - e * n, -1), lone_view)
        assert_same_stream(gens[e], lone_gen)
        w = world.reset(cfg, seed)
        assert_same_stream(gens[e], w.dynamics)


def test_the_streams_are_the_children_of_seed_streams():
    for seed in (0, 9, 2**62 + 1):
        cfg = Config(**IDENTITY)
        _, _, (gen,) = first_days(cfg, [seed])
        want = np.random.default_rng(seed_streams(seed)["dynamics"])
        want.random(cfg.max_agents)  # the first view's draw
        assert gen.bit_generator.state == want.bit_generator.state
        assert list(seed_streams(seed)) == list(STREAMS)


@pytest.mark.parametrize("kw", WORLDS + [
    {"n_agents": 300, "max_days": 5, "n_factories": 40, "known_at_start": 39},
    {"n_agents": 60, "max_days": 5, "n_factories": 40, "known_at_start": 3},
    {"n_agents": 60, "max_days": 5, "n_factories": 9, "known_at_start": 1},
    {"n_agents": 1000, "max_days": 3},  # (200 factories, 2 known: the few-of-many path)
    {**IDENTITY, "condition": "without:power", "prevalence": 1.0},
    {**IDENTITY, "n_agents": 2, "condition": "with:tradition", "prevalence": 0.5}])
@pytest.mark.parametrize("seeds", [[11], [0, 7, 2**40 + 3, 2**63 - 1]])
def test_seeded_states_are_initial_states_of_numpys_generators(kw, seeds):
    """Fresh worlds drawn in the compiled pass from their streams' seed words are the ones
    ``initial_states`` draws from numpy's PCG64 generators of those streams (300 founders:
    the founders' shuffle under every bit mask up to 9 bits; the smallest keys picked by
    sorting and, a few of many, as the keys pass)."""
    cfg = Config(**kw)
    w, v = STREAMS.index("world"), STREAMS.index("values")
    words = seeding.seed_words(seeds, (w, v))
    got = seeded_states(cfg, np.stack([words[0], words[1]], axis=1))

    def rngs(key):
        return [np.random.default_rng(np.random.SeedSequence(s, spawn_key=(key,)))
                for s in seeds]

    want = initial_states(cfg, rngs(w), rngs(v))
    assert got.communities == want.communities == len(seeds)
    for name in _ARRAY_FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(got.day, want.day)
    np.testing.assert_array_equal(got.n_used, want.n_used)
    if kw.get("prevalence"):
        assert (got.condition != 0).any()


@pytest.mark.parametrize("kw", [IDENTITY, RANKED])
def test_initial_states_draw_each_world_as_alone(kw, monkeypatch):
    """Key blocks that span two worlds (a small block size) draw each world's rows from its
    own stream; one generator for both purposes draws as initial_state does."""
    cfg = Config(**kw)
    pairs = [(np.random.default_rng([s, 0]), np.random.default_rng([s, 1])) for s in range(4)]
    alone = [initial_state(cfg, np.random.default_rng([s, 0]), np.random.default_rng([s, 1]))
             for s in range(4)]
    monkeypatch.setattr(state_mod, "_KEY_CELLS", 7 * cfg.n_factories)  # 7 rows a block
    batch = initial_states(cfg, [p[0] for p in pairs], [p[1] for p in pairs])
    for e in range(4):
        assert_same(alone[e], batch, e)
        # the generators stand where the lone draws left them
        again = np.random.default_rng([e, 0])
        initial_state(cfg, again, np.random.default_rng([e, 1]))
        assert pairs[e][0].bit_generator.state == again.bit_generator.state
    one = np.random.default_rng(4)
    shared = initial_state(cfg, one, one)
    other = np.random.default_rng(4)
    assert_same(shared, initial_states(cfg, [other], [other]), 0)


@pytest.mark.parametrize("kw", [IDENTITY, RANKED])
@pytest.mark.parametrize("which", [[1, 2, 3], [0, 4, 2], [5]])
@pytest.mark.parametrize("in_place", [False, True])
def test_replace_writes_lone_resets(kw, which, in_place):
    """Communities restarted together (a block, scattered, one) hold the lone resets of
    their seeds; the others are untouched and keep their streams."""
    venv = civa_env.vector_env(num_envs=6, **kw)
    obs, _ = venv.reset(seed=10)
    cfg, batch = venv.cfg, venv.batch
    rng = np.random.default_rng(0)
    for _ in range(3):  # some days, so that there are alliances and dealings to drop
        obs, *_ = venv.step(sample_factored(obs, venv.spec, rng, talk=False))
    before = batch.state.copy()
    kept_view = batch.view.copy()
    kept = {e: batch.streams.gens[e].bit_generator.state for e in range(6)}
    batch.replace(which, [100 + e for e in which], in_place=in_place)
    n = cfg.max_agents
    for e in range(6):
        rows = slice(e * n, (e + 1) * n)
        if e in which:
            w = world.reset(cfg, 100 + e)
            assert_same(w.state, batch.state, e)
            np.testing.assert_array_equal(batch.view[rows],
                                          np.where(w.view >= 0, w.view + e * n, -1))
            assert_same_stream(batch.streams.gens[e], w.dynamics)
            assert batch.seeds[e] == 100 + e
        else:
            assert_same(community(before, e), batch.state, e)
            np.testing.assert_array_equal(batch.view[rows], kept_view[rows])
            assert batch.streams.gens[e].bit_generator.state == kept[e]
    # the batch draws from each restarted community's fresh stream
    day = batch.streams.random(6 * 5)
    for e in which:
        np.testing.assert_array_equal(day[e * 5:(e + 1) * 5],
                                      world.reset(cfg, 100 + e).dynamics.random(5))


@pytest.mark.parametrize("kw", [IDENTITY, RANKED])
@pytest.mark.parametrize("grouped", [False, True])
def test_a_reset_is_each_seeds_world(kw, grouped, monkeypatch):
    """A reset drawn at once, or written in several groups (a small group size: a large
    batch), gives each community its lone world."""
    from civa_env.world import batch as batch_mod

    cfg = Config(**kw)
    if grouped:  # two worlds a group
        monkeypatch.setattr(batch_mod, "_FRESH_ROWS", 2 * cfg.max_agents)
    seeds = [7, 3, 99, 4, 12]
    batch = Communities.reset(cfg, seeds)
    n = cfg.max_agents
    for e, seed in enumerate(seeds):
        w = world.reset(cfg, seed)
        assert_same(w.state, batch.state, e)
        np.testing.assert_array_equal(batch.view[e * n:(e + 1) * n],
                                      np.where(w.view >= 0, w.view + e * n, -1))
        assert_same_stream(batch.streams.gens[e], w.dynamics)


@pytest.mark.parametrize("kw", WORLDS + [{**IDENTITY, "n_agents": 1},
                                         {**IDENTITY, "n_agents": 2, "view_size": 5},
                                         {"n_agents": 40, "max_days": 3, "view_size": 6}])
@pytest.mark.parametrize("g", [1, 3])
def test_founders_view_is_the_view_of_fresh_worlds(kw, g):
    """``perception.founders_view`` (a restart's view, drawn without a state) is
    ``compute_view`` of the fresh worlds' state, from the same streams, left where it
    leaves them."""
    from civa_env.world.batch import StreamBatch
    from civa_env.world.perception import compute_view, founders_view

    cfg = Config(**kw)
    seeds = [4, 50, 2**40 + 1][:g]
    words = seeding.seed_words(seeds, (0, 1, 2))
    state = seeded_states(cfg, np.stack([words[0], words[1]], axis=1))

    def streams():
        gens = seeding.generators_of(seeds, 2, words[2])
        return gens, (gens[0] if g == 1 else StreamBatch(gens))

    gens_a, rng_a = streams()
    gens_b, rng_b = streams()
    want = compute_view(state, cfg, rng_a)
    got = founders_view(cfg, g, rng_b)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert (want >= 0).any() == (cfg.n_agents > 1)
    for a, b in zip(gens_a, gens_b, strict=True):
        assert a.bit_generator.state == b.bit_generator.state
