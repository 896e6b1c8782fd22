"""Resilience tests: how much extra cost of living a community absorbs before it collapses.

For each cell (value condition x prevalence, and baseline), each seed and each stress level
mu, a community runs from day 0 to the horizon ``T0 + H``. Days ``1..T0`` are unstressed and
the same at every level (paired worlds, seeded policies; LLM residents replay them from the
answer cache, their prompts being identical); from day ``T0 + 1`` on the stressor applies:
upkeep multiplied by mu (``stress_upkeep``, the primary stressor) or the outage probability
multiplied by mu, capped at 1 (``stress_outage``). A run **collapsed** when its population at
the horizon is below ``q`` times its founders (quasi-extinction). Over seeds and levels,

    logit P(collapse | mu) = b0 + b1 mu,   mu* = -b0 / b1,   d_FB = 100 (mu* - 1),

so ``d_FB`` is the percentage of extra stress (for upkeep: extra cost of living) at which
collapse becomes more likely than not; negative when the community collapses more often than
not already at mu = 1. Intervals come from a bootstrap that resamples whole seeds, and
differences to baseline from a paired bootstrap over the seeds both share
(``civa_env.experiments.tipping``). Levels are chosen adaptively: a coarse grid, then
``refine`` rounds of levels around each cell's mu* (``tipping.next_levels``), so that
expensive residents need few runs.

Fold diagnostics (is mu* really the distance to a fold bifurcation?), per cell, from runs
near mu*: hysteresis (a community knocked down by a one-day shock at the tried level just
below mu* collapses while the undisturbed one persists), recovery time after a small one-day
shock at the tried levels approaching mu*, lag-1 autocorrelation and variance of the
detrended population and total-wealth series over the stress period, and bimodality of the
final population at the level nearest mu*. See ``FOLD_RULE`` and docs/resilience.md.

The folder (``OUT``) holds ``resilience.json`` (the settings all its runs share),
``runs/<run_id>/`` (one run folder each), ``runs.csv`` (one row per finished run; a rerun
skips them, and rows lost from the table are recovered from finished run folders),
``resilience.csv``, ``diagnostics.csv``, ``collapse_vs_stress.png`` and ``resilience.md``.
Runs go through the sweep's machinery (``sweep.run_task``, its process pool and Ray
backends, the folder lock).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from civa_env import __version__
from civa_env.experiments import sweep as sweep_module
from civa_env.experiments import tipping
from civa_env.experiments.progress import Progress
from civa_env.experiments.results import read_table
from civa_env.experiments.runfolder import (
    LOCK_NAME,
    OUT,
    FolderLock,
    SettingError,
    atomic_open,
    complete_metrics,
    is_complete_run,
    write_json_atomic,
)
from civa_env.experiments.runner import format_mix, parse_mix
from civa_env.experiments.signals import interruption
from civa_env.experiments.sweep import (
    GRID_FIELDS,
    QUASI_EXTINCTION,
    Task,
    check_quasi_extinction,
    make_grid,
    run_id,
    run_task,
)
from civa_env.world.config import Config

__all__ = ["DEFAULT_LEVELS", "DIAGNOSTIC_COLUMNS", "RESILIENCE_COLUMNS", "RUN_COLUMNS",
           "STRESSORS", "Point", "Resilience", "ResilienceError", "ResilienceReport",
           "check_levels", "fold_verdict", "load_runs", "point_id"]

# Stressor name -> the Config field that carries its multiplier mu.
STRESSORS = {"upkeep": "stress_upkeep", "outage": "stress_outage"}
# Coarse levels (multipliers; 1 = today's world). For outage, outage_prob 0.1 x 10 = 1.
DEFAULT_LEVELS = {"upkeep": (1.0, 1.5, 2.0, 3.0, 4.0), "outage": (1.0, 2.0, 4.0, 7.0, 10.0)}
DEFAULT_STRESS_DAY = 30
DEFAULT_HORIZON = 60
# Config fields the resilience test sets itself (a base config may not set them).
OWNED_FIELDS = ("max_days", "stress_upkeep", "stress_outage", "stress_day", "shock_day",
                "shock_upkeep")
# Levels are rounded to this many decimals (as tipping.next_levels rounds them).
LEVEL_DECIMALS = 6
NEW_LEVELS_PER_ROUND = 4

# ---- fold diagnostics --------------------------------------------------------------------------
# The shock day is SHOCK_OFFSET days into the stress (fewer with a short horizon).
SHOCK_OFFSET = 5
# One-day shocks, sized by the community's own mean wealth W on the day before the shock in
# the undisturbed runs at that level (median over seeds): the shock adds an extra cost of
# SHARE x W to that day's upkeep, i.e. shock_upkeep = 1 + SHARE x W / daily upkeep.
# Knock-down (hysteresis): SHARE 1, so residents poorer than about the mean die (in trials
# about half of them or more: the community is knocked far down, not wiped out). Pulse
# (recovery): SHARE 0.2, a fifth of the mean wealth, which kills a few of the poorest (under
# a tenth of the residents in trials) and is small against the community.
KNOCKDOWN_SHARE = 1.0
PULSE_SHARE = 0.2
# Recovered: total wealth back within this fraction of the undisturbed run's, for
# RECOVERY_HOLD days in a row (one day inside by chance is not a recovery).
RECOVERY_TOL = 0.1
RECOVERY_HOLD = 3
# Recovery times are measured at up to this many tried levels just below mu*.
RECOVERY_LEVELS = 3
# Sarle's bimodality coefficient above 5/9 (its value for a uniform distribution) suggests
# two modes.
BIMODAL = tipping.BIMODAL_CUTOFF
# Hysteresis held: the shocked community collapsed while its undisturbed twin persisted in
# at least this share of the seeds, and in more seeds than the reverse.
HYSTERESIS_SHARE = 0.25
FOLD_RULE = ("a cell reads as a distance to a fold when hysteresis holds and at least two of "
             "the other three signatures hold (recovery time rises towards mu*, lag-1 "
             "autocorrelation of the population rises towards mu*, bimodal final population "
             "near mu*); otherwise mu* is a collapse threshold")

RUN_COLUMNS = ("run_id", "kind", "condition", "prevalence", "seed", "stressor", "mu",
               "shock_day", "shock_upkeep", "policy", "agents", "collapsed",
               "final_population", "population_at_stress", "min_population", "extinct_day",
               "nAUP", "population", "wealth")
_RUN_FLOATS = ("prevalence", "mu", "shock_upkeep", "final_population", "population_at_stress",
               "min_population", "nAUP")
_RUN_INTS = ("seed", "shock_day", "agents", "collapsed")
RESILIENCE_COLUMNS = ("condition", "prevalence", "stressor", "d_FB", "d_FB_low", "d_FB_high",
                      "mu_star", "mu_star_low", "mu_star_high", "slope", "intercept",
                      "converged", "status", "n_seeds", "n_runs", "levels", "d_FB_diff",
                      "d_FB_diff_low", "d_FB_diff_high", "n_shared", "reading")
# scope "level": one stress level's value; "cell": the signature's verdict for the cell
# (``held``), with its value (the trend, or the single level's value).
DIAGNOSTIC_COLUMNS = ("condition", "prevalence", "stressor", "diagnostic", "scope", "mu",
                      "value", "n", "held", "note")
KINDS = ("stress", "knockdown", "pulse")


class ResilienceError(SettingError):
    """Bad resilience settings, or a folder that does not fit the requested test."""


def _setting(name: str, got: Any, rule: str) -> ResilienceError:
    return ResilienceError("{" + name + "} " + rule + ", got {got}", {name: name},
                           {"got": got})


def check_levels(levels: Iterable[float]) -> list[float]:
    """Sorted distinct stress levels, each a finite number >= 0.

    Raises:
        ResilienceError: no level, or one below zero or not finite.
    """
    out = []
    for mu in levels:
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu) \
                or mu < 0:
            raise _setting("levels", mu, "must be stress multipliers >= 0 (1 = no stress)")
        out.append(round(float(mu), LEVEL_DECIMALS) + 0.0)
    if not out:
        raise _setting("levels", "none", "must name at least one stress level")
    return sorted(set(out))


def _number_text(x: float) -> str:
    """Short exact text of a number for run ids (``1.5``, ``10``, ``2.345``)."""
    x = float(x) + 0.0
    text = f"{x:g}"
    return text if float(text) == x else repr(x)


@dataclass(frozen=True)
class Point:
    """One run of the design: a cell, a seed, a stress level and maybe a one-day shock."""

    kind: str  # "stress" (undisturbed), "knockdown" (hysteresis) or "pulse" (recovery)
    condition: str
    prevalence: float
    seed: int
    mu: float
    shock_day: int = 0
    shock_upkeep: float = 1.0


def point_id(point: Point, stressor: str) -> str:
    """Folder name and table key of a run: ``with-power__p1.00__s3__upkeep-x1.5`` (a shocked
    run adds ``__shock35-x4.2``)."""
    rid = f"{run_id(point.condition, point.prevalence, point.seed)}__{stressor}-x" \
          f"{_number_text(point.mu)}"
    if point.kind != "stress":
        rid += f"__shock{point.shock_day}-x{_number_text(point.shock_upkeep)}"
    return rid


# ---- the runs table ------------------------------------------------------------------------------
def load_runs(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of runs.csv by run_id ({} when there is none).

    Raises:
        ResilienceError: a table that is not a runs table, or a malformed row.
    """
    def convert(row: dict[str, Any]) -> None:
        for key in _RUN_FLOATS:
            row[key] = float(row[key])
        for key in _RUN_INTS:
            row[key] = int(row[key])
        row["extinct_day"] = int(row["extinct_day"]) if row["extinct_day"] else None
        row["population"] = [float(x) for x in row["population"].split()]
        row["wealth"] = [float(x) for x in row["wealth"].split()]

    return read_table(Path(path), ResilienceError, "runs",
                      lambda header: tuple(header) == RUN_COLUMNS, convert,
                      check=lambda row: row["kind"] in KINDS,
                      hint="; move it away and rerun: finished runs are recovered from "
                           "their folders")


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(f"{float(x):.6g}" for x in value)
    return str(value)


def _write_table(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    with atomic_open(Path(path), newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell_text(row.get(c)) for c in columns])


# ---- results -----------------------------------------------------------------------------------
@dataclass
class ResilienceReport:
    """What a resilience call did and found."""

    total: int  # runs of the design
    already: int  # rows found in runs.csv
    recovered: int  # rows rebuilt from finished run folders
    ran: int  # runs computed now
    seconds: float
    out: Path
    cells: list[dict[str, Any]] = field(default_factory=list)  # the resilience.csv rows
    failures: list[tuple[str, str]] = field(default_factory=list)  # (run_id, error)


class Resilience:
    """A resumable resilience test in one folder (see the module docstring).

    Args:
        out: the folder.
        conditions, prevalences, seeds, first_seed: the cells and seeds, as for a sweep
            (``baseline`` runs once per seed, at prevalence 0).
        base: the world (its ``max_days`` and stress fields are set here; see OWNED_FIELDS).
        policy, policy_kwargs: the residents, as for ``civa run``.
        stressor: ``upkeep`` or ``outage``.
        levels: the coarse stress levels (default ``DEFAULT_LEVELS[stressor]``).
        stress_day: T0, the last day before the stress (the stress applies from T0 + 1).
        horizon: H, days under stress; a run ends on day T0 + H.
        quasi_extinction: q; collapsed when the final population is below q x founders.
        refine: rounds of adaptive levels around each cell's mu*.
        diagnostics: run the fold diagnostics.
        n_boot: bootstrap resamples; ci: interval level.
    """

    def __init__(self, out: Path, conditions: Sequence[str], prevalences: Sequence[float],
                 seeds: int, base: Config | None = None, policy: str = "scripted",
                 policy_kwargs: dict[str, dict[str, Any]] | None = None, first_seed: int = 0,
                 stressor: str = "upkeep", levels: Sequence[float] | None = None,
                 stress_day: int = DEFAULT_STRESS_DAY, horizon: int = DEFAULT_HORIZON,
                 quasi_extinction: float = QUASI_EXTINCTION, refine: int = 1,
                 diagnostics: bool = True, n_boot: int = 2000, ci: float = 0.95) -> None:
        if stressor not in STRESSORS:
            raise ResilienceError("unknown {stressor} {got}; use " + " or ".join(STRESSORS),
                                  {"stressor": "stressor"}, {"got": repr(stressor)})
        self.stressor = stressor
        self.levels = check_levels(DEFAULT_LEVELS[stressor] if levels is None else levels)
        for name, value, low in (("stress_day", stress_day, 0), ("horizon", horizon, 1),
                                 ("refine", refine, 0), ("n_boot", n_boot, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise _setting(name, value, f"must be a whole number >= {low}")
        if not 0 < ci < 1:
            raise _setting("ci", ci, "must be in (0, 1)")
        self.stress_day, self.horizon, self.refine = stress_day, horizon, refine
        self.quasi_extinction = check_quasi_extinction(quasi_extinction)
        self.diagnostics, self.n_boot, self.ci = diagnostics, n_boot, ci
        self.out = Path(out)
        self.grid = make_grid(conditions, prevalences, seeds, first_seed)
        self.cells = list(dict.fromkeys((c, p) for c, p, _ in self.grid))
        self.seeds = sorted({s for _, _, s in self.grid})
        self.policy = format_mix(parse_mix(policy))
        self.policy_kwargs = json.loads(json.dumps(policy_kwargs or {}, sort_keys=True))
        base = base or Config()
        changed = [name for name in OWNED_FIELDS if name != "max_days"
                   and getattr(base, name) != getattr(Config(), name)]
        if changed:
            raise ResilienceError("the resilience test sets " + ", ".join(changed) + " itself "
                                  "(from {stressor}, the levels, {stress_day} and {horizon}); "
                                  "leave them out of {base}",
                                  {"stressor": "stressor", "stress_day": "stress_day",
                                   "horizon": "horizon", "base": "the base config"})
        self.base = base.replace(max_days=stress_day + horizon, stress_day=stress_day + 1)
        self.env = {k: v for k, v in self.base.to_dict().items() if k not in GRID_FIELDS}
        self.runs_path = self.out / "runs.csv"

    # ---- settings and folder --------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        return {"env": self.env, "policy": self.policy, "policy_kwargs": self.policy_kwargs,
                "stressor": self.stressor}

    def _read_meta(self) -> dict[str, Any] | None:
        meta = self.out / "resilience.json"
        if not meta.exists():
            return None
        try:
            old = json.loads(meta.read_text(encoding="utf-8"))
        except (ValueError, OSError, UnicodeDecodeError):
            raise ResilienceError(f"{meta} is not valid JSON; move it away") from None
        if not isinstance(old, dict):
            raise ResilienceError(f"{meta} is not a resilience settings file; move it away")
        return old

    def _check_folder(self) -> None:
        """Refuse a folder that is not this test's (read-only)."""
        if self.out.exists() and not self.out.is_dir():
            raise ResilienceError("output {path} is a file; choose another {out}", OUT,
                                  {"path": self.out})
        old = self._read_meta()
        if old is not None:
            settings = self._settings()
            changed = sorted(k for k in set(old.get("env", {})) | set(self.env)
                             if old.get("env", {}).get(k) != self.env.get(k))
            changed += [k for k in ("policy", "policy_kwargs", "stressor")
                        if old.get(k) != settings[k]]
            if changed:
                raise ResilienceError(
                    "resilience folder {path} was made with other settings ("
                    + ", ".join(c.replace("{", "{{").replace("}", "}}") for c in changed)
                    + " differ); use another {out}", OUT, {"path": self.out})
        elif self.out.is_dir() and any(p.name != LOCK_NAME for p in self.out.iterdir()):
            raise ResilienceError("output folder {path} holds something else (not a CIVA "
                                  "resilience folder); choose an empty or new {out}", OUT,
                                  {"path": self.out})

    def _write_meta(self) -> None:
        old = self._read_meta() or {}
        spec = {"conditions": sorted({c for c, _ in self.cells}),
                "prevalences": sorted({p for _, p in self.cells}), "seeds": self.seeds,
                "levels": self.levels, "refine": self.refine,
                "quasi_extinction": self.quasi_extinction}
        grids = sorted({json.dumps(g, sort_keys=True) for g in old.get("grids", [])}
                       | {json.dumps(spec, sort_keys=True)})
        write_json_atomic(self.out / "resilience.json", {
            "civa_version": __version__, **self._settings(),
            "stress_after_day": self.stress_day, "horizon": self.horizon,
            "grids": [json.loads(g) for g in grids]})

    # ---- the test -------------------------------------------------------------------------------
    def run(self, workers: int = 1, backend: str = "local", progress: bool = True,
            ray_address: str | None = None,
            log: Callable[[str], None] | None = None) -> ResilienceReport:
        """Run what is missing (coarse levels, refinement rounds, diagnostics), then write
        resilience.csv, diagnostics.csv, collapse_vs_stress.png and resilience.md.

        A run that fails is recorded in ``ResilienceReport.failures`` and the others go on;
        a rerun retries it. Cells with failed runs are still analysed on what finished.

        Raises:
            ResilienceError: the folder holds something else or another test's settings.
            FolderLockedError: another process works in the folder.
        """
        if backend not in ("local", "ray"):
            raise ResilienceError("unknown {backend} {got}; use local or ray",
                                  {"backend": "backend"}, {"got": repr(backend)})
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise _setting("workers", workers, "must be >= 1")
        start = time.perf_counter()
        load_runs(self.runs_path)
        self._check_folder()
        self.out.mkdir(parents=True, exist_ok=True)
        with FolderLock(self.out, holder="civa resilience"):
            rows = load_runs(self.runs_path)
            self._check_folder()
            self._write_meta()
            runner = _Runner(self, rows, workers, backend, progress, ray_address,
                             log or _stderr)
            with runner:
                state = self._design(runner)
            cells = self._write_outputs(rows, state)
            return ResilienceReport(runner.total, runner.already, runner.recovered, runner.ran,
                                    time.perf_counter() - start, self.out, cells,
                                    runner.failures)

    def _stress_points(self, cell: tuple[str, float], levels: Iterable[float]) -> list[Point]:
        c, p = cell
        return [Point("stress", c, p, s, mu) for mu in levels for s in self.seeds]

    def _design(self, runner: _Runner) -> dict[tuple[str, float], dict[str, Any]]:
        """Coarse levels, refinement rounds and diagnostics; returns per-cell state
        (``levels`` tried, ``diagnostics`` rows or None when not run).

        A stage with failed runs ends the design there: the next stages depend on every run
        of the earlier ones (a rerun retries the failed runs and goes on).
        """
        state: dict[tuple[str, float], dict[str, Any]] = {
            cell: {"levels": list(self.levels), "diagnostics": None} for cell in self.cells}
        runner.execute([pt for cell in self.cells for pt in self._stress_points(cell,
                        self.levels)], "coarse levels")
        if runner.failures:
            return state
        upper = None
        if self.stressor == "outage" and self.base.outage_prob > 0:
            upper = 1.0 / self.base.outage_prob  # beyond it the probability stays 1
        for k in range(self.refine):
            if runner.failures:
                return state
            todo = []
            for cell in self.cells:
                seeds, mu, collapsed = self._data(runner.rows, cell, state[cell]["levels"])
                if len(mu) == 0:
                    continue
                new = [float(x) for x in tipping.next_levels(
                    mu, collapsed, k=NEW_LEVELS_PER_ROUND, lo=0.0, hi=upper)
                    if math.isfinite(x) and x >= 0]
                new = [x for x in (check_levels(new) if new else [])
                       if x not in state[cell]["levels"]]
                state[cell]["levels"] = sorted(state[cell]["levels"] + new)
                todo += self._stress_points(cell, new)
            runner.execute(todo, f"refinement round {k + 1}")
        if runner.failures:
            return state
        if self.diagnostics:
            plans = {cell: self._diagnostic_plan(runner.rows, cell, state[cell]["levels"])
                     for cell in self.cells}
            runner.execute([pt for plan in plans.values() for pt in plan["points"]],
                           "fold diagnostics")
            for cell in self.cells:
                state[cell]["diagnostics"] = self._fold_diagnostics(runner.rows, cell,
                                                                    state[cell]["levels"],
                                                                    plans[cell])
        return state

    def _id(self, point: Point) -> str:
        return point_id(point, self.stressor)

    def _data(self, rows: Mapping[str, dict[str, Any]], cell: tuple[str, float],
              levels: Iterable[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(seeds, mu, collapsed) of the finished undisturbed runs of a cell."""
        found = [rows[rid] for pt in self._stress_points(cell, levels)
                 if (rid := self._id(pt)) in rows]
        return (np.array([r["seed"] for r in found], np.int64),
                np.array([r["mu"] for r in found], np.float64),
                np.array([bool(r["collapsed"]) for r in found], bool))

    # ---- fold diagnostics -----------------------------------------------------------------------
    def _shock_day(self) -> int:
        """The day of the one-day shocks: a few days into the stress."""
        return self.stress_day + 1 + max(1, min(SHOCK_OFFSET, self.horizon // 4))

    def _daily_cost(self, mu: float) -> float:
        """Upkeep per resident-day under stress level mu (before noise and idling)."""
        return self.base.upkeep * (mu if self.stressor == "upkeep" else 1.0)

    def _shock_size(self, rows: Mapping[str, dict[str, Any]], cell: tuple[str, float],
                    mu: float, share: float) -> float | None:
        """shock_upkeep adding ``share`` x the mean wealth on the day before the shock."""
        day = self._shock_day()
        means = []
        for pt in self._stress_points(cell, [mu]):
            row = rows.get(self._id(pt))
            if row is None or len(row["wealth"]) < day - 1 or row["population"][day - 2] <= 0:
                continue
            means.append(row["wealth"][day - 2] / row["population"][day - 2])
        cost = self._daily_cost(mu)
        if not means or cost <= 0:
            return None
        return round(1.0 + share * float(np.median(means)) / cost, 2)

    def _diagnostic_plan(self, rows: Mapping[str, dict[str, Any]], cell: tuple[str, float],
                         levels: list[float]) -> dict[str, Any]:
        """Which shocked runs the diagnostics of a cell need."""
        seeds, mu, collapsed = self._data(rows, cell, levels)
        mu_star = float("nan")
        if collapsed.any() and not collapsed.all():
            mu_star = tipping.fit_collapse(mu, collapsed).mu_star
        plan: dict[str, Any] = {"mu_star": mu_star, "points": [], "knockdown": None,
                                "pulses": {}, "note": ""}
        if not math.isfinite(mu_star):
            plan["note"] = ("no mu*: " + ("no run collapsed" if not collapsed.any() else
                                          "every run collapsed" if collapsed.all() else
                                          "collapse does not rise with stress"))
            return plan
        below = [x for x in levels if x < mu_star]
        if not below:
            plan["note"] = "no tried level below mu*"
            return plan
        plan["below"] = below
        if self._shock_day() >= self.stress_day + self.horizon:
            plan["note"] = "horizon too short for shocks"
            return plan
        c, p = cell
        day = self._shock_day()
        size = self._shock_size(rows, cell, below[-1], KNOCKDOWN_SHARE)
        if size is not None:
            plan["knockdown"] = (below[-1], size)
            plan["points"] += [Point("knockdown", c, p, s, below[-1], day, size)
                               for s in self.seeds]
        for level in below[-RECOVERY_LEVELS:]:
            size = self._shock_size(rows, cell, level, PULSE_SHARE)
            if size is not None:
                plan["pulses"][level] = size
                plan["points"] += [Point("pulse", c, p, s, level, day, size)
                                   for s in self.seeds]
        return plan

    def _fold_diagnostics(self, rows: Mapping[str, dict[str, Any]], cell: tuple[str, float],
                          levels: list[float], plan: dict[str, Any]) -> list[dict[str, Any]]:
        """The diagnostics.csv rows of a cell (per-level values, then one summary row per
        signature with ``held``)."""
        c, p = cell
        out: list[dict[str, Any]] = []

        def add(diagnostic: str, mu: float | None, value: Any, n: int, held: Any = None,
                note: str = "", scope: str = "cell") -> None:
            out.append({"condition": c, "prevalence": p, "stressor": self.stressor,
                        "diagnostic": diagnostic, "scope": scope, "mu": mu,
                        "value": _clean(value), "n": n,
                        "held": "" if held is None else bool(held), "note": note})

        if plan["note"] and "below" not in plan:
            for name in ("hysteresis", "recovery_time", "ac1_population", "bimodality"):
                add(name, None, None, 0, None, plan["note"])
            return out
        day = self._shock_day()
        stress = slice(self.stress_day, self.stress_day + self.horizon)  # days T0+1..T0+H

        # Hysteresis: knocked-down runs against undisturbed ones, same seeds and level.
        if plan["knockdown"] is not None:
            level, size = plan["knockdown"]
            pairs = [(rows[k], rows[u]) for s in self.seeds
                     if (k := self._id(Point("knockdown", c, p, s, level, day, size))) in rows
                     and (u := self._id(Point("stress", c, p, s, level))) in rows]
            shocked = np.array([bool(a["collapsed"]) for a, _ in pairs], bool)
            calm = np.array([bool(b["collapsed"]) for _, b in pairs], bool)
            if pairs:
                result = tipping.hysteresis(shocked, calm)
                held = (result["shocked_only"] >= HYSTERESIS_SHARE * result["n_seeds"]
                        and result["shocked_only"] > result["undisturbed_only"])
                add("hysteresis", level, result["share_shocked_only"], len(pairs), held,
                    f"knock-down shock_upkeep {size:g} on day {day}: shocked run collapsed, "
                    f"undisturbed persisted in {result['shocked_only']} seeds; the reverse in "
                    f"{result['undisturbed_only']}; both collapsed {result['both']}, neither "
                    f"{result['neither']}")
            else:
                add("hysteresis", level, None, 0, None, "no finished knock-down runs")
        else:
            add("hysteresis", None, None, 0, None, plan["note"] or "no knock-down runs")

        # Recovery time of total wealth after a small pulse, against the undisturbed run.
        medians = []
        for level, size in sorted(plan["pulses"].items()):
            times = []
            for s in self.seeds:
                a = rows.get(self._id(Point("pulse", c, p, s, level, day, size)))
                b = rows.get(self._id(Point("stress", c, p, s, level)))
                if a is None or b is None or not a["wealth"] or not b["wealth"]:
                    continue
                # Series index 0 is day 1: the shock day is index day - 1.
                t = tipping.recovery_time(np.asarray(a["wealth"]), day - 1,
                                          np.asarray(b["wealth"]), tol=RECOVERY_TOL,
                                          hold=RECOVERY_HOLD)
                times.append(math.inf if t is None else float(t))
            value = _median(times)
            medians.append((level, value))
            never = sum(math.isinf(t) for t in times)
            note = (f"days until total wealth is within {RECOVERY_TOL:g} of the undisturbed "
                    f"run for {RECOVERY_HOLD} days, after shock_upkeep {size:g} on day {day} "
                    f"(median over seeds; {never} never recovered: inf)")
            add("recovery_time", level, value, len(times), None, note, scope="level")
        held, note = _rises(medians)
        add("recovery_time", None, _trend_value(medians), len(medians), held, note)

        # Lag-1 autocorrelation and variance of the detrended series over the stress period.
        below = plan["below"]
        for series_name in ("population", "wealth"):
            ac, var = [], []
            for level in below:
                acs, vs = [], []
                for s in self.seeds:
                    row = rows.get(self._id(Point("stress", c, p, s, level)))
                    if row is None:
                        continue
                    x = np.asarray(row[series_name][stress], np.float64)
                    pop = np.asarray(row["population"][stress], np.float64)
                    x = x[: int(np.argmax(pop <= 0)) if (pop <= 0).any() else len(x)]
                    if len(x) < 4:
                        continue
                    acs.append(_as_float(tipping.lag1_autocorrelation(x)))
                    vs.append(_as_float(tipping.detrended_variance(x)))
                ac.append((level, _mean(acs)))
                var.append((level, _mean(vs)))
                add(f"ac1_{series_name}", level, _mean(acs), len(acs), scope="level")
                add(f"variance_{series_name}", level, _mean(vs), len(vs), scope="level")
            for name, values in ((f"ac1_{series_name}", ac), (f"variance_{series_name}", var)):
                held, note = _rises(values)
                add(name, None, _trend_value(values), len(values), held,
                    note + " (mean over seeds per level, tried levels below mu*)")

        # Bimodality of the final population at the tried level nearest mu*.
        nearest = min(levels, key=lambda x: (abs(x - plan["mu_star"]), x))
        finals = [rows[rid]["final_population"] for pt in self._stress_points(cell, [nearest])
                  if (rid := self._id(pt)) in rows]
        bc = _as_float(tipping.bimodality_coefficient(np.asarray(finals, np.float64))) \
            if len(finals) >= 4 else float("nan")
        add("bimodality", nearest, bc, len(finals),
            None if not math.isfinite(bc) else bc > BIMODAL,
            f"Sarle's coefficient of the final population; bimodal above {BIMODAL:.3f}"
            + ("" if len(finals) >= 4 else "; fewer than 4 runs"))
        return out

    # ---- outputs --------------------------------------------------------------------------------
    def _write_outputs(self, rows: Mapping[str, dict[str, Any]],
                       state: Mapping[tuple[str, float], dict[str, Any]]) -> list[dict]:
        cells, curves = [], []
        base_cell = next((cell for cell in self.cells if cell[0] == "baseline"), None)
        base_data = self._data(rows, base_cell, state[base_cell]["levels"]) \
            if base_cell is not None else None
        diag_rows = [r for cell in self.cells for r in state[cell]["diagnostics"] or []]
        for cell in self.cells:
            c, p = cell
            levels = state[cell]["levels"]
            seeds, mu, collapsed = self._data(rows, cell, levels)
            row: dict[str, Any] = {"condition": c, "prevalence": p, "stressor": self.stressor,
                                   "n_seeds": len(set(seeds.tolist())), "n_runs": len(mu),
                                   "levels": " ".join(_number_text(x) for x in levels)}
            status = "no_runs"
            if len(mu):
                fit = tipping.fit_collapse(mu, collapsed)
                margin = tipping.resilience_margin(seeds, mu, collapsed, n_boot=self.n_boot,
                                                   seed=0, level=self.ci)
                status = margin["status"]
                row.update({"d_FB": margin["d_fb"], "d_FB_low": margin["d_fb_low"],
                            "d_FB_high": margin["d_fb_high"], "mu_star": margin["mu_star"],
                            "mu_star_low": margin["mu_star_low"],
                            "mu_star_high": margin["mu_star_high"], "slope": margin["slope"],
                            "intercept": margin["intercept"],
                            "converged": bool(margin["converged"])})
                curves.append((cell, mu, collapsed, fit))
                shared = base_data is not None and cell != base_cell \
                    and bool(np.intersect1d(seeds, base_data[0]).size)
                if shared:
                    diff = tipping.paired_margin_difference(
                        (seeds, mu, collapsed), base_data, n_boot=self.n_boot, seed=0,
                        level=self.ci)
                    row.update({"d_FB_diff": diff["diff"], "d_FB_diff_low": diff["low"],
                                "d_FB_diff_high": diff["high"],
                                "n_shared": diff["n_shared"]})
            row["status"] = status
            diagnostics = state[cell]["diagnostics"]
            if status != "ok":
                row["reading"] = _STATUS_READING.get(status, status)
            elif diagnostics is None:
                row["reading"] = "" if not self.diagnostics else "diagnostics not run"
            else:
                row["reading"] = fold_verdict([r for r in diagnostics if r["scope"] == "cell"])
            cells.append({k: _clean(v) for k, v in row.items()})
        _write_table(self.out / "resilience.csv", RESILIENCE_COLUMNS, cells)
        _write_table(self.out / "diagnostics.csv", DIAGNOSTIC_COLUMNS, diag_rows)
        _plot(self.out / "collapse_vs_stress.png", curves, self.stressor,
              self.stress_day, self.horizon, self.quasi_extinction)
        (self.out / "resilience.md").write_text(
            self._markdown(cells, diag_rows), encoding="utf-8")
        return cells

    def _markdown(self, cells: list[dict[str, Any]], diag_rows: list[dict[str, Any]]) -> str:
        unit = ("extra cost of living (upkeep)" if self.stressor == "upkeep"
                else "extra outage probability (multiplier of outage_prob)")
        lines = ["# Resilience test", "",
                 f"Stressor **{self.stressor}** from day {self.stress_day + 1} for "
                 f"{self.horizon} days; collapsed = population on day "
                 f"{self.stress_day + self.horizon} below {self.quasi_extinction:g} x "
                 f"{self.base.n_agents} founders. d_FB = 100 (mu* - 1): the percentage of "
                 f"{unit} the community absorbs before collapse becomes more likely than not. "
                 f"{self.ci:.0%} intervals: bootstrap over seeds ({self.n_boot} resamples); "
                 "the difference to baseline is paired over shared seeds. Residents: "
                 f"{self.policy}.", "",
                 "| condition | prevalence | d_FB | interval | mu* | slope | seeds | "
                 "d_FB - baseline | interval | reading |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for r in cells:
            lines.append(
                f"| {r['condition']} | {r['prevalence']:g} | {_fmt(r.get('d_FB'))} | "
                f"{_interval(r.get('d_FB_low'), r.get('d_FB_high'))} | "
                f"{_fmt(r.get('mu_star'), 3)} | {_fmt(r.get('slope'), 2)} | {r['n_seeds']} | "
                f"{_fmt(r.get('d_FB_diff'))} | "
                f"{_interval(r.get('d_FB_diff_low'), r.get('d_FB_diff_high'))} | "
                f"{_reading_text(r.get('reading'))} |")
        if self.diagnostics:
            lines += ["", "## Fold diagnostics", "",
                      f"Rule: {FOLD_RULE}. Per-level values are in diagnostics.csv.", ""]
            for r in cells:
                mine = [d for d in diag_rows if d["condition"] == r["condition"]
                        and d["prevalence"] == r["prevalence"] and d["scope"] == "cell"]
                if r.get("status") != "ok" or not mine:
                    lines.append(f"- **{r['condition']} (prevalence {r['prevalence']:g})**: "
                                 f"{_reading_text(r.get('reading'))}.")
                    continue
                held = [d["diagnostic"] for d in mine if d["held"] is True]
                failed = [d["diagnostic"] for d in mine if d["held"] is False]
                unknown = [d["diagnostic"] for d in mine if d["held"] == ""]
                name = "a distance to a fold" if r.get("reading") == "fold" \
                    else "a collapse threshold"
                lines.append(f"- **{r['condition']} (prevalence {r['prevalence']:g})**: "
                             f"held: {', '.join(held) or 'none'}; failed: "
                             f"{', '.join(failed) or 'none'}"
                             + (f"; not measured: {', '.join(unknown)}" if unknown else "")
                             + f". mu* here reads as {name}.")
        return "\n".join(lines) + "\n"


_STATUS_READING = {"no_collapse": "no collapse at any level tried (mu* above them)",
                   "all_collapse": "collapse at every level tried (mu* below them)",
                   "not_increasing": "collapse does not rise with stress (no mu*)",
                   "no_runs": "no finished runs"}


def fold_verdict(summary_rows: Sequence[Mapping[str, Any]]) -> str:
    """``fold`` or ``collapse threshold`` from a cell's diagnostic summary rows (FOLD_RULE)."""
    held = {r["diagnostic"] for r in summary_rows if r.get("held") is True}
    others = held & {"recovery_time", "ac1_population", "bimodality"}
    return "fold" if "hysteresis" in held and len(others) >= 2 else "collapse threshold"


# ---- running the design ------------------------------------------------------------------------
class _Runner:
    """Runs design points through the sweep's backends, keeping runs.csv up to date."""

    def __init__(self, test: Resilience, rows: dict[str, dict[str, Any]], workers: int,
                 backend: str, progress: bool, ray_address: str | None,
                 log: Callable[[str], None]) -> None:
        self.test, self.rows = test, rows
        self.workers, self.backend, self.progress = workers, backend, progress
        self.ray_address, self.log = ray_address, log
        self.total = self.already = self.recovered = self.ran = 0
        self.failures: list[tuple[str, str]] = []
        self._ray_started = False
        self._last_save = 0.0
        for row in rows.values():  # collapse follows the latest quasi_extinction
            row["collapsed"] = int(row["final_population"]
                                   < test.quasi_extinction * row["agents"])

    def __enter__(self) -> _Runner:
        if self.backend == "ray":
            try:
                import ray
            except ImportError:
                raise SettingError("{backend} ray needs Ray: pip install 'civa_env[ray]'",
                                   {"backend": "backend"}) from None
            if not ray.is_initialized():
                if self.ray_address:
                    ray.init(address=self.ray_address, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.workers, include_dashboard=False,
                             log_to_driver=False)
                self._ray_started = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.save()
        if self._ray_started:
            import ray

            ray.shutdown()

    def _task(self, point: Point) -> Task:
        test = self.test
        env = {**test.env, STRESSORS[test.stressor]: point.mu,
               "shock_day": point.shock_day, "shock_upkeep": point.shock_upkeep}
        rid = test._id(point)
        return Task(rid, point.condition, point.prevalence, point.seed,
                    str(test.out / "runs" / rid), env, test.policy, test.policy_kwargs,
                    plots=False, quasi_extinction=test.quasi_extinction)

    def execute(self, points: Sequence[Point], stage: str) -> None:
        """Run the points without a row (recovering finished run folders first)."""
        points = list(dict.fromkeys(points))
        tasks = {self.test._id(pt): (pt, self._task(pt)) for pt in points}
        self.total += len(tasks)
        already = sum(rid in self.rows for rid in tasks)
        self.already += already
        todo: list[Task] = []
        recovered = 0
        for rid, (pt, task) in tasks.items():
            if rid in self.rows:
                continue
            if is_complete_run(Path(task.run_dir)):
                try:
                    self._done(pt, task, run_task(task))
                    recovered += 1
                    continue
                except Exception as err:  # a folder that cannot be read back is run again
                    stop = interruption(err)
                    if stop is not None:
                        raise stop from err
            todo.append(task)
        self.recovered += recovered
        self.log(f"resilience: {stage}: {len(tasks)} runs ({already} in runs.csv, "
                 f"{recovered} recovered from run folders, {len(todo)} to run)")
        if not todo:
            self.save()
            return
        # A progress bar on a terminal; plain lines (each tenth of the stage) otherwise.
        bar = Progress(len(todo), f"resilience: {stage}", "run", enabled=self.progress,
                       write=self.log)

        def done(row: dict[str, Any]) -> None:
            rid = row["run_id"]
            self._done(tasks[rid][0], tasks[rid][1], row)
            self.ran += 1

        def failed(task: Task, err: BaseException) -> None:
            self.failures.append((task.run_id, " ".join(f"{type(err).__name__}: {err}"
                                                         .split())))

        before = len(self.failures)
        try:
            if self.backend == "ray":
                sweep_module._run_ray(todo, self.workers, done, failed, bar, self.ray_address)
            elif self.workers == 1:
                sweep_module._run_serial(todo, done, failed, bar)
            else:
                sweep_module._run_pool(todo, self.workers, done, failed, bar)
        finally:
            self.save()
        if len(self.failures) > before:
            self.log(f"resilience: {stage}: {len(self.failures) - before} runs failed; the "
                     "later stages wait for a rerun, which retries them")

    def _done(self, point: Point, task: Task, sweep_row: Mapping[str, Any]) -> None:
        self.rows[task.run_id] = _run_row(point, task, sweep_row, self.test)
        if time.monotonic() - self._last_save > 1.0:
            self.save()

    def save(self) -> None:
        order = {k: i for i, k in enumerate(KINDS)}
        ranked = sorted(self.rows.values(), key=lambda r: (order[r["kind"]], r["condition"],
                                                           r["prevalence"], r["mu"],
                                                           r["shock_upkeep"], r["seed"]))
        _write_table(self.test.runs_path, RUN_COLUMNS, ranked)
        self._last_save = time.monotonic()


def _run_row(point: Point, task: Task, sweep_row: Mapping[str, Any],
             test: Resilience) -> dict[str, Any]:
    """The runs.csv row of a finished run (series from its metrics.json where readable)."""
    metrics = complete_metrics(Path(task.run_dir))
    days = task.env["max_days"]
    if metrics is not None:
        population = [float(x) for x in metrics["population"]]
        # As runs.csv writes them (6 significant digits), so that a row computed now and one
        # read back give the same shock sizes (and so the same run ids).
        wealth = [float(f"{m * n:.6g}")
                  for m, n in zip(metrics["wealth_mean"], population, strict=False)]
        wealth += [0.0] * (days - len(wealth))
        final, extinct, naup = (metrics["final_population"], metrics["extinct_day"],
                                metrics["nAUP"])
    else:  # a remote Ray worker's folder: the sweep row carries the population only
        population = [float(x) for x in str(sweep_row["population"]).split()]
        wealth = []
        final, naup = sweep_row["final_population"], sweep_row["nAUP"]
        extinct = sweep_row["extinct_day"] or None
    agents = task.env["n_agents"]
    t0 = test.stress_day
    return {"run_id": task.run_id, "kind": point.kind, "condition": point.condition,
            "prevalence": point.prevalence, "seed": point.seed, "stressor": test.stressor,
            "mu": point.mu, "shock_day": point.shock_day, "shock_upkeep": point.shock_upkeep,
            "policy": task.policy, "agents": agents,
            "collapsed": int(final < test.quasi_extinction * agents),
            "final_population": float(final),
            "population_at_stress": float(population[t0 - 1]) if t0 >= 1 else float(agents),
            "min_population": float(min(population[t0:] or [final])),
            "extinct_day": None if extinct in ("", None) else int(extinct),
            "nAUP": float(naup), "population": population, "wealth": wealth}


# ---- small helpers -----------------------------------------------------------------------------
def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _as_float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _mean(values: Sequence[float]) -> float:
    ok = _finite(values)
    return float(np.mean(ok)) if ok else float("nan")


def _median(values: Sequence[float]) -> float:
    """Median where never-recovered runs (inf) count as the largest values."""
    ok = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.median(ok)) if ok else float("nan")


def _rises(points: Sequence[tuple[float, float]]) -> tuple[bool | None, str]:
    """Whether a per-level value rises towards mu* (Kendall's tau > 0 over the levels, and
    the value at the highest level above the one at the lowest)."""
    ok = [(mu, v) for mu, v in points if v is not None and not math.isnan(v)]
    if len(ok) < 2:
        return None, "fewer than two levels with a value"
    tau = _kendall([mu for mu, _ in ok], [v for _, v in ok])
    rises = tau > 0 and ok[-1][1] > ok[0][1]
    return rises, f"Kendall's tau {tau:+.2f} over {len(ok)} levels"


def _trend_value(points: Sequence[tuple[float, float]]) -> float:
    ok = [(mu, v) for mu, v in points if v is not None and not math.isnan(v)]
    return _kendall([mu for mu, _ in ok], [v for _, v in ok]) if len(ok) >= 2 else float("nan")


def _kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-a (inf values compare as the largest)."""
    n, s = len(x), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += int(np.sign(x[j] - x[i]) * np.sign(_cmp(y[j], y[i])))
    return s / (n * (n - 1) / 2) if n > 1 else float("nan")


def _cmp(a: float, b: float) -> float:
    if a == b:
        return 0.0
    return 1.0 if a > b else -1.0


def _clean(value: Any) -> Any:
    """Plain Python values; NaN becomes None (undefined), infinities stay."""
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def _interval(low: Any, high: Any) -> str:
    if low is None or high is None:
        return "-"
    return f"[{_fmt(low)}, {_fmt(high)}]"


def _reading_text(reading: Any) -> str:
    if reading == "fold":
        return "distance to a fold"
    return reading or "-"


def _plot(path: Path, curves: Sequence[tuple], stressor: str, stress_day: int, horizon: int,
          q: float) -> None:
    """P(collapse) against mu: observed share per level (points, sized by runs) and the
    logistic fit (curve), one colour per cell."""
    from civa_env.experiments.plots import _pyplot

    plt = _pyplot()
    many = len(curves) > 6  # then the legend goes beside the axes and colours come from tab20
    fig, ax = plt.subplots(figsize=(10.5, 5) if many else (7, 4.2))
    palette = plt.get_cmap("tab20") if len(curves) > 10 else None
    hi = max([float(np.max(mu)) for _, mu, _, _ in curves] or [1.0])
    grid = np.linspace(0.0, max(hi, 1.0) * 1.05, 300)
    for k, ((c, p), mu, collapsed, fit) in enumerate(curves):
        colour = palette(k % 20) if palette is not None else f"C{k % 10}"
        style = "-" if k < 20 else "--"
        label = c if c == "baseline" else f"{c} (p={p:g})"
        levels = np.unique(mu)
        share = np.array([collapsed[mu == x].mean() for x in levels])
        counts = np.array([(mu == x).sum() for x in levels])
        ax.scatter(levels, share, s=12 + 6 * counts, color=colour, alpha=0.75, zorder=3)
        if math.isfinite(fit.intercept) and math.isfinite(fit.slope):
            z = np.clip(fit.intercept + fit.slope * grid, -50, 50)
            crossing = collapsed.any() and not collapsed.all() and math.isfinite(fit.mu_star)
            if crossing:
                label += f", mu* {fit.mu_star:.2f}"
            ax.plot(grid, 1.0 / (1.0 + np.exp(-z)), color=colour, ls=style, label=label)
            if crossing and 0 <= fit.mu_star <= grid[-1]:
                ax.axvline(fit.mu_star, color=colour, lw=0.8, ls=":")
        else:
            ax.plot([], [], color=colour, label=f"{label} (no fit)")
    ax.axhline(0.5, color="grey", lw=0.6)
    ax.axvline(1.0, color="grey", lw=0.6, ls="--")  # no stress: d_FB counts from here
    xlabel = ("upkeep multiplier mu" if stressor == "upkeep"
              else "outage probability multiplier mu")
    ax.set(xlabel=xlabel, ylabel="P(collapse)", ylim=(-0.03, 1.03),
           title=f"Collapse (< {q:g} x founders on day {stress_day + horizon}) against "
                 f"stress from day {stress_day + 1}")
    ax.grid(alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
