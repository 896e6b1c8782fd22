"""The vector API: communities as one batch of resident slots, factored actions, autoreset."""

from __future__ import annotations

import io
import platform
import sys

import numpy as np
import pytest
from conftest import sample_factored

import civa_env
from civa_env import world
from civa_env.world.batch import community
from civa_env.world.config import Config
from civa_env.world.day import derived_seed
from civa_env.world.state import _ARRAY_FIELDS

KW = {"n_agents": 10, "max_days": 15}
# More factories than factory slots: each resident's slots rank the factories it knows.
RANKED = {"n_factories": 12, "factory_slots": 4, "known_at_start": 3}


def log_text(log) -> str:
    out = io.StringIO()
    for d in range(log.n_days):
        log.write_day(out, d)
    return out.getvalue()


def test_spaces_and_observations():
    venv = civa_env.vector_env(num_envs=3, **KW)
    obs, infos = venv.reset(seed=4)
    n = Config(**KW).max_agents
    assert venv.num_slots == 3 * n
    # the batched spaces (bounds per slot) are built on first use, not carried from the start
    assert "observation_space" not in vars(venv) and "action_space" not in vars(venv)
    assert venv.observation_space["features"].shape == (3 * n, obs["features"].shape[1])
    assert venv.action_space.shape == (3 * n, len(venv.spec.nvec))
    assert venv.observation_space.contains(obs)
    assert obs["alive"].sum() == 3 * KW["n_agents"]
    assert obs["alive"][:KW["n_agents"]].all() and not obs["alive"][KW["n_agents"]:n].any()
    assert venv.single_action_space.nvec.tolist() == venv.spec.nvec.tolist()
    assert infos["seed"].tolist() == [4, 5, 6]
    rng = np.random.default_rng(0)
    acts = sample_factored(obs, venv.spec, rng)
    assert venv.action_space.contains(acts)
    obs, rew, term, trunc, infos = venv.step(acts)
    assert venv.observation_space.contains(obs)
    assert rew.shape == term.shape == trunc.shape == (3 * n,)
    # dead and unborn slots read zeros and allow only the "nothing" values, also once the
    # env reuses observation arrays whose rows were alive when last written
    off = ~obs["alive"]
    assert not obs["features"][off].any()
    assert (obs["action_mask"][off] == venv._idle_mask).all()
    assert (obs["action_mask"][off].reshape(off.sum(), -1) >= 0).all()
    died = 0
    for _ in range(12):
        was = obs["alive"]
        obs, *_ = venv.step(sample_factored(obs, venv.spec, rng))
        off = ~obs["alive"]
        died += int((was & off).sum())
        assert not obs["features"][off].any()
        assert (obs["action_mask"][off] == venv._idle_mask).all()
        assert obs["features"][obs["alive"]].any(axis=1).all()
    assert died > 0


def assert_same_state(lone, batch_state, e: int) -> None:
    """Community e of a batch state holds exactly the lone world's state."""
    mine = community(batch_state, e)
    for name in _ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(mine, name), getattr(lone, name), err_msg=name)
    assert (mine.day, mine.n_used) == (lone.day, lone.n_used)
    assert mine.inbox == lone.inbox


def test_a_community_is_the_same_alone_in_a_batch_and_through_the_parallel_env():
    """Community 2 of a batch of 64 (seed 7 + 2) against the same world stepped alone with
    world.step_factored and through the ParallelEnv (given each resident's factored row,
    cheap talk included): the same event log, census and behaviour counts, state and
    features every day, while the batch's other communities end and restart around it."""
    e, seed = 2, 7
    venv = civa_env.vector_env(num_envs=64, keep_logs=True, **KW)
    obs, _ = venv.reset(seed=seed)
    n = venv.n_slots
    rng = np.random.default_rng(1)
    alone = world.reset(venv.cfg, seed + e)
    penv = civa_env.parallel_env(**KW, obs_mode="numeric")
    penv.reset(seed=seed + e)
    log = venv.batch.logs[e]
    restarted = 0
    while True:
        rows = alone.living
        np.testing.assert_array_equal(obs["features"][e * n + rows], alone.observe(rows).features)
        acts = sample_factored(obs, venv.spec, rng)
        mine = acts[e * n:(e + 1) * n]
        alone, _ = world.step_factored(alone, mine)
        penv.step({a: mine[penv.world.index_of[a]] for a in penv.agents})
        obs, *_, infos = venv.step(acts)
        restarted += int(infos["ended"].sum())
        if infos["ended"][e]:
            break
        assert_same_state(alone.state, venv.batch.state, e)
        np.testing.assert_array_equal(venv.batch.view[e * n:(e + 1) * n],
                                      np.where(alone.view >= 0, alone.view + e * n, -1))
    ref = log_text(log)
    assert "message" in ref and ref == log_text(alone.log) == log_text(penv.world.log)
    assert [c["behaviours"] for c in log.census] == [c["behaviours"] for c in alone.log.census]
    assert restarted > 1  # other communities ended (and restarted) on other days


@pytest.mark.parametrize("extra", [{}, RANKED])
def test_a_batch_without_logs_plays_the_same_worlds(extra):
    """Without logs (the default) every community's state is still the lone world's, day
    after day, through its episode's end and the next episode (seeded as the ParallelEnv's
    plain reset would be); also where the factory slots rank the known factories."""
    venv = civa_env.vector_env(num_envs=5, n_agents=8, max_days=12, **extra)
    obs, _ = venv.reset(seed=3)
    n = venv.n_slots
    alone = [world.reset(venv.cfg, 3 + e) for e in range(5)]
    episodes = [0] * 5
    rng = np.random.default_rng(5)
    for _ in range(30):
        acts = sample_factored(obs, venv.spec, rng)
        for e in range(5):
            alone[e], _ = world.step_factored(alone[e], acts[e * n:(e + 1) * n])
        obs, *_, infos = venv.step(acts)
        for e in range(5):
            if infos["ended"][e]:
                assert alone[e].done
                episodes[e] += 1
                alone[e] = world.reset(venv.cfg, derived_seed(3 + e, episodes[e]))
            assert_same_state(alone[e].state, venv.batch.state, e)
            rows = alone[e].living
            np.testing.assert_array_equal(obs["features"][e * n + rows],
                                          alone[e].observe(rows).features)
    assert min(episodes) >= 2


def test_ranked_factory_slots_alone_in_a_batch_and_through_the_parallel_env():
    """Where the slots rank the known factories, community 1 of a batch of 4 gives the same
    event log as alone and through the ParallelEnv (the slots decode to the same factories
    everywhere)."""
    e, seed = 1, 11
    venv = civa_env.vector_env(num_envs=4, keep_logs=True, **KW, **RANKED)
    obs, _ = venv.reset(seed=seed)
    n = venv.n_slots
    rng = np.random.default_rng(3)
    alone = world.reset(venv.cfg, seed + e)
    penv = civa_env.parallel_env(**KW, **RANKED, obs_mode="numeric")
    penv.reset(seed=seed + e)
    log = venv.batch.logs[e]  # (a community that ends gets a new log)
    while True:
        acts = sample_factored(obs, venv.spec, rng)
        mine = acts[e * n:(e + 1) * n]
        alone, _ = world.step_factored(alone, mine)
        penv.step({a: mine[penv.world.index_of[a]] for a in penv.agents})
        obs, *_, infos = venv.step(acts)
        if infos["ended"][e]:
            break
        assert_same_state(alone.state, venv.batch.state, e)
    ref = log_text(log)
    assert "work" in ref and ref == log_text(alone.log) == log_text(penv.world.log)
    assert venv.cfg.ranks_factories


def test_cheap_talk_in_a_batch_matches_alone():
    venv = civa_env.vector_env(num_envs=4, keep_logs=True, **KW)
    obs, _ = venv.reset(seed=0)
    rng = np.random.default_rng(2)
    alone = world.reset(venv.cfg, 3)
    log = venv.batch.logs[3]
    n = venv.n_slots
    while not alone.done:
        acts = sample_factored(obs, venv.spec, rng)
        alone, _ = world.step_factored(alone, acts[3 * n:])
        obs, *_ = venv.step(acts)
    assert "message" in log_text(log)
    assert log_text(log) == log_text(alone.log)


def test_a_batch_without_logs_plays_the_days_a_batch_with_logs_plays():
    """Without logs the rules keep no events (and skip what only events need): the states,
    observations and rewards are those of the same batch keeping its logs, restarts and
    cheap talk included."""
    kw = {**KW, "max_days": 6}
    logged = civa_env.vector_env(num_envs=5, keep_logs=True, **kw)
    bare = civa_env.vector_env(num_envs=5, **kw)
    obs_a, _ = logged.reset(seed=8)
    obs_b, _ = bare.reset(seed=8)
    rng = np.random.default_rng(5)
    restarts = 0
    for _ in range(15):
        acts = sample_factored(obs_a, logged.spec, rng)
        obs_a, rew_a, term_a, trunc_a, info_a = logged.step(acts)
        obs_b, rew_b, term_b, trunc_b, info_b = bare.step(acts)
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key])
        for a, b in ((rew_a, rew_b), (term_a, term_b), (trunc_a, trunc_b)):
            np.testing.assert_array_equal(a, b)
        for e in range(5):
            assert_same_state(community(logged.batch.state, e), bare.batch.state, e)
        restarts += int(info_a["ended"].sum())
    assert restarts >= 5 and bare.batch.logs is None
    assert any("message" in log_text(log) for log in logged.batch.logs)


def test_communities_reset_in_the_same_step_with_their_final_observation():
    venv = civa_env.vector_env(num_envs=2, n_agents=6, max_days=4)
    obs, _ = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    for _day in range(1, 5):
        acts = sample_factored(obs, venv.spec, rng)
        obs, rew, term, trunc, infos = venv.step(acts)
    assert infos["ended"].all()
    assert infos["_final_obs"].all()
    final = infos["final_obs"]
    # the final observation is the last day's, the returned one the next episode's first
    assert (infos["day"] == 0).all()
    assert obs["alive"].reshape(2, -1)[:, :6].all()
    assert trunc[final["alive"]].all() and not trunc[~final["alive"]].any()
    # the next episode is seeded as the ParallelEnv's plain reset would be
    assert venv.worlds[0].seed == derived_seed(0, 1)
    assert venv.worlds[1].seed == derived_seed(1, 1)


def test_terminations_mark_the_day_a_resident_starved():
    venv = civa_env.vector_env(num_envs=2, n_agents=8, max_days=40, upkeep=3.0)
    obs, _ = venv.reset(seed=1)
    rng = np.random.default_rng(0)
    starved = 0
    for _ in range(12):
        alive_before = obs["alive"].copy()
        wealth_before = venv.batch.state.wealth.copy()
        obs, rew, term, trunc, infos = venv.step(sample_factored(obs, venv.spec, rng))
        ended = infos["ended"][venv.community_of]
        going = ~ended  # communities still in their episode: obs is the next day's
        np.testing.assert_array_equal(term[going], (alive_before & ~obs["alive"])[going])
        after = np.concatenate([w.state.wealth for w in venv.worlds])  # (lone snapshots)
        played = alive_before & going
        np.testing.assert_allclose(rew[played], (after - wealth_before)[played])
        assert not rew[~alive_before].any()
        starved += int(term.sum())
    assert starved > 0


@pytest.mark.parametrize("bad", [np.zeros((5, 6), np.int64), np.zeros((2 * 40, 5), np.int64)])
def test_wrong_action_arrays_raise(bad):
    venv = civa_env.vector_env(num_envs=2, **KW)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="factored actions of the vector env"):
        venv.step(bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_envs"):
        civa_env.vector_env(num_envs=0)
    with pytest.raises(ValueError, match="renders no text"):
        civa_env.vector_env(num_envs=1, obs_mode="text")
    venv = civa_env.vector_env(num_envs=1)
    with pytest.raises(ValueError, match="reset"):
        venv.step(np.zeros((venv.num_slots, 6), np.int64))
    with pytest.raises(ValueError, match="seed"):
        venv.reset(seed=-1)


def test_births_when_names_run_out_are_drawn_within_each_community():
    """Communities with few free names and many would-be parents: who gets a name is each
    community's own draw (the batch's states equal the lone worlds' every day)."""
    kw = {"n_agents": 6, "max_agents": 9, "max_days": 8, "birth_threshold": 1.0,
          "birth_prob": 0.9, "birth_cost": 0.5, "newcomer_wealth": 5.0}
    venv = civa_env.vector_env(num_envs=4, **kw)
    obs, _ = venv.reset(seed=11)
    n = venv.n_slots
    alone = [world.reset(venv.cfg, 11 + e) for e in range(4)]
    rng = np.random.default_rng(0)
    short = 0  # days on which a community had more would-be parents than free names
    for _ in range(5):
        acts = sample_factored(obs, venv.spec, rng, talk=False)
        for e in range(4):
            before = alone[e].state
            eligible = before.alive & (before.wealth >= 3.0)
            short += int(np.count_nonzero(eligible) > before.n_pool - before.n_used)
            alone[e], _ = world.step_factored(alone[e], acts[e * n:(e + 1) * n])
        obs, *_, infos = venv.step(acts)
        assert not infos["ended"].any()
        for e in range(4):
            assert_same_state(alone[e].state, venv.batch.state, e)
    assert short > 0 and all(w.state.n_used == 9 for w in alone)


def test_batch_draws_are_each_communitys_own_draws():
    """A batch draw (the compiled fill when it matches numpy, checked once per process) is
    each generator's own draw, concatenated, and leaves each generator where its own draws
    would; a draw from one generator directly moves the batch's stream too."""
    from civa_env.world import batch as batch_mod

    seeds = [5, 6, 7, 8]
    mine = batch_mod.StreamBatch([np.random.default_rng(s) for s in seeds])
    ref = [np.random.default_rng(s) for s in seeds]
    assert batch_mod._fills_match_numpy()  # the fast path is the one under test here
    for method, shape in (("random", (3, 4 * 5)), ("standard_normal", (2, 4 * 20_000)),
                          ("random", 4 * 3), ("standard_normal", 4 * 7)):
        got = getattr(mine, method)(shape)
        k = (shape[-1] if isinstance(shape, tuple) else shape) // 4
        lead = shape[:-1] if isinstance(shape, tuple) else ()
        want = np.concatenate([getattr(g, method)(lead + (k,)) for g in ref], axis=-1)
        np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
    mine.gens[2].random(3)
    ref[2].random(3)
    assert all(a.bit_generator.state == b.bit_generator.state
               for a, b in zip(mine.gens, ref, strict=True))
    # A generator set in place is the one drawn from.
    mine.gens[1] = np.random.default_rng(99)
    np.testing.assert_array_equal(mine.random(8)[2:4], np.random.default_rng(99).random(2))


def test_pcg64_is_stepped_inline_and_other_bit_generators_through_their_functions():
    """numpy's PCG64 state is stepped by the compiled PCG64 (checked against numpy: the
    check passes with this numpy, so the inline path is the one in use); a batch mixing
    PCG64 with other bit generators draws each as numpy would, the others through their
    own C functions, and leaves every generator where numpy leaves it."""
    from civa_env.world import batch as batch_mod

    assert batch_mod._fills_match_numpy() and batch_mod._fills_agree(False)
    if sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64"):
        # (numpy's builds there keep PCG64's state as a native __uint128_t)
        assert batch_mod._FILLS_INLINE and batch_mod._fills_agree(True)

    def gens():  # (uniforms of two PCG64s side by side are drawn two at a time: pairs,
        # a PCG64 whose neighbour is not one, and the others, in one batch)
        return [np.random.default_rng(3), np.random.default_rng(4),
                np.random.Generator(np.random.Philox(4)), np.random.default_rng(5),
                np.random.Generator(np.random.MT19937(6)), np.random.default_rng(7),
                np.random.default_rng(8), np.random.default_rng(9)]

    mine, ref = batch_mod.StreamBatch(gens()), gens()
    assert mine._bitgens()[1].tolist() == [True, True, False, True, False, True, True, True]
    # One generator in two neighbouring columns (as a batch starts, before its restarts)
    # draws column after column, as its own draws would.
    one, alone = np.random.default_rng(11), np.random.default_rng(11)
    twice = batch_mod.StreamBatch([one, one, np.random.default_rng(12)])
    np.testing.assert_array_equal(twice.random(3 * 4)[:8], alone.random(8))
    assert one.bit_generator.state == alone.bit_generator.state
    for method, shape in (("random", (2, 8 * 9)), ("standard_normal", 8 * 30_000),
                          ("random", 8 * 3)):
        got = getattr(mine, method)(shape)
        k = (shape[-1] if isinstance(shape, tuple) else shape) // 8
        lead = shape[:-1] if isinstance(shape, tuple) else ()
        want = np.concatenate([getattr(g, method)(lead + (k,)) for g in ref], axis=-1)
        np.testing.assert_array_equal(got.view(np.uint64), want.view(np.uint64))
    for a, b in zip(mine.gens, ref, strict=True):  # (states of arrays: their next draws)
        np.testing.assert_array_equal(a.integers(0, 2**62, 8), b.integers(0, 2**62, 8))


def test_observation_arrays_a_caller_keeps_are_never_overwritten():
    """copy=True (the default): arrays returned earlier and still held keep their values
    while the env steps on (it reuses only the sets nobody holds); copy=False returns the
    same arrays every step, with the same values as copy=True."""
    kw = {**KW, "n_agents": 6, "max_days": 4}
    venv = civa_env.vector_env(num_envs=3, **kw)
    other = civa_env.vector_env(num_envs=3, copy=False, **kw)
    obs, _ = venv.reset(seed=2)
    obs2, _ = other.reset(seed=2)
    held = [(obs, {k: v.copy() for k, v in obs.items()})]
    rng = np.random.default_rng(0)
    shared = obs2["features"]
    for t in range(12):
        acts = sample_factored(obs, venv.spec, rng)
        obs, *_, infos = venv.step(acts)
        obs2, *_ = other.step(acts)
        assert obs2["features"] is shared  # copy=False: the same buffer, updated in place
        for k in obs:
            np.testing.assert_array_equal(obs[k], obs2[k])
        if t % 3 == 0:
            held.append((obs, {k: v.copy() for k, v in obs.items()}))
        for kept, values in held:
            for k in kept:
                np.testing.assert_array_equal(kept[k], values[k])
    assert len({id(o["features"]) for o, _ in held}) == len(held)


@pytest.mark.parametrize("extra", [{}, RANKED])
def test_a_batch_stepped_in_place_plays_the_days_of_one_stepped_on_copies(extra):
    """``Communities.step_factored(in_place=True)`` (the vector env's) plays over the
    batch's arrays the days a batch stepped on copies plays, logs and restarts included; a
    day played on copies leaves the state it started from as it was."""
    from civa_env.world import factored
    from civa_env.world.batch import Communities
    from civa_env.world.day import rewards
    from civa_env.world.state import DayStart

    cfg = Config(**{**KW, "max_days": 6}, **extra)
    seeds = [4, 9, 2]
    a = Communities.reset(cfg, seeds, keep_logs=True)
    b = Communities.reset(cfg, seeds, keep_logs=True)
    spec = factored.FactoredSpec.of(cfg)
    rng = np.random.default_rng(1)
    restarts = 0
    for step in range(14):
        rows = a.state.alive.nonzero()[0]
        obs = {"action_mask": np.zeros((a.state.n_pool, spec.mask_size), np.int8),
               "alive": a.state.alive.copy()}
        factored.masks(a.state, a.view, rows, cfg, a.catalogue, out=obs["action_mask"],
                       out_rows=rows)
        acts = sample_factored(obs, spec, rng)
        kept = a.state.copy()
        day_a = a.step_factored(acts)
        day_b = b.step_factored(acts, in_place=True)
        assert day_a.before is not a.state and day_b.after is b.state
        assert isinstance(day_b.before, DayStart)
        for name in _ARRAY_FIELDS:  # on copies, the day's start is untouched
            np.testing.assert_array_equal(getattr(day_a.before, name), getattr(kept, name))
        for name in ("wealth", "alive", "known", "capacity"):
            np.testing.assert_array_equal(getattr(day_b.before, name), getattr(kept, name))
        for e in range(3):
            assert_same_state(community(a.state, e), b.state, e)
        np.testing.assert_array_equal(a.view, b.view)
        np.testing.assert_array_equal(rewards(day_a, cfg), rewards(day_b, cfg))
        ended = day_a.ended.nonzero()[0].tolist()
        np.testing.assert_array_equal(day_a.ended, day_b.ended)
        if ended:
            restarts += len(ended)
            a.replace(ended, [50 + step + e for e in ended])
            b.replace(ended, [50 + step + e for e in ended], in_place=True)
        for la, lb in zip(a.logs, b.logs, strict=True):
            buf_a, buf_b = io.StringIO(), io.StringIO()
            for i in range(la.n_days):
                la.write_day(buf_a, i)
            for i in range(lb.n_days):
                lb.write_day(buf_b, i)
            assert buf_a.getvalue() == buf_b.getvalue()
    assert restarts >= 3
