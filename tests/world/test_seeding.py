"""``seeding``: numpy's seed sequences hashed in one compiled pass give numpy's generators
and derived seeds, for seeds across the whole range (one and two 32-bit words, the edges)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from civa_env.world import day, seeding

SEEDS = [0, 1, 2**32 - 1, 2**32, 2**63 - 1] + np.random.default_rng(3).integers(
    0, 2**63, 400).tolist()


@pytest.mark.parametrize("key", [0, 1, 2, 4])
def test_the_generators_are_numpys(key):
    gens, = seeding.generators(SEEDS, [key])
    for s, g in zip(SEEDS, gens, strict=True):
        ref = np.random.default_rng(np.random.SeedSequence(s, spawn_key=(key,)))
        assert g.bit_generator.state == ref.bit_generator.state, s
        np.testing.assert_array_equal(g.random(5), ref.random(5))
        np.testing.assert_array_equal(g.standard_normal(3), ref.standard_normal(3))


def test_generators_of_several_keys_come_in_key_order():
    sets = seeding.generators(SEEDS[:20], [2, 0, 1])
    for key, gens in zip([2, 0, 1], sets, strict=True):
        assert [g.bit_generator.state for g in gens] == [
            np.random.default_rng(np.random.SeedSequence(s, spawn_key=(key,))).bit_generator.state
            for s in SEEDS[:20]]


def test_states_match_generate_state_for_any_entropy_and_spawn_key():
    entropies = [s for s in SEEDS[:60]] + [[s, 3] for s in SEEDS[:60]] + [[s, 7, 2**40]
                                                                           for s in SEEDS[:60]]
    keys = [(k % 3,) for k in range(60)] + [()] * 60 + [(1, 2**33)] * 60
    got = seeding.states(entropies, keys, 3)
    for e, k, row in zip(entropies, keys, got, strict=True):
        want = np.random.SeedSequence(e, spawn_key=k).generate_state(3, np.uint64)
        np.testing.assert_array_equal(row, want)


def test_int_seeds_with_one_word_keys_take_the_table_path_and_match_numpy():
    """Ints in [0, 2**64) with one-int spawn keys (fresh worlds' generators) are assembled
    as one table; anything else (numpy ints, a key of two words, no key) row by row: the
    same states either way."""
    entropies = SEEDS[:50] + [2**64 - 1, 2**33 + 5]
    keys = [(k % 4 if k % 5 else 2**32 - 1,) for k in range(len(entropies))]
    assert seeding._int_entropy(entropies, keys) is not None
    assert seeding._int_entropy([np.int64(5)], [(1,)]) is None
    assert seeding._int_entropy([5], [(1, 2)]) is None and seeding._int_entropy([5], [()]) is None
    assert seeding._int_entropy([2**64], [(1,)]) is None
    for e_list in (entropies, [np.uint64(e) for e in entropies]):
        got = seeding.states(e_list, keys, 4)
        for e, k, row in zip(entropies, keys, got, strict=True):
            want = np.random.SeedSequence(e, spawn_key=k).generate_state(4, np.uint64)
            np.testing.assert_array_equal(row, want)


def test_derived_seeds_are_derived_seed():
    pairs = [(s, k) for s in SEEDS for k in (1, 2, 9)]
    assert seeding.derived_seeds(pairs) == [day.derived_seed(s, k) for s, k in pairs]


def test_a_generator_spawns_pickles_and_reads_as_numpys():
    g = seeding.generators([7], [2])[0][0]
    real = np.random.SeedSequence(7, spawn_key=(2,))
    seq = g.bit_generator.seed_seq
    assert seq.entropy == 7 and seq.spawn_key == (2,)
    np.testing.assert_array_equal(seq.pool, real.pool)
    np.testing.assert_array_equal(seq.generate_state(3), real.generate_state(3))
    kids, want = g.spawn(2), np.random.Generator(np.random.PCG64(real)).spawn(2)
    assert [k.bit_generator.state for k in kids] == [w.bit_generator.state for w in want]
    g.random(10)
    back = pickle.loads(pickle.dumps(g))
    assert back.bit_generator.state == g.bit_generator.state
    np.testing.assert_array_equal(back.random(4), g.random(4))


def test_negative_entropy_is_refused():
    with pytest.raises(ValueError, match="must be >= 0"):
        seeding.states([-1], [()], 2)


@pytest.mark.parametrize("seeds,episodes", [
    ([0, 1, 5, 2**32 - 1, 2**32, 2**40 + 3, 2**63 - 1, 2**64 - 1],
     [1, 2, 0, 7, 2**32 - 1, 3, 1, 9]),  # the compiled pass: seeds of one word and of two
    ([2**64, 3], [1, 1]),  # a seed of three words, an episode of two: the two calls
    ([4], [2**32])])
def test_episode_seeds_are_derived_seeds_and_their_seed_words(seeds, episodes):
    """A restart's seeds and their streams' words at once: ``derived_seeds`` of the pairs,
    then ``seed_words`` of those (each numpy's ``SeedSequence``, as the tests above show)."""
    keys = (0, 1, 2, 4)
    got, words = seeding.episode_seeds(seeds, episodes, keys)
    want = seeding.derived_seeds(list(zip(seeds, episodes, strict=True)))
    assert got == want and all(type(x) is int for x in got)
    assert words.dtype == np.uint64 and words.shape == (len(keys), len(seeds), 4)
    np.testing.assert_array_equal(words, seeding.seed_words(want, keys))
    x, k = want[-1], keys[-1]
    np.testing.assert_array_equal(
        words[-1, -1], np.random.SeedSequence(x, spawn_key=(k,)).generate_state(4, np.uint64))
