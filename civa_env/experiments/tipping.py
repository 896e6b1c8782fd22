"""Resilience margins, tipping-point tests and fold diagnostics: the statistics, pure functions.

Nothing here runs a simulation or touches a run folder: ``civa resilience`` and ``civa report``
collect the runs and call these functions with plain arrays (one entry per run).

## The resilience margin (d_FB)

A stress test continues each seed, from a stress day on, under an upkeep multiplier ``mu`` (the
cost of living; ``mu = 1`` is the unstressed world) and calls a run *collapsed* when its population
at the horizon is below a quasi-extinction threshold. Over all seeds and levels,
``fit_collapse`` fits

    P(collapse | mu) = sigmoid(intercept + slope * mu)

by maximum likelihood. ``mu* = -intercept / slope`` is the stress at which collapse becomes more
likely than not, and

    d_FB = 100 (mu* - 1)

is the percentage of extra cost of living the community absorbs before collapse is the likelier
outcome (negative: it collapses more often than not already at ``mu = 1``). ``slope`` (per unit of
``mu``) says how sharp the transition is. ``mu*`` is undefined (NaN) when the slope is not positive
(collapse does not become likelier with stress).

**The penalty.** Stress tests separate often: every seed collapses above some level and none below,
where the plain maximum-likelihood slope is infinite. The fit is Firth's bias-reduced logistic
regression (Firth 1993, Biometrika 80:27): the log-likelihood plus half the log-determinant of the
Fisher information (a Jeffreys prior). Its estimates are always finite (Kosmidis and Firth 2021,
Biometrika 108:71), it does not depend on the units of ``mu`` (unlike a ridge penalty), its effect
shrinks as runs are added (the bias it removes is of order 1/n), and under complete separation it
puts ``mu*`` between the highest level without a collapse and the lowest with one. It is fitted by
Newton steps on the penalised likelihood with step halving.

**The interval.** Runs of one seed share a world up to the stress day, so they are not independent.
The bootstrap resamples whole seeds (every level of a drawn seed comes along; a seed drawn twice
counts twice), refits, and reports percentile intervals (order statistics of the replicates) of
``mu*``, ``d_FB`` and the slope. A replicate in which no drawn run collapsed has ``mu*`` above every
level tried and counts as +inf; one in which every drawn run collapsed counts as -inf; one with a
slope that is not positive is left out and counted (``n_boot_undefined``). An infinite bound says
the data do not bound the margin on that side. ``paired_margin_difference`` compares a condition
with baseline over the seeds both ran (paired worlds): each replicate draws the shared seeds once
and refits both, so the interval of the difference carries the pairing.

**Adaptive levels.** ``next_levels`` proposes where to run next: outward in steps while every level
tried so far gives the same outcome, and otherwise by halving the widest gaps between tried levels
inside the bracket from the highest level with no collapse to the lowest with only collapses (ties
go to the gap nearest the current ``mu*``). It never proposes a level already tried.

## The threshold test along holders

``threshold_test`` asks whether a response ``y`` (nAUP, final population, or 0/1 collapse) jumps at
some number of founding holders ``x`` rather than changing smoothly.

- Alternative: a step, ``y = step_below`` for ``x < threshold`` and ``y = step_above`` for
  ``x >= threshold``; ``threshold`` is a value of ``x`` (the first one on the upper side; the jump
  lies between it and the distinct ``x`` before it), chosen by least squares over every split
  between consecutive distinct ``x`` values.
- Null: a quadratic in ``x``, a smooth curve that may bend either way. Not a line: a concave or
  convex smooth decline is not linear, so a step beats a line on any such curve and a linear null
  rejects smoothness that is there. Not an isotonic (monotone) fit either: a step is itself
  monotone, so an isotonic null contains the alternative and the test would have no power.
- Statistic: ``F = (SSE_null - SSE_step) / SSE_step`` (sup-F: the step's SSE is minimised over the
  threshold). Both models have three parameters.
- p-value: a seed-level bootstrap under the null. Each run's residual is its deviation from the
  mean of its ``x`` over seeds, scaled by ``sqrt(n_x / (n_x - 1))``; a null world is the quadratic
  fit plus these residuals, and a replicate resamples whole seeds of it (a seed's residuals across
  ``x`` stay together, so within-seed correlation is kept), refits both models and recomputes F.
  ``p = (1 + #{F* >= F}) / (1 + B)``. The residuals are centred per ``x`` so that the null world
  holds the noise but not the data's own departure from the quadratic (which, kept, would make
  every null world as step-like as the data and the test powerless).
- ``threshold_low``/``threshold_high``: percentile interval of the threshold over a seed bootstrap
  of the data themselves.
- ``bimodality``: Sarle's bimodality coefficient of ``y`` across runs at each of the two ``x``
  values either side of the jump, the larger of the two (the two sides are not pooled: pooling them
  makes any step bimodal); ``bimodal`` when it exceeds 5/9 (the value of a uniform distribution).
  For a 0/1 response it is high whenever both outcomes occur at that ``x``.

``holm`` adjusts the p-values of several conditions (Holm-Bonferroni).

## Is it a fold?

A fold (alternative stable states lost at a critical stress) predicts, just below ``mu*``:
hysteresis (``hysteresis``: a shocked community collapses while its undisturbed twin persists),
critical slowing down (``recovery_time`` after a small shock grows, and ``lag1_autocorrelation``
and ``detrended_variance`` of the population or wealth series rise, as ``mu`` approaches ``mu*``),
and a bimodal final population (``bimodality_coefficient``). Where these fail, call ``d_FB`` a
collapse threshold, not a distance to a fold. Sources: Scheffer et al. 2009 (Nature 461:53),
Dakos et al. 2012 (PLoS ONE 7:e41010), Veraart et al. 2012 (Nature 481:357).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.special import expit

FIRTH_MAX_ITER = 100
FIRTH_TOL = 1e-8
FIRTH_MAX_STEP = 5.0  # largest Newton step per coefficient (in standardised units), as logistf
BIMODAL_CUTOFF = 5 / 9  # the bimodality coefficient of a uniform distribution


@dataclass(frozen=True)
class LogisticFit:
    """A fit of P(collapse | mu) = sigmoid(intercept + slope * mu)."""

    intercept: float
    slope: float  # per unit of mu
    mu_star: float  # -intercept / slope; NaN when slope <= 0
    converged: bool


# ----------------------------------------------------------------------------------------------
# Firth logistic regression, batched over bootstrap weights


def _firth_penalised(z: np.ndarray, y: np.ndarray, w: np.ndarray, beta: np.ndarray):
    """Penalised log-likelihood and its pieces for each row of weights.

    z, y: (n,) standardised stress and 0/1 outcome; w: (B, n) weights; beta: (B, 2).
    """
    eta = beta[:, :1] + beta[:, 1:] * z  # (B, n)
    p = expit(eta)
    v = w * p * (1 - p)
    i00, i01, i11 = v.sum(1), (v * z).sum(1), (v * z * z).sum(1)
    det = i00 * i11 - i01 * i01
    loglik = -(w * (y * np.logaddexp(0, -eta) + (1 - y) * np.logaddexp(0, eta))).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        penalised = loglik + 0.5 * np.log(det)
    return penalised, p, v, (i00, i01, i11, det)


def _firth_batch(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Firth fits of y on (1, z), one per row of the frequency weights w (B, n).

    Returns (B, 2) coefficients (NaN where the weighted z is constant) and (B,) converged flags.
    Runs with the same (z, y) are pooled first (their weights add), which gives the same fit.
    """
    pairs, pair_index = np.unique(np.stack([z, y], axis=1), axis=0, return_inverse=True)
    pooled = np.zeros((pairs.shape[0], z.size))
    pooled[pair_index.ravel(), np.arange(z.size)] = 1.0
    z, y, w = pairs[:, 0], pairs[:, 1], w @ pooled.T
    n_fits = w.shape[0]
    beta = np.zeros((n_fits, 2))
    pen, p, v, (i00, i01, i11, det) = _firth_penalised(z, y, w, beta)
    ok = det > 1e-12 * np.maximum(i00 * i11, 1e-300)
    active = ok.copy()
    converged = np.zeros(n_fits, dtype=bool)
    for _ in range(FIRTH_MAX_ITER):
        if not active.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            inv00, inv01, inv11 = i11 / det, -i01 / det, i00 / det
        hat = v * (inv00[:, None] + 2 * inv01[:, None] * z + inv11[:, None] * z * z)
        r = w * (y - p) + hat * (0.5 - p)
        u0, u1 = r.sum(1), (r * z).sum(1)
        step = np.stack([inv00 * u0 + inv01 * u1, inv01 * u0 + inv11 * u1], axis=1)
        step[~active] = 0.0
        biggest = np.abs(step).max(1)
        step *= np.minimum(1.0, FIRTH_MAX_STEP / np.maximum(biggest, 1e-300))[:, None]
        converged |= active & (biggest < FIRTH_TOL)
        active &= ~converged
        step[~active] = 0.0
        if not active.any():
            break
        for _halving in range(30):
            new = beta + step
            pen_new, p_new, v_new, parts_new = _firth_penalised(z, y, w, new)
            worse = active & ~(pen_new >= pen - 1e-10 * np.abs(pen))
            if not worse.any():
                break
            step[worse] *= 0.5
        beta = np.where(active[:, None], new, beta)
        keep = active
        pen = np.where(keep, pen_new, pen)
        p = np.where(keep[:, None], p_new, p)
        v = np.where(keep[:, None], v_new, v)
        i00, i01, i11, det = (np.where(keep, a, b) for a, b in
                              zip(parts_new, (i00, i01, i11, det), strict=True))
    beta[~ok] = np.nan
    return beta, converged & ok


def _standardise(mu: np.ndarray) -> tuple[np.ndarray, float, float]:
    centre = float(mu.mean())
    scale = float(mu.std()) or 1.0
    return (mu - centre) / scale, centre, scale


def _to_mu_units(beta: np.ndarray, centre: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(B, 2) coefficients on the standardised stress -> (intercept, slope) per unit of mu."""
    slope = beta[:, 1] / scale
    return beta[:, 0] - slope * centre, slope


def _mu_star(intercept: np.ndarray, slope: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(slope > 0, -intercept / slope, np.nan)


def _as_runs(seeds, mu, collapsed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seeds = np.asarray(seeds)
    mu = np.asarray(mu, dtype=float)
    collapsed = np.asarray(collapsed)
    if not (seeds.shape == mu.shape == collapsed.shape) or mu.ndim != 1:
        raise ValueError(f"seeds, mu and collapsed must be 1-D arrays of one length; got shapes "
                         f"{seeds.shape}, {mu.shape}, {collapsed.shape}")
    if mu.size == 0:
        raise ValueError("no runs to fit")
    if not np.isfinite(mu).all():
        raise ValueError("mu holds a value that is not finite")
    if not np.isin(collapsed, (0, 1)).all():
        raise ValueError("collapsed must be 0/1 (or bool) per run")
    return seeds, mu, collapsed.astype(float)


def fit_collapse(mu, collapsed) -> LogisticFit:
    """Firth-penalised logistic regression of collapse (0/1 per run) on the stress level mu.

    Finite under complete separation (see the module docstring). ``mu_star`` is NaN when the
    slope is not positive; ``converged`` is False when the Newton steps did not settle or every
    run has the same mu (then the coefficients are NaN).
    """
    mu = np.asarray(mu, dtype=float)
    _, mu, y = _as_runs(np.zeros(mu.shape), mu, collapsed)
    z, centre, scale = _standardise(mu)
    beta, converged = _firth_batch(z, y, np.ones((1, mu.size)))
    intercept, slope = _to_mu_units(beta, centre, scale)
    return LogisticFit(intercept=float(intercept[0]), slope=float(slope[0]),
                       mu_star=float(_mu_star(intercept, slope)[0]),
                       converged=bool(converged[0]))


# ----------------------------------------------------------------------------------------------
# Seed bootstrap


def _check_boot(n_boot: int, level: float) -> None:
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def _seed_counts(rng: np.random.Generator, n_boot: int, n_seeds: int) -> np.ndarray:
    """(n_boot, n_seeds) how often each seed is drawn in each replicate (n_seeds draws each)."""
    draws = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    flat = draws + n_seeds * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_seeds).reshape(n_boot, n_seeds)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval (order statistics; +-inf allowed) of the non-NaN values."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha], method="inverted_cdf")
    return float(low), float(high)


def _boot_mu_star(z, y, weights, centre, scale) -> tuple[np.ndarray, np.ndarray]:
    """mu* and slope per replicate; +inf where no drawn run collapsed, -inf where all did."""
    beta, _ = _firth_batch(z, y, weights)
    intercept, slope = _to_mu_units(beta, centre, scale)
    mu_star = _mu_star(intercept, slope)
    collapses = (weights * y).sum(1)
    mu_star[collapses == 0] = np.inf
    mu_star[collapses == weights.sum(1)] = -np.inf
    return mu_star, slope


def _status(y: np.ndarray, fit: LogisticFit) -> str:
    if not y.any():
        return "no_collapse"
    if y.all():
        return "all_collapse"
    if not fit.slope > 0:
        return "not_increasing"
    return "ok"


def resilience_margin(seeds, mu, collapsed, n_boot: int = 2000, seed: int = 0,
                      level: float = 0.95) -> dict[str, Any]:
    """mu*, d_FB = 100 (mu* - 1) and the slope, with seed-bootstrap percentile intervals.

    Args:
        seeds: (n,) the seed of each run; runs of one seed are resampled together.
        mu: (n,) the stress level (upkeep multiplier) of each run.
        collapsed: (n,) 0/1 whether each run collapsed.
        n_boot: bootstrap replicates.
        seed: seeds ``numpy.random.default_rng`` for the resampling.
        level: coverage of the intervals.

    Returns a dict with ``mu_star, d_fb, d_fb_low, d_fb_high, mu_star_low, mu_star_high, slope,
    slope_low, slope_high, intercept, converged, n_seeds, n_runs, n_boot_undefined`` and
    ``status``: "ok", "no_collapse" (no run collapsed: mu* lies above every level tried; mu_star
    and d_fb are NaN), "all_collapse" (every run collapsed: mu* below every level; NaN) or
    "not_increasing" (slope <= 0: NaN).
    """
    _check_boot(n_boot, level)
    seeds, mu, y = _as_runs(seeds, mu, collapsed)
    fit = fit_collapse(mu, y)
    status = _status(y, fit)
    mu_star = fit.mu_star if status == "ok" else math.nan
    _, seed_index = np.unique(seeds, return_inverse=True)
    n_seeds = int(seed_index.max()) + 1
    counts = _seed_counts(np.random.default_rng(seed), int(n_boot), n_seeds)
    z, centre, scale = _standardise(mu)
    boot_mu, boot_slope = _boot_mu_star(z, y, counts[:, seed_index].astype(float), centre, scale)
    mu_low, mu_high = _percentiles(boot_mu, level)
    slope_low, slope_high = _percentiles(boot_slope, level)
    return {
        "mu_star": mu_star,
        "d_fb": 100 * (mu_star - 1),
        "d_fb_low": 100 * (mu_low - 1),
        "d_fb_high": 100 * (mu_high - 1),
        "mu_star_low": mu_low,
        "mu_star_high": mu_high,
        "slope": fit.slope,
        "slope_low": slope_low,
        "slope_high": slope_high,
        "intercept": fit.intercept,
        "converged": fit.converged,
        "n_seeds": n_seeds,
        "n_runs": int(mu.size),
        "n_boot_undefined": int(np.isnan(boot_mu).sum()),
        "status": status,
    }


def paired_margin_difference(cond, base, n_boot: int = 2000, seed: int = 0,
                             level: float = 0.95) -> dict[str, Any]:
    """d_FB(cond) - d_FB(base) over the seeds both ran, with a paired seed-bootstrap interval.

    Args:
        cond, base: each a ``(seeds, mu, collapsed)`` triple of per-run arrays (as
            ``resilience_margin`` takes). Runs of seeds the other lacks are dropped.
        n_boot, seed, level: as ``resilience_margin``; each replicate draws the shared seeds
            once and refits both conditions on them.

    Returns ``diff, low, high, n_shared, d_fb_cond, d_fb_base, n_boot_undefined`` (replicates
    where either mu* was undefined, or both infinite on the same side, are left out).
    """
    _check_boot(n_boot, level)
    cond_runs, base_runs = _as_runs(*cond), _as_runs(*base)
    shared = np.intersect1d(cond_runs[0], base_runs[0])
    if shared.size == 0:
        raise ValueError("the two conditions share no seed")
    counts = _seed_counts(np.random.default_rng(seed), int(n_boot), shared.size)
    points, boots = [], []
    for seeds, mu, y in (cond_runs, base_runs):
        keep = np.isin(seeds, shared)
        seeds, mu, y = seeds[keep], mu[keep], y[keep]
        fit = fit_collapse(mu, y)
        points.append(fit.mu_star if _status(y, fit) == "ok" else math.nan)
        z, centre, scale = _standardise(mu)
        weights = counts[:, np.searchsorted(shared, seeds)].astype(float)
        boots.append(_boot_mu_star(z, y, weights, centre, scale)[0])
    with np.errstate(invalid="ignore"):
        boot_diff = 100 * (boots[0] - boots[1])
    low, high = _percentiles(boot_diff, level)
    return {
        "diff": 100 * (points[0] - points[1]),
        "low": low,
        "high": high,
        "n_shared": int(shared.size),
        "d_fb_cond": 100 * (points[0] - 1),
        "d_fb_base": 100 * (points[1] - 1),
        "n_boot_undefined": int(np.isnan(boot_diff).sum()),
    }


# ----------------------------------------------------------------------------------------------
# Adaptive design


def next_levels(mu, collapsed, k: int = 4, lo: float | None = None,
                hi: float | None = None) -> list[float]:
    """Up to k new stress levels, sorted, never one already tried, within [lo, hi] if given.

    Levels are never below 0 (mu multiplies upkeep). With no runs yet: ``k`` levels evenly
    spaced over [lo, hi] (both required). While every level tried shows no collapse: steps
    upwards from the highest level (the step is the median spacing of the levels tried, 0.5 when
    only one was tried; spread evenly up to ``hi`` when the steps would pass it); while every
    level collapses in every run, the same downwards. Otherwise the bracket runs from the highest
    level with no collapse below the lowest level where every run collapsed, to that level (where
    either is missing, it is extended by one step beyond the levels tried, and that end is the
    first proposal); the widest gap between the levels in the bracket (tried and proposed) is
    halved until k levels are proposed, ties going to the gap nearest the current mu* (Firth
    fit; the bracket's middle when undefined). Levels are rounded to 6 decimals. Fewer than k
    come back when [lo, hi] leaves no room.
    """
    if k < 1:
        return []
    mu = np.asarray(mu, dtype=float)
    collapsed = np.asarray(collapsed, dtype=float)
    floor = max(0.0, -math.inf if lo is None else float(lo))
    ceil = math.inf if hi is None else float(hi)
    if floor > ceil:
        raise ValueError(f"lo ({lo}) is above hi ({hi})")
    if mu.size == 0:
        if lo is None or hi is None:
            raise ValueError("next_levels needs lo and hi when no level was tried yet")
        return _fresh(np.linspace(floor, ceil, k) if k > 1 else np.array([floor]), mu, k)
    levels = np.unique(mu)
    share = np.array([collapsed[mu == level].mean() for level in levels])
    step = float(np.median(np.diff(levels))) if levels.size > 1 else 0.5
    if (share == 0).all():
        return _outward(levels.max(), step, ceil, mu, k)
    if (share == 1).all():
        return _outward(levels.min(), -step, floor, mu, k)
    proposals: list[float] = []
    full = levels[share == 1]
    upper = full.min() if full.size else None
    below = levels[(share == 0) & (levels < (upper if upper is not None else math.inf))]
    lower = below.max() if below.size else None
    if lower is None:
        lower = max(floor, levels.min() - step)
        if lower < levels.min():
            proposals.append(lower)
        else:
            lower = levels.min()
    if upper is None:
        upper = min(ceil, levels.max() + step)
        if upper > levels.max():
            proposals.append(upper)
        else:
            upper = levels.max()
    lower, upper = max(lower, floor), min(upper, ceil)
    fit = fit_collapse(mu, collapsed) if np.unique(mu).size > 1 else None
    centre = fit.mu_star if fit is not None and np.isfinite(fit.mu_star) else (lower + upper) / 2
    nodes = set(np.round(levels[(levels >= lower) & (levels <= upper)], 6).tolist())
    nodes |= {round(lower, 6), round(upper, 6), *(round(p, 6) for p in proposals)}
    while len(proposals) < k:
        ordered = sorted(nodes)
        gaps = [(round(b - a, 9), -abs((a + b) / 2 - centre), a, b)
                for a, b in zip(ordered[:-1], ordered[1:], strict=True)]
        gaps = [g for g in gaps if round((g[2] + g[3]) / 2, 6) not in nodes]
        if not gaps:
            break
        _, _, a, b = max(gaps)
        middle = round((a + b) / 2, 6)
        nodes.add(middle)
        proposals.append(middle)
    return _fresh(np.array(proposals), mu, k)


def _outward(edge: float, step: float, limit: float, mu: np.ndarray, k: int) -> list[float]:
    """k levels stepping from edge (exclusive) by step, spread evenly to limit if they pass it."""
    levels = edge + step * np.arange(1, k + 1)
    if (step > 0 and levels[-1] > limit) or (step < 0 and levels[-1] < limit):
        if (limit - edge) * step <= 0:
            return []
        levels = np.linspace(edge, limit, k + 1)[1:]
    return _fresh(levels, mu, k)


def _fresh(levels: np.ndarray, tried: np.ndarray, k: int) -> list[float]:
    """Rounded, sorted, distinct levels not within 1e-9 of a tried one; at most k."""
    out: list[float] = []
    for level in np.round(levels, 6).tolist():
        if (np.abs(tried - level) > 1e-9).all() and level not in out:
            out.append(float(level))
    return sorted(out[:k])


# ----------------------------------------------------------------------------------------------
# Threshold test


def _quadratic_sse(design: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Weighted least squares of y on design (n, 3), one fit per row of w (B, n)."""
    gram = np.einsum("bn,nk,nl->bkl", w, design, design)
    rhs = np.einsum("bn,bn,nk->bk", w, np.broadcast_to(y, w.shape), design)
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    resid = np.broadcast_to(y, w.shape) - coef @ design.T
    return (w * resid * resid).sum(1), coef


def _step_fit(order: np.ndarray, ends: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Least-squares step per row of w (B, n): (sse, split index into ends, below, above).

    order sorts the runs by x; ends[j] is the sorted position of the last run with the j-th
    smallest distinct x, so split j puts distinct values 0..j below the threshold.
    """
    ws, ys = w[:, order], np.broadcast_to(y, w.shape)[:, order]
    cw, cy = np.cumsum(ws, 1), np.cumsum(ws * ys, 1)
    syy = (ws * ys * ys).sum(1)
    wl, yl = cw[:, ends[:-1]], cy[:, ends[:-1]]
    wr, yr = cw[:, -1:] - wl, cy[:, -1:] - yl
    with np.errstate(divide="ignore", invalid="ignore"):
        sse = syy[:, None] - yl * yl / wl - yr * yr / wr
    sse = np.where((wl > 0) & (wr > 0), np.maximum(sse, 0.0), np.inf)
    split = sse.argmin(1)
    rows = np.arange(w.shape[0])
    return (sse[rows, split], split, yl[rows, split] / wl[rows, split],
            yr[rows, split] / wr[rows, split])


def _f_statistic(sse_null: np.ndarray, sse_step: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (sse_null - sse_step) / sse_step
    return np.where(sse_step > 0, f, np.where(sse_null > 0, np.inf, 0.0))


def threshold_test(x, seeds, y, n_boot: int = 999, seed: int = 0,
                   level: float = 0.95) -> dict[str, Any]:
    """A step in y along x against a quadratic null, with a seed-level bootstrap p-value.

    Args:
        x: (n,) the number of founding holders (or prevalence) of each run.
        seeds: (n,) the seed of each run (a seed's runs across x are resampled together).
        y: (n,) the response of each run (nAUP, final population or 0/1 collapse).
        n_boot: bootstrap replicates (for the p-value and for the threshold interval).
        seed: seeds ``numpy.random.default_rng``.
        level: coverage of the threshold interval.

    Returns a dict with ``p_value, statistic, threshold, threshold_low, threshold_high,
    step_below, step_above, sse_step, sse_null, n_seeds, n_runs, bimodality, bimodality_x,
    bimodal`` and ``null_coef`` (c0, c1, c2 of the null y = c0 + c1 x + c2 x^2), as the module
    docstring defines them.
    """
    _check_boot(n_boot, level)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    seeds = np.asarray(seeds)
    if not (x.shape == y.shape == seeds.shape) or x.ndim != 1:
        raise ValueError(f"x, seeds and y must be 1-D arrays of one length; got shapes "
                         f"{x.shape}, {seeds.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x or y holds a value that is not finite")
    values, x_index, x_count = np.unique(x, return_inverse=True, return_counts=True)
    if values.size < 4:
        raise ValueError(f"the threshold test needs at least 4 distinct x values, "
                         f"got {values.size}")
    _, seed_index = np.unique(seeds, return_inverse=True)
    n_seeds = int(seed_index.max()) + 1
    if n_seeds < 2:
        raise ValueError("the threshold test needs at least 2 seeds")
    centre, scale = float(x.mean()), float(x.std())
    z = (x - centre) / scale
    design = np.stack([np.ones_like(z), z, z * z], axis=1)
    order = np.argsort(x, kind="stable")
    ends = np.cumsum(np.bincount(x_index, minlength=values.size)) - 1

    ones = np.ones((1, x.size))
    sse_null, coef = _quadratic_sse(design, y, ones)
    sse_step, split, below, above = _step_fit(order, ends, y, ones)
    statistic = float(_f_statistic(sse_null, sse_step)[0])
    threshold = float(values[split[0] + 1])

    counts = _seed_counts(np.random.default_rng(seed), int(n_boot), n_seeds)
    weights = counts[:, seed_index].astype(float)
    cell_mean = np.bincount(x_index, weights=y, minlength=values.size) / x_count
    inflate = np.sqrt(np.where(x_count > 1, x_count / np.maximum(x_count - 1, 1), 1.0))
    null_world = design @ coef[0] + (y - cell_mean[x_index]) * inflate[x_index]
    boot_null, _ = _quadratic_sse(design, null_world, weights)
    boot_step = _step_fit(order, ends, null_world, weights)[0]
    boot_f = _f_statistic(boot_null, boot_step)
    p_value = float((1 + np.count_nonzero(boot_f >= statistic - 1e-12 * abs(statistic)))
                    / (1 + n_boot))
    boot_split = _step_fit(order, ends, y, weights)[1]
    threshold_low, threshold_high = _percentiles(values[boot_split + 1], level)

    bimodality, bimodality_x = math.nan, math.nan
    for value in (values[split[0]], threshold):
        coefficient = bimodality_coefficient(y[x == value])
        if np.isnan(bimodality) or coefficient > bimodality:
            bimodality, bimodality_x = coefficient, float(value)
    c0, c1, c2 = coef[0]
    null_coef = [float(c0 - c1 * centre / scale + c2 * centre**2 / scale**2),
                 float(c1 / scale - 2 * c2 * centre / scale**2), float(c2 / scale**2)]
    return {
        "p_value": p_value,
        "statistic": statistic,
        "threshold": threshold,
        "threshold_low": threshold_low,
        "threshold_high": threshold_high,
        "step_below": float(below[0]),
        "step_above": float(above[0]),
        "sse_step": float(sse_step[0]),
        "sse_null": float(sse_null[0]),
        "n_seeds": n_seeds,
        "n_runs": int(x.size),
        "bimodality": float(bimodality),
        "bimodality_x": bimodality_x,
        "bimodal": bool(bimodality > BIMODAL_CUTOFF),
        "null_coef": null_coef,
    }


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values in the input order (monotone, capped at 1).

    NaN entries stay NaN and do not count towards the number of tests.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    ranked = valid[np.argsort(p[valid], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[ranked]))
    out[ranked] = adjusted
    return out.tolist()


# ----------------------------------------------------------------------------------------------
# Early-warning and fold diagnostics


def _detrend(series, window: int | None) -> np.ndarray:
    """Residuals from a linear fit (window None) or a centred moving average of window points.

    With a window, only the points where the whole window fits are kept (len - window + 1);
    an even window is centred on the earlier of its two middle points.
    """
    values = np.asarray(series, dtype=float)
    if values.ndim != 1:
        raise ValueError("a series must be 1-D")
    if window is None:
        if values.size < 2:
            return values - values.mean() if values.size else values
        t = np.arange(values.size)
        return values - np.polyval(np.polyfit(t, values, 1), t)
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if values.size < window:
        return values[:0]
    average = np.convolve(values, np.ones(window) / window, mode="valid")
    start = (window - 1) // 2
    return values[start:start + average.size] - average


def lag1_autocorrelation(series, window: int | None = None) -> float:
    """Lag-1 autocorrelation (Pearson, between r[t] and r[t+1]) of the detrended series.

    Detrending: a linear fit when ``window`` is None, else subtracting a centred moving average
    of ``window`` points. NaN when fewer than 3 points remain or they do not vary.
    """
    resid = _detrend(series, window)
    if resid.size < 3:
        return math.nan
    a, b = resid[:-1], resid[1:]
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else math.nan


def detrended_variance(series, window: int | None = None) -> float:
    """Sample variance (ddof 1) of the detrended series (detrending as lag1_autocorrelation).

    NaN when fewer than 2 points remain.
    """
    resid = _detrend(series, window)
    return float(resid.var(ddof=1)) if resid.size >= 2 else math.nan


def recovery_time(series, shock_day: int, reference, tol: float = 0.1,
                  hold: int = 1) -> int | None:
    """Days from shock_day until series is back within tol (relative) of reference.

    ``series[t]`` and ``reference[t]`` are the values on day t (the shocked run and the same
    seed's undisturbed run). Returns the smallest d >= 0 such that
    ``|series[t] - reference[t]| <= tol * |reference[t]|`` for ``hold`` consecutive days from
    ``t = shock_day + d`` on (0: the shock never pushed it out), or None when that never happens
    within the shorter of the two series.
    """
    s = np.asarray(series, dtype=float)
    r = np.asarray(reference, dtype=float)
    if tol < 0:
        raise ValueError(f"tol must be non-negative, got {tol}")
    if hold < 1:
        raise ValueError(f"hold must be at least 1, got {hold}")
    n = min(s.size, r.size)
    if not 0 <= shock_day < n:
        return None
    within = np.abs(s[shock_day:n] - r[shock_day:n]) <= tol * np.abs(r[shock_day:n])
    run = 0
    for d, ok in enumerate(within.tolist()):
        run = run + 1 if ok else 0
        if run == hold:
            return d - hold + 1
    return None


def bimodality_coefficient(values) -> float:
    """Sarle's bimodality coefficient with the sample-size correction.

    ``BC = (g^2 + 1) / (k + 3 (n - 1)^2 / ((n - 2)(n - 3)))`` with g the bias-corrected sample
    skewness and k the bias-corrected excess kurtosis. About 1/3 for a normal sample, 5/9 for a
    uniform one; above 5/9 suggests bimodality. NaN for n < 4 or values that do not vary.
    """
    v = np.asarray(values, dtype=float).ravel()
    n = v.size
    if n < 4 or np.ptp(v) == 0:
        return math.nan
    g = float(stats.skew(v, bias=False))
    k = float(stats.kurtosis(v, fisher=True, bias=False))
    return (g * g + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def hysteresis(shocked_collapsed, undisturbed_collapsed) -> dict[str, Any]:
    """Paired outcomes per seed of a shocked community and its undisturbed twin.

    Both arguments: (seeds,) 0/1 collapse per seed, in the same seed order. Returns plain counts
    ``shocked_only`` (the shocked one collapsed, the undisturbed one did not: the hysteresis
    signature), ``undisturbed_only`` (the reverse), ``both``, ``neither``, ``n_seeds``, and
    ``share_shocked_only``/``share_undisturbed_only`` (of n_seeds; NaN when there are none).
    """
    shocked = np.asarray(shocked_collapsed).astype(bool)
    undisturbed = np.asarray(undisturbed_collapsed).astype(bool)
    if shocked.shape != undisturbed.shape or shocked.ndim != 1:
        raise ValueError("shocked and undisturbed outcomes must be 1-D arrays of one length")
    n = int(shocked.size)
    shocked_only = int((shocked & ~undisturbed).sum())
    undisturbed_only = int((~shocked & undisturbed).sum())
    return {
        "shocked_only": shocked_only,
        "undisturbed_only": undisturbed_only,
        "both": int((shocked & undisturbed).sum()),
        "neither": int((~shocked & ~undisturbed).sum()),
        "n_seeds": n,
        "share_shocked_only": shocked_only / n if n else math.nan,
        "share_undisturbed_only": undisturbed_only / n if n else math.nan,
    }
