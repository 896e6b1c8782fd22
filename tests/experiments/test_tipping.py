"""Resilience margins, the threshold test and fold diagnostics on synthetic known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from civa_env.experiments.tipping import (
    LogisticFit,
    bimodality_coefficient,
    detrended_variance,
    fit_collapse,
    holm,
    hysteresis,
    lag1_autocorrelation,
    next_levels,
    paired_margin_difference,
    recovery_time,
    resilience_margin,
    threshold_test,
)

LEVELS = np.round(np.arange(1.0, 3.01, 0.1), 2)  # (21,) stress levels


def stress_runs(n_seeds: int, rng: np.random.Generator, centre: float = 1.8, spread: float = 0.2,
                shift: float = 0.0, levels: np.ndarray = LEVELS):
    """Each seed collapses at and above its own critical mu ~ N(centre, spread) (+ shift)."""
    critical = rng.normal(centre, spread, n_seeds) + shift  # (S,)
    seeds = np.repeat(np.arange(n_seeds), levels.size)
    mu = np.tile(levels, n_seeds)
    return seeds, mu, (mu >= critical[seeds]).astype(int)


# ----------------------------------------------------------------------------------------------
# The fit and the margin


def test_fit_recovers_known_mu_star_within_its_interval():
    seeds, mu, collapsed = stress_runs(30, np.random.default_rng(3))
    fit = fit_collapse(mu, collapsed)
    assert isinstance(fit, LogisticFit) and fit.converged
    assert fit.slope > 0
    assert fit.mu_star == pytest.approx(-fit.intercept / fit.slope)
    margin = resilience_margin(seeds, mu, collapsed, n_boot=1000, seed=1)
    assert margin["status"] == "ok"
    assert margin["mu_star_low"] <= 1.8 <= margin["mu_star_high"]
    assert margin["mu_star"] == pytest.approx(fit.mu_star)
    assert margin["d_fb"] == pytest.approx(100 * (margin["mu_star"] - 1))
    assert margin["d_fb_low"] == pytest.approx(100 * (margin["mu_star_low"] - 1))
    assert margin["d_fb_high"] == pytest.approx(100 * (margin["mu_star_high"] - 1))
    assert margin["slope"] > 0 and margin["slope_low"] > 0
    assert (margin["n_seeds"], margin["n_runs"]) == (30, 30 * LEVELS.size)


def test_fit_is_finite_under_complete_separation():
    mu = np.tile([1.0, 1.5, 2.0, 2.5, 3.0], 10)
    collapsed = mu >= 2.0  # every seed collapses from 2.0 on, none below
    fit = fit_collapse(mu, collapsed)
    assert fit.converged and math.isfinite(fit.intercept) and math.isfinite(fit.slope)
    assert fit.slope > 0
    assert 1.5 < fit.mu_star < 2.0
    margin = resilience_margin(np.repeat(np.arange(10), 5), mu, collapsed, n_boot=200)
    assert math.isfinite(margin["d_fb_low"]) and math.isfinite(margin["d_fb_high"])


def test_fit_edge_cases():
    mu = np.tile([1.0, 2.0, 3.0], 4)
    falling = fit_collapse(mu, mu <= 1.0)  # collapse less likely under more stress
    assert falling.slope < 0 and math.isnan(falling.mu_star)
    flat = fit_collapse(np.ones(6), [0, 1, 0, 1, 1, 0])  # a single level: nothing to fit
    assert not flat.converged and math.isnan(flat.mu_star)
    seeds = np.repeat(np.arange(4), 3)
    none = resilience_margin(seeds, mu, np.zeros(12), n_boot=50)
    assert none["status"] == "no_collapse" and math.isnan(none["d_fb"])
    assert none["mu_star_low"] == math.inf
    assert resilience_margin(seeds, mu, np.ones(12), n_boot=50)["status"] == "all_collapse"
    with pytest.raises(ValueError, match="0/1"):
        fit_collapse(mu, np.full(12, 2))
    with pytest.raises(ValueError, match="level"):
        resilience_margin(seeds, mu, mu > 2, level=1.5)


def test_bootstrap_interval_narrows_with_more_seeds():
    rng = np.random.default_rng(5)
    few = resilience_margin(*stress_runs(8, rng), n_boot=500)
    many = resilience_margin(*stress_runs(80, rng), n_boot=500)
    assert (many["mu_star_high"] - many["mu_star_low"]
            < 0.6 * (few["mu_star_high"] - few["mu_star_low"]))


def test_bootstrap_is_seeded():
    runs = stress_runs(12, np.random.default_rng(2))
    assert resilience_margin(*runs, n_boot=200, seed=4) == resilience_margin(*runs, n_boot=200,
                                                                             seed=4)


def test_paired_difference_recovers_a_known_shift():
    levels = np.round(np.arange(1.0, 3.51, 0.1), 2)
    base = stress_runs(20, np.random.default_rng(7), levels=levels)
    cond = stress_runs(20, np.random.default_rng(7), shift=0.3, levels=levels)  # same worlds
    result = paired_margin_difference(cond, base, n_boot=500)
    assert result["n_shared"] == 20
    assert result["diff"] == pytest.approx(30, abs=3)
    assert result["low"] > 0 and result["low"] <= 30 <= result["high"]
    assert result["diff"] == pytest.approx(result["d_fb_cond"] - result["d_fb_base"])


def test_paired_difference_of_identical_data_is_zero_and_uses_shared_seeds():
    base = stress_runs(15, np.random.default_rng(8))
    same = paired_margin_difference(base, base, n_boot=300)
    assert same["diff"] == 0 and same["low"] == 0 and same["high"] == 0
    seeds, mu, collapsed = base
    extra = (np.concatenate([seeds, seeds + 100]), np.concatenate([mu, mu]),
             np.concatenate([collapsed, 1 - collapsed]))  # seeds 100.. exist only here
    assert paired_margin_difference(extra, base, n_boot=300) == same
    with pytest.raises(ValueError, match="share no seed"):
        paired_margin_difference((seeds + 100, mu, collapsed), base)


# ----------------------------------------------------------------------------------------------
# Adaptive levels


def test_next_levels_extend_outward_while_outcomes_agree():
    mu = np.tile([1.0, 1.5, 2.0], 5)
    assert next_levels(mu, np.zeros(15)) == [2.5, 3.0, 3.5, 4.0]
    assert next_levels(mu, np.zeros(15), hi=3.0) == [2.25, 2.5, 2.75, 3.0]
    assert next_levels(mu, np.ones(15), k=2) == [0.0, 0.5]
    assert next_levels(mu, np.ones(15), lo=1.0) == []
    assert next_levels([], [], k=3, lo=1.0, hi=3.0) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="lo and hi"):
        next_levels([], [])


def test_next_levels_bisect_the_bracket_near_mu_star():
    levels = np.array([1.0, 1.5, 2.0, 2.5, 3.0])
    share = {1.0: 0, 1.5: 0, 2.0: 2, 2.5: 7, 3.0: 8}  # collapses out of 8 seeds
    mu = np.repeat(levels, 8)
    collapsed = np.concatenate([np.arange(8) < share[level] for level in levels])
    new = next_levels(mu, collapsed)
    assert new == [1.75, 2.125, 2.25, 2.75]  # inside (1.5, 3.0), first halving nearest mu* 2.19
    again = next_levels(np.concatenate([mu, np.repeat(new, 8)]),
                        np.concatenate([collapsed, np.repeat(np.array(new) > 2.2, 8)]), k=6)
    tried = set(levels) | set(new)
    assert len(again) == 6 and not tried & set(again)
    assert all(1.5 < level < 3.0 for level in again)
    assert all(1.0 <= level <= 2.2 for level in next_levels(mu, collapsed, lo=1.0, hi=2.2))


# ----------------------------------------------------------------------------------------------
# The threshold test

X_VALUES = np.arange(26.0)  # founding holders 0..25
N_SEEDS = 8


def holder_runs(curve, rng, seed_sd=0.1, noise_sd=0.15):
    """Every holder count for every seed: curve(x) + a seed offset + noise."""
    x = np.tile(X_VALUES, N_SEEDS)
    seeds = np.repeat(np.arange(N_SEEDS), X_VALUES.size)
    y = curve(x) + rng.normal(0, seed_sd, N_SEEDS)[seeds] + rng.normal(0, noise_sd, x.size)
    return x, seeds, y


def step_at_6(x):
    return 0.8 - 0.005 * x - 0.25 * (x >= 6)  # step 0.25 against noise sd 0.18


def concave_decline(x):
    return 1.0 - 0.7 * (x / 25) ** 2


def test_threshold_test_finds_a_step():
    result = threshold_test(*holder_runs(step_at_6, np.random.default_rng(11)), n_boot=499)
    assert result["p_value"] < 0.05
    assert result["threshold"] == 6
    assert result["threshold_low"] <= 6 <= result["threshold_high"]
    assert result["step_below"] - result["step_above"] == pytest.approx(0.25, abs=0.08)
    assert result["statistic"] > 0 and result["sse_step"] < result["sse_null"]
    assert result["n_seeds"] == N_SEEDS and result["n_runs"] == N_SEEDS * X_VALUES.size
    assert result["bimodality_x"] in (5.0, 6.0) and not result["bimodal"]
    x = np.arange(26.0)
    c0, c1, c2 = result["null_coef"]
    assert np.all(np.isfinite(c0 + c1 * x + c2 * x * x))


def test_threshold_test_power_and_size():
    """Power on steps at x = 6, size on a smooth concave decline, each over 60 datasets."""
    found = rejected = 0
    for r in range(60):
        rng = np.random.default_rng(1000 + r)
        step = threshold_test(*holder_runs(step_at_6, rng), n_boot=99, seed=r)
        found += step["p_value"] < 0.05 and step["threshold_low"] <= 6 <= step["threshold_high"]
        rejected += threshold_test(*holder_runs(concave_decline, rng), n_boot=99,
                                   seed=r)["p_value"] < 0.05
    assert found / 60 >= 0.8
    assert rejected / 60 <= 0.12


def test_threshold_test_is_not_fooled_by_a_step_like_concave_curve_on_few_points():
    """On five coarse levels a concave decline looks like a jump; the quadratic null holds."""
    rng = np.random.default_rng(12)
    x = np.tile([0.0, 6.0, 12.0, 19.0, 25.0], 8)
    seeds = np.repeat(np.arange(8), 5)
    y = concave_decline(x) + rng.normal(0, 0.05, x.size)
    assert threshold_test(x, seeds, y, n_boot=199)["p_value"] > 0.05


def test_threshold_test_bimodality_and_bad_input():
    rng = np.random.default_rng(13)
    x = np.tile(X_VALUES, 20)
    seeds = np.repeat(np.arange(20), X_VALUES.size)
    tipped = rng.uniform(4, 8, 20)[seeds] <= x  # each seed tips at its own holder count
    y = np.where(tipped, 0.2, 0.9) + rng.normal(0, 0.03, x.size)
    result = threshold_test(x, seeds, y, n_boot=99)
    assert result["bimodal"] and result["bimodality"] > 5 / 9
    with pytest.raises(ValueError, match="4 distinct"):
        threshold_test([0, 1, 2] * 3, np.repeat([0, 1, 2], 3), np.zeros(9))
    with pytest.raises(ValueError, match="2 seeds"):
        threshold_test(X_VALUES, np.zeros(26), X_VALUES)
    with pytest.raises(ValueError, match="one length"):
        threshold_test(X_VALUES, np.zeros(25), X_VALUES)


def test_holm_on_known_examples():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.01, 0.02, 0.04]) == pytest.approx([0.5, 0.04, 0.06, 0.08])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([0.02]) == pytest.approx([0.02])
    adjusted = holm([0.03, float("nan"), 0.01])
    assert adjusted[0] == pytest.approx(0.03) and math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.02)
    assert holm([]) == []


# ----------------------------------------------------------------------------------------------
# Fold diagnostics


def test_bimodality_coefficient():
    rng = np.random.default_rng(21)
    normal = rng.normal(0, 1, 2000)
    bimodal = np.concatenate([rng.normal(-3, 0.5, 500), rng.normal(3, 0.5, 500)])
    assert bimodality_coefficient(normal) == pytest.approx(1 / 3, abs=0.04)
    assert bimodality_coefficient(bimodal) > 0.8
    assert bimodality_coefficient(rng.uniform(0, 1, 5000)) == pytest.approx(5 / 9, abs=0.03)
    assert math.isnan(bimodality_coefficient([1.0, 2.0, 3.0]))
    assert math.isnan(bimodality_coefficient([2.0] * 6))


def test_lag1_autocorrelation_of_ar1():
    rng = np.random.default_rng(22)
    ar = np.zeros(3000)
    for t in range(1, ar.size):
        ar[t] = 0.8 * ar[t - 1] + rng.normal()
    trend = ar + 0.01 * np.arange(ar.size)  # a linear trend is removed before measuring
    assert lag1_autocorrelation(trend) == pytest.approx(0.8, abs=0.03)
    white = rng.normal(size=3000)
    assert abs(lag1_autocorrelation(white)) < 0.05
    assert lag1_autocorrelation(ar, window=50) == pytest.approx(0.8, abs=0.08)
    assert math.isnan(lag1_autocorrelation([1.0, 2.0]))


def test_detrended_variance():
    rng = np.random.default_rng(23)
    noise = rng.normal(0, 2, 4000)
    assert detrended_variance(noise + 5 * np.arange(4000)) == pytest.approx(4, rel=0.06)
    assert detrended_variance(np.arange(10.0)) == pytest.approx(0)
    assert detrended_variance(np.full(10, 3.0), window=3) == pytest.approx(0)
    assert math.isnan(detrended_variance([1.0, 2.0], window=3))


def test_recovery_time_on_a_hand_made_series():
    reference = np.full(10, 100.0)
    shocked = np.array([100, 100, 100, 60, 70, 85, 95, 99, 101, 100.0])  # shock on day 3
    assert recovery_time(shocked, 3, reference) == 3  # 95 on day 6 is within 10%
    assert recovery_time(shocked, 3, reference, tol=0.02) == 4
    assert recovery_time(shocked, 0, reference) == 0
    never = np.array([100, 100, 100, 60, 50, 40, 30, 20, 10, 0.0])
    assert recovery_time(never, 3, reference) is None
    blip = np.array([100, 100, 100, 60, 95, 60, 60, 95, 95, 95.0])
    assert recovery_time(blip, 3, reference) == 1
    assert recovery_time(blip, 3, reference, hold=3) == 4


def test_hysteresis_counts():
    shocked = [1, 1, 0, 1, 0, 0]
    undisturbed = [0, 1, 0, 0, 1, 0]
    result = hysteresis(shocked, undisturbed)
    assert result == {"shocked_only": 2, "undisturbed_only": 1, "both": 1, "neither": 2,
                      "n_seeds": 6, "share_shocked_only": 2 / 6, "share_undisturbed_only": 1 / 6}
    with pytest.raises(ValueError):
        hysteresis([1, 0], [1])
