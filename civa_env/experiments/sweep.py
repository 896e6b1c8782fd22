"""Sweeps: a grid of communities (value condition x prevalence x seed), run in parallel.

A sweep folder holds ``sweep.json`` (the settings every run shares), ``runs/<run_id>/`` (one
run folder each) and ``results.csv`` (one row per finished run). The table is rewritten
atomically (temporary file + ``os.replace``), so it is never half-written; a run counts as
finished once its folder holds a complete ``metrics.json``. Rerunning an interrupted sweep
reads the table, recovers the rows of runs that finished after the last write from their
folders, and runs only what is missing: no run is done twice, no row is lost or duplicated.
A run that fails is reported and the others go on; a rerun retries it. One sweep process at a
time works in a folder (an ``fcntl.flock`` on ``OUT/.lock``).

Holder-count sweeps: ``holder_prevalences(range(n + 1), n)`` gives the prevalence of every
number of founding holders k = 0..n (k / n, checked to give back k), for a grid of nested,
paired holder sets (the founder order is seeded). Every row carries ``holders`` and
``collapsed`` (the final population below ``quasi_extinction`` x the founders); ``collapsed``
is recomputed for the whole table on every sweep call, so it always follows the last
``quasi_extinction`` given. Runs with LLM residents also carry ``llm_tokens`` and
``llm_cost_usd`` (from ``metrics.json``'s ``llm.usage``), and ``SweepReport.usage`` sums
them per cell (``usage_by_cell``).

Prevalence 0 is the baseline world (paired worlds: the same seed gives exactly the same run,
whatever the condition; tests/world/test_paired_worlds.py), so every prevalence-0 cell of a
seed shares one run: baseline's when the grid has baseline, else the first condition's (or a
prevalence-0 run of that seed already in the table). The other cells get a copy of its row
whose ``same_as`` column names the run that was done (empty for the rows of runs done); they
have no run folder. With holder counts (``--holders``) k = 0 is prevalence 0 and is shared
the same way, and with LLM residents it makes the pairing exact. ``SweepReport.shared`` counts
the grid's cells that share another's run, ``SweepReport.reused`` the rows filled so now.

Backends: a local process pool (``concurrent.futures``, the default) or Ray
(``ray.init(num_cpus=workers)`` locally, or ``address=`` of a running cluster). Pool workers
end with the sweep process, whatever ends it (``kill -9`` included), and a SIGTERM or Ctrl-C
of the sweep stops their runs (recorded as interrupted, redone by a rerun) rather than
waiting for them: see ``civa_env.experiments.signals``. Progress is a tqdm bar on a terminal
and plain lines otherwise (``civa_env.experiments.progress``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from civa_env import __version__
from civa_env.experiments.progress import Progress
from civa_env.experiments.results import (
    BEHAVIOUR_RATES,
    COLUMNS,
    METRICS,
    NUMERIC,
    ResultsError,
    load_results,
    write_results,
)
from civa_env.experiments.runfolder import (
    LOCK_FDS,
    LOCK_NAME,
    OUT,
    FolderLock,
    FolderLockedError,
    SettingError,
    close_inherited_locks,
    complete_metrics,
    is_complete_run,
    write_json_atomic,
)
from civa_env.experiments.runner import format_mix, parse_mix, run_community
from civa_env.experiments.signals import in_worker, init_worker, interruption, stop_processes
from civa_env.world.config import Config, check_prevalence
from civa_env.world.values import ValueCondition, holder_count

__all__ = ["BEHAVIOUR_RATES", "COLUMNS", "GRID_FIELDS", "METRICS", "NUMERIC",
           "QUASI_EXTINCTION", "FolderLockedError", "ResultsError", "Sweep", "SweepError",
           "SweepReport", "Task", "check_quasi_extinction", "collapse_fields",
           "holder_prevalences", "load_results", "make_grid", "matches", "row_from_metrics",
           "run_id", "run_task", "shared_row", "usage_by_cell", "write_results"]

# Fields a sweep fixes for all its runs; the grid sets condition, prevalence and seed.
GRID_FIELDS = ("condition", "prevalence", "seed")
# A run has collapsed when its final population is below this fraction of its founders.
QUASI_EXTINCTION = 0.2


class SweepError(SettingError):
    """A sweep folder that does not fit the requested sweep."""


def run_id(condition: str, prevalence: float, seed: int) -> str:
    """Folder name and table key of one run: ``with-power__p0.50__s3``.

    The prevalence is written with two decimals when they give it back exactly (``p0.50``),
    and in full otherwise (``p0.125``), so distinct prevalences never share an id.
    """
    slug = str(condition).replace(":", "-")
    p = float(prevalence) + 0.0  # -0.0 -> 0.0
    text = f"{p:.2f}"
    if float(text) != p:
        text = repr(p)
    return f"{slug}__p{text}__s{seed}"


def holder_prevalences(holders: Sequence[int], n_agents: int) -> list[float]:
    """The prevalence of each number of founding holders, sorted and without repeats.

    k / n_agents, checked to give back k through ``values.holder_count`` (it does for every
    k and n up to thousands; otherwise the nearest float that does is taken).

    Raises:
        ValueError: a count that is not a whole number in 0..n_agents.
    """
    out = []
    for k in sorted(set(holders)):
        if isinstance(k, bool) or int(k) != k or not 0 <= k <= n_agents:
            raise ValueError(f"holder count {k!r} is outside 0..{n_agents} (the number of "
                             "founders)")
        k = int(k)
        # k / n, or else the nearest float either side that gives back k.
        up = down = k / n_agents
        candidates = [up]
        for _ in range(4):
            up, down = float(np.nextafter(up, 1.0)), float(np.nextafter(down, 0.0))
            candidates += [up, down]
        found = [p for p in candidates if holder_count(p, n_agents) == k]
        if not found:
            raise ValueError(f"no prevalence gives {k} holders of {n_agents}")
        out.append(found[0])
    return out


def check_quasi_extinction(value: float) -> float:
    """A quasi-extinction fraction, in (0, 1).

    Raises:
        SettingError: outside (0, 1) or not a number.
    """
    if not isinstance(value, (int, float)) or not 0 < value < 1:
        raise SettingError("{quasi_extinction} must be a fraction in (0, 1), got {got}",
                           {"quasi_extinction": "quasi_extinction"}, {"got": value})
    return float(value)


def collapse_fields(final_population: float, agents: int,
                    quasi_extinction: float) -> dict[str, Any]:
    """``collapsed`` (final population below ``quasi_extinction`` x founders) and the fraction."""
    return {"collapsed": bool(final_population < quasi_extinction * agents),
            "quasi_extinction": quasi_extinction}


@dataclass(frozen=True)
class Task:
    """One run of a sweep (picklable: sent to workers)."""

    run_id: str
    condition: str
    prevalence: float
    seed: int
    run_dir: str
    env: dict[str, Any]  # Config.to_dict() without the grid fields
    policy: str
    policy_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    plots: bool = False
    quasi_extinction: float = QUASI_EXTINCTION


def make_grid(conditions: Sequence[str], prevalences: Sequence[float], seeds: int,
              first_seed: int = 0) -> list[tuple[str, float, int]]:
    """(condition, prevalence, seed) triples; ``baseline`` runs once per seed (prevalence 0).

    Raises:
        ValueError: an unknown condition, a prevalence outside [0, 1], seeds < 1 (a
            ``SettingError``), or two grid points with one run id.
    """
    if seeds < 1:
        raise SettingError("{seeds} must be >= 1, got {got}", {"seeds": "seeds"},
                           {"got": seeds})
    conditions = [str(ValueCondition.parse(c)) for c in conditions]
    for p in prevalences:
        check_prevalence(p)
    out = []
    for condition in dict.fromkeys(conditions):
        levels = [0.0] if condition == "baseline" else sorted(set(prevalences))
        for p in levels:
            for s in range(first_seed, first_seed + seeds):
                out.append((condition, float(p), s))
    ids: dict[str, tuple[str, float, int]] = {}
    for point in out:
        rid = run_id(*point)
        if rid in ids:
            raise ValueError(f"grid points {ids[rid]} and {point} share the run id {rid!r}")
        ids[rid] = point
    return out


def row_from_metrics(task: Task, metrics: dict[str, Any]) -> dict[str, Any]:
    """The results.csv row of a finished run."""
    rates = metrics["behaviour_rates"]
    agents = task.env["n_agents"]
    row = {"run_id": task.run_id, "condition": task.condition, "prevalence": task.prevalence,
           "holders": holder_count(task.prevalence, agents), "seed": task.seed, "same_as": "",
           "policy": task.policy, "agents": agents, "days": task.env["max_days"]}
    for m in METRICS:
        row[m] = metrics[m]
    row["extinct_day"] = "" if metrics["extinct_day"] is None else metrics["extinct_day"]
    row.update(collapse_fields(metrics["final_population"], agents, task.quasi_extinction))
    for name in BEHAVIOUR_RATES:
        row[name] = rates[name[: -len("_rate")]]
    row.update(llm_usage_fields(metrics))
    row["population"] = " ".join(f"{x:g}" for x in metrics["population"])
    return row


def shared_row(task: Task, source: dict[str, Any]) -> dict[str, Any]:
    """The row of a prevalence-0 cell that shares ``source``'s run (the baseline world of the
    same seed): ``source``'s figures under the cell's own id, condition and prevalence, with
    ``same_as`` naming the run that was done."""
    row = dict(source)
    if isinstance(row.get("population"), list):
        row["population"] = list(row["population"])
    row.update({"run_id": task.run_id, "condition": task.condition,
                "prevalence": task.prevalence,
                "holders": holder_count(task.prevalence, task.env["n_agents"]),
                "seed": task.seed, "same_as": source.get("same_as") or source["run_id"]})
    return row


def _shares(row: dict[str, Any]) -> bool:
    """Whether a row is a copy of another run's (``same_as`` set)."""
    return bool(row.get("same_as"))


def llm_usage_fields(metrics: dict[str, Any]) -> dict[str, Any]:
    """``llm_tokens`` and ``llm_cost_usd`` of a run: the sums over its LLM policies
    (``llm.usage`` of metrics.json); NaN without LLM residents, the cost NaN without prices."""
    usage = (metrics.get("llm") or {}).get("usage") or {}
    if not usage:
        return {"llm_tokens": math.nan, "llm_cost_usd": math.nan}
    costs = [u["cost_usd"] for u in usage.values() if u.get("cost_usd") is not None]
    return {"llm_tokens": sum(int(u["tokens"]) for u in usage.values()),
            "llm_cost_usd": float(sum(costs)) if costs else math.nan}


def usage_by_cell(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """LLM tokens and cost summed over the runs of each (condition, prevalence) cell, in
    the rows' order of first appearance; cells whose runs have no LLM tokens are left out,
    and so are the rows that share another run's (``same_as``): their tokens were spent once.

    ``llm_cost_usd`` is None when no run of the cell has a cost estimate.
    """
    cells: dict[tuple[str, float], dict[str, Any]] = {}
    for row in rows:
        if _shares(row):
            continue
        tokens = row.get("llm_tokens", math.nan)
        if tokens is None or tokens == "" or math.isnan(float(tokens)):
            continue
        cell = cells.setdefault((row["condition"], float(row["prevalence"])), {
            "condition": row["condition"], "prevalence": float(row["prevalence"]), "runs": 0,
            "llm_tokens": 0, "llm_cost_usd": None})
        cell["runs"] += 1
        cell["llm_tokens"] += int(float(tokens))
        cost = row.get("llm_cost_usd", math.nan)
        if cost not in (None, "") and not math.isnan(float(cost)):
            cell["llm_cost_usd"] = (cell["llm_cost_usd"] or 0.0) + float(cost)
    return list(cells.values())


def matches(task: Task, record: dict[str, Any]) -> bool:
    """Whether a results row or a metrics.json is this task's grid point."""
    try:
        return (str(record["condition"]) == task.condition
                and float(record["prevalence"]) == task.prevalence
                and int(record["seed"]) == task.seed)
    except (KeyError, TypeError, ValueError):
        return False


def run_task(task: Task) -> dict[str, Any]:
    """Run one task (or read it back if its folder already holds a finished run)."""
    run_dir = Path(task.run_dir)
    metrics = complete_metrics(run_dir)
    if metrics is not None and matches(task, metrics):
        return row_from_metrics(task, metrics)
    # Otherwise the folder holds no finished run, or another grid point's run under this id
    # (ids of older versions could collide).
    if run_dir.exists():
        # An unfinished run of this sweep (interrupted, maybe mid-write): the sweep owns
        # runs/<run_id>, so it starts over.
        shutil.rmtree(run_dir)
    cfg = Config.from_dict({**task.env, "condition": task.condition,
                            "prevalence": task.prevalence, "seed": task.seed})
    result = run_community(cfg, task.policy, task.seed, run_dir, progress=False,
                           plots=task.plots, overwrite=True, policy_kwargs=task.policy_kwargs)
    return row_from_metrics(task, result.summary)


# ---- the sweep -----------------------------------------------------------------------------------
@dataclass
class SweepReport:
    """What a sweep call did."""

    total: int  # runs in the grid
    already: int  # rows found in results.csv
    recovered: int  # rows rebuilt from finished run folders
    ran: int  # runs computed now
    seconds: float
    results: Path
    failures: list[tuple[str, str]] = field(default_factory=list)  # (run_id, error), grid order
    usage: list[dict[str, Any]] = field(default_factory=list)  # usage_by_cell of the grid's rows
    shared: int = 0  # prevalence-0 cells of the grid that share another cell's run (same_as)
    reused: int = 0  # rows of such cells filled now (no run of their own)


class Sweep:
    """A resumable grid of runs in one folder.

    One sweep process at a time may work in a folder: ``run`` holds an exclusive
    ``fcntl.flock`` on ``OUT/.lock`` from before its first write to its end.
    """

    def __init__(self, out: Path, conditions: Sequence[str], prevalences: Sequence[float],
                 seeds: int, base: Config | None = None, policy: str = "scripted",
                 policy_kwargs: dict[str, dict[str, Any]] | None = None, first_seed: int = 0,
                 run_plots: bool = False, quasi_extinction: float = QUASI_EXTINCTION) -> None:
        self.out = Path(out)
        self.quasi_extinction = check_quasi_extinction(quasi_extinction)
        self.grid = make_grid(conditions, prevalences, seeds, first_seed)
        self.policy = format_mix(parse_mix(policy))
        # As JSON reads it back, so that settings compare equal to sweep.json's.
        self.policy_kwargs = json.loads(json.dumps(policy_kwargs or {}, sort_keys=True))
        base = base or Config()
        self.env = {k: v for k, v in base.to_dict().items() if k not in GRID_FIELDS}
        self.run_plots = run_plots
        self.results_path = self.out / "results.csv"

    def tasks(self) -> list[Task]:
        """One task per grid point."""
        return [Task(run_id(c, p, s), c, p, s, str(self.out / "runs" / run_id(c, p, s)),
                     self.env, self.policy, self.policy_kwargs, self.run_plots,
                     self.quasi_extinction)
                for c, p, s in self.grid]

    def _settings(self) -> dict[str, Any]:
        return {"env": self.env, "policy": self.policy, "policy_kwargs": self.policy_kwargs}

    def _read_meta(self) -> dict[str, Any] | None:
        meta = self.out / "sweep.json"
        if not meta.exists():
            return None
        try:
            with open(meta, encoding="utf-8") as f:
                old = json.load(f)
        except ValueError:
            raise SweepError(f"{meta} is not valid JSON; move it away") from None
        if not isinstance(old, dict):
            raise SweepError(f"{meta} is not a sweep settings file; move it away")
        return old

    def _check_folder(self) -> None:
        """Refuse a folder that is not this sweep's (read-only: nothing is written)."""
        if self.out.exists() and not self.out.is_dir():
            raise SweepError("sweep output {path} is a file; choose another {out}", OUT,
                             {"path": self.out})
        old = self._read_meta()
        if old is not None:
            old.setdefault("policy_kwargs", {})  # sweep.json of versions without it
            settings = self._settings()
            if any(old.get(k) != v for k, v in settings.items()):
                raise self._settings_differ(old)
        elif self.out.is_dir() and any(p.name != LOCK_NAME for p in self.out.iterdir()):
            raise SweepError("output folder {path} holds something else (not a CIVA sweep "
                             "folder); choose an empty or new {out}", OUT, {"path": self.out})

    def _settings_differ(self, old: dict[str, Any]) -> SweepError:
        """The error naming what differs between sweep.json's settings and this sweep's."""
        # Config fields and "policy" are named as they are; the policy keyword arguments
        # are a setting the command line spells with its own flags.
        changed = sorted(key for key in set(old.get("env", {})) | set(self.env)
                         if old.get("env", {}).get(key) != self.env.get(key))
        # Braces doubled: the names become part of the message template.
        changed = [str(key).replace("{", "{{").replace("}", "}}") for key in changed]
        if old.get("policy") != self.policy:
            changed.append("policy")
        if old.get("policy_kwargs") != self.policy_kwargs:
            changed.append("{policy_kwargs}")
        return SweepError("sweep folder {path} was made with other settings ("
                          + ", ".join(changed) + " differ); use another {out}",
                          {**OUT, "policy_kwargs": "policy_kwargs"}, {"path": self.out})

    def _write_meta(self) -> None:
        old = self._read_meta() or {}
        grids = sorted({json.dumps(g) for g in old.get("grids", [])}
                       | {json.dumps(self._grid_spec())})
        write_json_atomic(self.out / "sweep.json", {
            "civa_version": __version__, **self._settings(),
            "grids": [json.loads(g) for g in grids]})

    def _grid_spec(self) -> dict[str, Any]:
        return {"conditions": sorted({c for c, _, _ in self.grid}),
                "prevalences": sorted({p for _, p, _ in self.grid}),
                "seeds": sorted({s for _, _, s in self.grid})}

    def run(self, workers: int = 1, backend: str = "local", progress: bool = True,
            ray_address: str | None = None,
            on_row: Callable[[dict[str, Any]], None] | None = None) -> SweepReport:
        """Run what is missing; rows are saved as runs finish (at most once a second).

        A run that fails is recorded in ``SweepReport.failures`` and the others go on; every
        finished run gets its row. Rerunning the sweep retries the failed and unfinished runs.

        Raises:
            SweepError: the folder holds something else or another sweep's settings.
            FolderLockedError: another sweep process is working in the folder.
            ResultsError: a corrupt results.csv (nothing is written then).
        """
        if backend not in ("local", "ray"):
            raise ValueError(f"unknown backend {backend!r}; use 'local' or 'ray'")
        if workers < 1:
            raise SettingError("{workers} must be >= 1, got {got}", {"workers": "workers"},
                               {"got": workers})
        start = time.perf_counter()
        # Check before anything is written: a corrupt table or a foreign folder stops here.
        load_results(self.results_path)
        self._check_folder()
        self.out.mkdir(parents=True, exist_ok=True)
        with FolderLock(self.out):
            # Again under the lock: another sweep may have changed the folder meanwhile.
            rows = load_results(self.results_path)
            self._check_folder()
            self._write_meta()
            return self._run_locked(rows, workers, backend, progress, ray_address, on_row,
                                    start)

    def _run_locked(self, rows: dict[str, dict[str, Any]], workers: int, backend: str,
                    progress: bool, ray_address: str | None,
                    on_row: Callable[[dict[str, Any]], None] | None,
                    start: float) -> SweepReport:
        tasks = self.tasks()
        by_id = {t.run_id: t for t in tasks}
        for rid in [r for r in rows if r in by_id and not matches(by_id[r], rows[r])]:
            del rows[rid]  # a row of another grid point under this id: run it again
        for row in rows.values():  # rows of older tables, or of another quasi_extinction
            row.update(collapse_fields(row["final_population"], row["agents"],
                                       self.quasi_extinction))
        already = sum(t.run_id in rows for t in tasks)
        recovered = 0
        for t in tasks:
            if t.run_id not in rows and is_complete_run(Path(t.run_dir)):
                row = run_task(t)  # reads the folder back (or reruns a mismatched one)
                rows[t.run_id] = row
                recovered += 1
        order = {t.run_id: k for k, t in enumerate(tasks)}
        saver = _Saver(self.results_path, rows, order)
        # Prevalence 0 is the baseline world: one run per seed serves every cell at 0.
        waiting: dict[str, list[Task]] = {}  # run id -> the cells that share its run
        reused = 0
        for seed, group in _zero_groups(tasks).items():
            missing = [t for t in group if t.run_id not in rows]
            if not missing:
                continue
            source = _zero_source(rows, seed, order)
            if source is None:  # no row of the seed's baseline world yet: run the first
                waiting[missing[0].run_id] = missing[1:]
                continue
            for t in missing:
                rows[t.run_id] = shared_row(t, source)
                reused += 1
        saver.save()
        sharing = {t.run_id for group in waiting.values() for t in group}
        todo = [t for t in tasks if t.run_id not in rows and t.run_id not in sharing]
        failures: dict[str, str] = {}

        def done(row: dict[str, Any]) -> None:
            nonlocal reused
            added = [row] + [shared_row(t, row) for t in waiting.pop(row["run_id"], [])]
            saver.add(row)
            for other in added[1:]:
                saver.add(other, ran=False)
                reused += 1
            if on_row is not None:
                for r in added:
                    on_row(r)

        def failed(task: Task, err: BaseException) -> None:
            failures[task.run_id] = " ".join(f"{type(err).__name__}: {err}".split())
            for other in waiting.pop(task.run_id, []):  # the cells that were to share it
                failures[other.run_id] = f"shares the failed run {task.run_id}"

        try:
            if todo:
                bar = _bar(len(todo), progress)
                if backend == "ray":
                    _run_ray(todo, workers, done, failed, bar, ray_address)
                elif workers == 1:
                    _run_serial(todo, done, failed, bar)
                else:
                    _run_pool(todo, workers, done, failed, bar)
        finally:
            saver.save()
        ordered = [(rid, failures[rid]) for rid in sorted(failures, key=order.__getitem__)]
        usage = usage_by_cell([rows[t.run_id] for t in tasks if t.run_id in rows])
        shared = sum(_shares(rows[t.run_id]) for t in tasks if t.run_id in rows)
        return SweepReport(len(tasks), already, recovered, saver.added,
                           time.perf_counter() - start, self.results_path, ordered, usage,
                           shared=shared, reused=reused)


def _zero_groups(tasks: Sequence[Task]) -> dict[int, list[Task]]:
    """The prevalence-0 tasks of each seed, baseline first, then in grid order."""
    groups: dict[int, list[Task]] = {}
    for t in tasks:
        if t.prevalence == 0.0:
            groups.setdefault(t.seed, []).append(t)
    for group in groups.values():
        group.sort(key=lambda t: t.condition != "baseline")  # stable: grid order otherwise
    return groups


def _zero_source(rows: dict[str, dict[str, Any]], seed: int,
                 order: dict[str, int]) -> dict[str, Any] | None:
    """A row of the seed's baseline world (a prevalence-0 run, of this grid or of an earlier
    one in the table): a run's own row before a copy, baseline's before the others'."""
    found = [r for r in rows.values() if float(r["prevalence"]) == 0.0 and int(r["seed"]) == seed]
    if not found:
        return None
    big = len(order)
    return min(found, key=lambda r: (_shares(r), r["condition"] != "baseline",
                                     order.get(r["run_id"], big), r["run_id"]))


class _Saver:
    """Keeps the rows and rewrites results.csv atomically, at most once a second."""

    def __init__(self, path: Path, rows: dict[str, dict[str, Any]], order: dict[str, int]):
        self.path, self.rows, self.order = path, rows, order
        self.added = 0  # rows of runs done now
        self._last = 0.0

    def add(self, row: dict[str, Any], ran: bool = True) -> None:
        self.rows[row["run_id"]] = row
        self.added += ran
        if time.monotonic() - self._last > 1.0:
            self.save()

    def save(self) -> None:
        big = len(self.order)
        ranked = sorted(self.rows.values(),
                        key=lambda r: (self.order.get(r["run_id"], big), r["run_id"]))
        write_results(self.path, ranked)
        self._last = time.monotonic()


def _bar(total: int, progress: bool | Progress, desc: str = "sweep") -> Progress:
    """The progress of ``total`` runs (a ``Progress`` given is used as it is)."""
    if isinstance(progress, Progress):
        return progress
    return Progress(total, desc, "run", enabled=bool(progress))


def _run_serial(todo: list[Task], done: Callable, failed: Callable,
                progress: bool | Progress) -> None:
    with _bar(len(todo), progress) as bar:
        for task in todo:
            try:
                row = run_task(task)
            except Exception as err:
                stop = interruption(err)  # a stop wrapped in another error stops the sweep
                if stop is not None:
                    raise stop from err
                failed(task, err)
            else:
                done(row)
            bar.update(1)


def _init_pool_worker(parent_pid: int, lock_fds: Sequence[int], death_signal: bool) -> None:
    """A pool worker's start: close the parent's lock descriptors (fork), end with the
    parent (``signals.init_worker``)."""
    close_inherited_locks(lock_fds)
    init_worker(parent_pid, death_signal)


def _run_pool(todo: list[Task], workers: int, done: Callable, failed: Callable,
              progress: bool | Progress) -> None:
    import multiprocessing

    # fork where available: workers start with civa_env already imported (a spawned
    # worker pays a fresh interpreter and imports, seconds on a busy machine). With fork,
    # all workers are forked at the first submit, which happens before the progress bar
    # (and its tqdm monitor thread) starts.
    methods = multiprocessing.get_all_start_methods()
    fork = "fork" in methods
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    # Linux's parent-death signal follows the thread that forks: only from the main thread.
    main = threading.current_thread() is threading.main_thread()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                               initializer=_init_pool_worker,
                               initargs=(os.getpid(), sorted(LOCK_FDS) if fork else [], main))
    interrupted = False
    try:
        pending = {pool.submit(in_worker, run_task, t): t for t in todo}
        with _bar(len(todo), progress) as bar:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = pending.pop(fut)
                    try:
                        row = fut.result()
                    except Exception as err:
                        failed(task, err)
                    else:
                        done(row)
                    bar.update(1)
    except BaseException as err:  # Ctrl-C, SIGTERM: stop the runs rather than wait for them
        interrupted = interruption(err) is not None
        raise
    finally:
        if interrupted:
            stop_processes(list((getattr(pool, "_processes", None) or {}).values()))
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(todo: list[Task], workers: int, done: Callable, failed: Callable,
             progress: bool | Progress, address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise SettingError("{backend} ray needs Ray: pip install 'civa_env[ray]'",
                           {"backend": "backend"}) from None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(run_task)
        refs = {remote.remote(t): t for t in todo}
        with _bar(len(todo), progress) as bar:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                task = refs.pop(ready[0])
                try:
                    row = ray.get(ready[0])
                except Exception as err:
                    failed(task, getattr(err, "cause", None) or err)
                else:
                    done(row)
                bar.update(1)
    finally:
        if started:
            ray.shutdown()
