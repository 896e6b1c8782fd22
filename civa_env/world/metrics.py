"""Community metrics: per day (the census) and per episode (``summarize``).

- nAUP: ``sum_t N_t / (max_days * n_agents)``, N_t living at the end of day t (0 after
  extinction).
- SC: ``(C - B) / (C + B)`` (0 when both are 0), C cooperative acts, B betrayals.
- ED: 1 - Gini of the wealth of the living, averaged over days with anyone alive.
- IC: share of the living in the largest strongly connected component of the directed
  message graph of the last ``recent_days`` days (a message to everyone is an edge to every
  living resident), averaged over days.
- CC: total production (factory output plus finds from exploring) per resident-day.
- Early warning: lag-1 autocorrelation and variance of the population series.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from civa_env.world import behaviours
from civa_env.world.config import Config
from civa_env.world.events import EventLog
from civa_env.world.kinds import ACTION_KINDS, D, EventKind, K
from civa_env.world.state import WorldState

# Label of each event kind counted as an action (None: an outcome, not an action).
_ACTION_LABELS = [k.label if k in ACTION_KINDS else None for k in EventKind]
# Plain ints for the hot paths (comparing an array with an enum member is slow).


def gini(x: np.ndarray) -> float:
    """Gini coefficient of non-negative amounts (negative ones count as 0); 0 for <2 or all 0."""
    return _gini_sorted(np.sort(np.maximum(np.asarray(x, dtype=np.float64), 0.0)))


def _gini_sorted(x: np.ndarray) -> float:
    """``gini`` of amounts already sorted and floored at 0."""
    n = len(x)
    total = x.sum()
    if n < 2 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2.0 * (ranks * x).sum()) / (n * total) - (n + 1.0) / n)


def _median_sorted(x: np.ndarray) -> float:
    """``np.median`` of a sorted array (the same value: the middle one, or the mean of the
    two middle ones), without its overhead."""
    half = len(x) // 2
    return float(x[half]) if len(x) % 2 else float((x[half - 1] + x[half]) / 2.0)


def largest_scc_share(n_nodes: int, src: np.ndarray, dst: np.ndarray, broadcasters: np.ndarray,
                      nodes: np.ndarray) -> float:
    """Share of ``nodes`` in the largest strongly connected component of a message graph.

    Broadcasts go through a hub node (sender -> hub -> every node in ``nodes``), which keeps
    reachability among residents exact without N^2 edges.
    """
    if len(nodes) == 0:
        return 0.0
    hub = n_nodes
    bsrc = np.asarray(broadcasters, np.int64)
    all_src = np.concatenate([src, bsrc, np.full(len(nodes) if len(bsrc) else 0, hub)])
    all_dst = np.concatenate([dst, np.full(len(bsrc), hub), nodes if len(bsrc) else []])
    graph = coo_matrix((np.ones(len(all_src)), (all_src.astype(np.int64),
                                                all_dst.astype(np.int64))),
                       shape=(n_nodes + 1, n_nodes + 1)).tocsr()
    _, labels = connected_components(graph, directed=True, connection="strong")
    largest = np.bincount(labels[nodes]).max()
    # A lone resident is not communication: without any mutual exchange IC is 0.
    return float(largest / len(nodes)) if largest >= 2 else 0.0


def information_coverage(state: WorldState, cfg: Config) -> float:
    """IC of the current state (message graph of the last ``recent_days`` days)."""
    sel = (state.recent_kind == D.MESSAGE) & (state.recent_day > state.day - cfg.recent_days)
    alive = state.alive
    src, dst = state.recent_src[sel], state.recent_dst[sel]
    living_src = alive[src]
    direct = living_src & (dst >= 0)
    direct &= alive[np.maximum(dst, 0)]
    broadcasters = src[living_src & (dst < 0)]
    if len(broadcasters):
        broadcasters = np.unique(broadcasters)
    if not np.count_nonzero(direct) and len(broadcasters) < 2:
        return 0.0  # no mutual exchange is possible: the largest component is a lone resident
    return largest_scc_share(state.n_pool, src[direct], dst[direct], broadcasters,
                             alive.nonzero()[0])


def census(state: WorldState, cols: dict[str, np.ndarray], w0: np.ndarray,
           alive0: np.ndarray, cfg: Config) -> dict[str, Any]:
    """The day's facts, from the state after the day and the day's event columns."""
    kind = cols["kind"]
    living = state.wealth[state.alive]
    start = w0[alive0]
    # One sort each serves the medians and the Gini; kinds are counted once.
    living_sorted, start_sorted = np.sort(living), np.sort(start)
    per_kind = np.bincount(kind, minlength=len(EventKind)).tolist()
    produced = (kind == K.WORK) | (kind == K.EXPLORE)
    return {
        "day": state.day,
        "population": len(living),
        "acting": len(start),
        "births": per_kind[K.BIRTH],
        "deaths": per_kind[K.DEATH],
        "production": float(cols["amount"][produced].sum()),
        "wealth_total": float(living.sum()),
        # sum / count is what ndarray.mean computes, without its overhead.
        "wealth_mean": float(living.sum() / len(living)) if len(living) else 0.0,
        "wealth_median": _median_sorted(living_sorted) if len(living) else 0.0,
        "wealth_mean_start": float(start.sum() / len(start)) if len(start) else 0.0,
        "wealth_median_start": _median_sorted(start_sorted) if len(start) else 0.0,
        "gini": _gini_sorted(np.maximum(living_sorted, 0.0)),
        "ic": information_coverage(state, cfg),
        "alliances": int(len(state.allies)),
        "actions": {label: c for label, c in zip(_ACTION_LABELS, per_kind, strict=True)
                    if c and label},
    }


def _autocorr_lag1(x: np.ndarray) -> float:
    if len(x) < 3 or np.var(x) == 0:
        return 0.0
    d = x - x.mean()
    return float((d[1:] * d[:-1]).sum() / (d * d).sum())


def summarize(log: EventLog, cfg: Config,
              classifier: behaviours.IntentClassifier | None = None) -> dict[str, Any]:
    """Episode metrics from an event log (works on a live log or one read from JSONL)."""
    census_days = log.census
    population = np.zeros(cfg.max_days)
    days = [c["day"] for c in census_days]
    pops = np.array([c["population"] for c in census_days], dtype=np.float64)
    if days:
        population[np.array(days) - 1] = pops
    cols, texts = log.columns()
    masks = behaviours.detect(cols, texts, census_days, classifier,
                              recent_days=cfg.recent_days,
                              deception_window=cfg.deception_window)
    counts = behaviours.count(masks)
    cooperation, betrayal = counts["cooperation"], counts["betrayal"]
    resident_days = max(sum(c["acting"] for c in census_days), 1)
    lived = [c for c in census_days if c["population"] > 0]
    production = sum(c["production"] for c in census_days)
    series = population[: max(days) if days else 0]
    return {
        "days": len(census_days),
        "nAUP": float(population.sum() / (cfg.max_days * cfg.n_agents)),
        "SC": float((cooperation - betrayal) / (cooperation + betrayal))
        if cooperation + betrayal else 0.0,
        "ED": float(np.mean([1.0 - c["gini"] for c in lived])) if lived else 0.0,
        "IC": float(np.mean([c["ic"] for c in lived])) if lived else 0.0,
        "CC": float(production / resident_days),
        "autocorr_lag1": _autocorr_lag1(series),
        "variance": float(np.var(series)) if len(series) else 0.0,
        "final_population": int(census_days[-1]["population"]) if census_days else cfg.n_agents,
        "extinct_day": next((c["day"] for c in census_days if c["population"] == 0), None),
        "resident_days": int(resident_days),
        "cooperation_per_resident_day": cooperation / resident_days,
        "betrayal_per_resident_day": betrayal / resident_days,
        "behaviours": counts,
        "behaviour_rates": {b: c / resident_days for b, c in counts.items()},
        "population": population.tolist(),
        "wealth_mean": [c["wealth_mean"] for c in census_days],
        "gini": [c["gini"] for c in census_days],
        "production": [c["production"] for c in census_days],
        "actions": [c["actions"] for c in census_days],
    }
