"""``kernels.segment_sums`` sums each segment bit for bit as ``ndarray.sum`` sums it alone
(numpy's pairwise summation), so that a community's mean wealth feature is the same in a
batch as alone."""

from __future__ import annotations

import numpy as np

from civa_env.world.kernels import segment_sums


def test_each_segment_is_summed_as_numpy_sums_it():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([np.arange(0, 300), rng.integers(0, 3000, 60)])
    rng.shuffle(lengths)
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = rng.standard_normal(int(bounds[-1])) * 10.0 ** rng.uniform(-4, 7, int(bounds[-1]))
    values[::5] = np.abs(values[::5])
    values[rng.integers(0, len(values), 50)] = -0.0
    got = segment_sums(values, bounds)
    want = np.array([values[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    assert got.view(np.uint64).tolist() == want.view(np.uint64).tolist()
    # Plain left-to-right sums differ on some of these (the test can tell the orders apart).
    plain = np.array([sum(values[a:b].tolist(), 0.0)
                      for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    assert (plain.view(np.uint64) != want.view(np.uint64)).any()


def test_signed_zeros_and_empty_segments():
    values = np.array([-0.0, -0.0, -0.0, 1.5])
    got = segment_sums(values, np.array([0, 0, 1, 3, 4], np.int64))
    want = np.array([values[:0].sum(), values[:1].sum(), values[1:3].sum(), values[3:].sum()])
    assert got.view(np.uint64).tolist() == want.view(np.uint64).tolist()


def test_community_wealth_is_each_communitys_own_count_and_mean():
    """``kernels.community_wealth`` (the features' population and mean wealth of a batch)
    is, community by community, the living count (at least 1) and ``wealth[living].sum() /
    count`` of that community alone, bit for bit (empty and full communities included)."""
    from civa_env.world.kernels import community_wealth

    rng = np.random.default_rng(3)
    e, n = 40, 300
    alive = rng.random(e * n) < rng.uniform(0, 1, e).repeat(n)
    alive[:n] = False  # one community died out
    alive[n:2 * n] = True  # one all alive
    wealth = rng.standard_normal(e * n) * 10.0 ** rng.uniform(-3, 6, e * n)
    wealth[rng.integers(0, e * n, 100)] = -0.0
    counts, means = community_wealth(alive, wealth, n, e)
    assert counts.dtype == np.int64 and means.dtype == np.float64
    for c in range(e):
        a, w = alive[c * n:(c + 1) * n], wealth[c * n:(c + 1) * n]
        k = max(int(a.sum()), 1)
        assert counts[c] == k
        assert np.float64(means[c]).view(np.uint64) == np.float64(w[a].sum() / k).view(np.uint64)
