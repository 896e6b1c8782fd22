"""Sweeps: a grid of communities (value condition x prevalence x seed), run in parallel.

A sweep folder holds ``sweep.json`` (the settings every run shares), ``runs/<run_id>/`` (one
run folder each) and ``results.csv`` (one row per finished run). The table is rewritten
atomically (temporary file + ``os.replace``), so it is never half-written; a run counts as
finished once its folder holds a complete ``metrics.json``. Rerunning an interrupted sweep
reads the table, recovers the rows of runs that finished after the last write from their
folders, and runs only what is missing: no run is done twice, no row is lost or duplicated.

Backends: a local process pool (``concurrent.futures``, the default) or Ray
(``ray.init(num_cpus=workers)`` locally, or ``address=`` of a running cluster).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civa_env import __version__
from civa_env.config import Config
from civa_env.runner import format_mix, is_complete_run, parse_mix, run_community, write_json_atomic
from civa_env.values import ValueCondition

METRICS = ("nAUP", "SC", "ED", "IC", "CC", "final_population", "autocorr_lag1", "variance")
BEHAVIOUR_RATES = ("cooperation_rate", "betrayal_rate", "deception_rate", "power_seeking_rate",
                   "free_riding_rate")
COLUMNS = ("run_id", "condition", "prevalence", "seed", "policy", "agents", "days",
           *METRICS, "extinct_day", *BEHAVIOUR_RATES, "population")
NUMERIC = ("prevalence", "seed", "agents", "days", *METRICS, *BEHAVIOUR_RATES)
# Fields a sweep fixes for all its runs; the grid sets condition, prevalence and seed.
GRID_FIELDS = ("condition", "prevalence", "seed")


class ResultsError(ValueError):
    """results.csv cannot be read as a sweep table."""


class SweepError(ValueError):
    """A sweep folder that does not fit the requested sweep."""


def run_id(condition: str, prevalence: float, seed: int) -> str:
    """Folder name and table key of one run: ``with-power__p0.50__s3``."""
    slug = str(condition).replace(":", "-")
    return f"{slug}__p{prevalence:.2f}__s{seed}"


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


def make_grid(conditions: Sequence[str], prevalences: Sequence[float], seeds: int,
              first_seed: int = 0) -> list[tuple[str, float, int]]:
    """(condition, prevalence, seed) triples; ``baseline`` runs once per seed (prevalence 0).

    Raises:
        ValueError: an unknown condition, a prevalence outside [0, 1], or seeds < 1.
    """
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    conditions = [str(ValueCondition.parse(c)) for c in conditions]
    for p in prevalences:
        if not (0.0 <= p <= 1.0):
            raise ValueError(f"prevalence must be in [0, 1], got {p:g}")
    out = []
    for condition in dict.fromkeys(conditions):
        levels = [0.0] if condition == "baseline" else sorted(set(prevalences))
        for p in levels:
            for s in range(first_seed, first_seed + seeds):
                out.append((condition, float(p), s))
    return out


def row_from_metrics(task: Task, metrics: dict[str, Any]) -> dict[str, Any]:
    """The results.csv row of a finished run."""
    rates = metrics["behaviour_rates"]
    row = {"run_id": task.run_id, "condition": task.condition, "prevalence": task.prevalence,
           "seed": task.seed, "policy": task.policy, "agents": task.env["n_agents"],
           "days": task.env["max_days"]}
    for m in METRICS:
        row[m] = metrics[m]
    row["extinct_day"] = "" if metrics["extinct_day"] is None else metrics["extinct_day"]
    for name in BEHAVIOUR_RATES:
        row[name] = rates[name[: -len("_rate")]]
    row["population"] = " ".join(f"{x:g}" for x in metrics["population"])
    return row


def run_task(task: Task) -> dict[str, Any]:
    """Run one task (or read it back if its folder already holds a finished run)."""
    run_dir = Path(task.run_dir)
    if is_complete_run(run_dir):
        with open(run_dir / "metrics.json", encoding="utf-8") as f:
            return row_from_metrics(task, json.load(f))
    if run_dir.exists():
        # An unfinished run of this sweep (interrupted, maybe mid-write): the sweep owns
        # runs/<run_id>, so it starts over.
        shutil.rmtree(run_dir)
    cfg = Config.from_dict({**task.env, "condition": task.condition,
                            "prevalence": task.prevalence, "seed": task.seed})
    result = run_community(cfg, task.policy, task.seed, run_dir, progress=False,
                           plots=task.plots, overwrite=True, policy_kwargs=task.policy_kwargs)
    return row_from_metrics(task, result.summary)


# ---- results.csv -------------------------------------------------------------------------------
def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of results.csv by run_id ({} when the file does not exist).

    Raises:
        ResultsError: wrong header, a short or malformed row, a duplicate run_id.
    """
    path = Path(path)
    if not path.exists():
        return {}
    hint = ("; move it away and rerun the sweep: finished runs are recovered from their "
            "folders")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(f"{path} cannot be read ({err}){hint}") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise ResultsError(f"{path} is corrupt: its header is not the results header{hint}")
    rows: dict[str, dict[str, Any]] = {}
    for line, values in enumerate(reader, start=2):
        if len(values) != len(COLUMNS):
            raise ResultsError(f"{path} is corrupt: line {line} has {len(values)} fields, "
                               f"expected {len(COLUMNS)}{hint}")
        row: dict[str, Any] = dict(zip(COLUMNS, values, strict=True))
        try:
            for key in NUMERIC:
                row[key] = float(row[key])
                if not math.isfinite(row[key]):
                    raise ValueError(key)
            for key in ("seed", "agents", "days"):
                row[key] = int(row[key])
            row["population"] = [float(x) for x in row["population"].split()]
        except ValueError:
            raise ResultsError(f"{path} is corrupt: line {line} holds a malformed number"
                               f"{hint}") from None
        if not row["run_id"] or row["run_id"] in rows:
            raise ResultsError(f"{path} is corrupt: line {line} repeats or lacks a run_id{hint}")
        rows[row["run_id"]] = row
    return rows


def write_results(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write the table atomically (temporary file, then ``os.replace``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            out = dict(row)
            if isinstance(out["population"], list):
                out["population"] = " ".join(f"{x:g}" for x in out["population"])
            writer.writerow([_cell(out[c]) for c in COLUMNS])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _cell(value: Any) -> str:
    """Canonical text of a cell, the same for fresh rows and rows read back."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


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


class Sweep:
    """A resumable grid of runs in one folder."""

    def __init__(self, out: Path, conditions: Sequence[str], prevalences: Sequence[float],
                 seeds: int, base: Config | None = None, policy: str = "scripted",
                 policy_kwargs: dict[str, dict[str, Any]] | None = None, first_seed: int = 0,
                 run_plots: bool = False) -> None:
        self.out = Path(out)
        self.grid = make_grid(conditions, prevalences, seeds, first_seed)
        self.policy = format_mix(parse_mix(policy))
        self.policy_kwargs = policy_kwargs or {}
        base = base or Config()
        self.env = {k: v for k, v in base.to_dict().items() if k not in GRID_FIELDS}
        self.run_plots = run_plots
        self.results_path = self.out / "results.csv"

    def tasks(self) -> list[Task]:
        """One task per grid point."""
        return [Task(run_id(c, p, s), c, p, s, str(self.out / "runs" / run_id(c, p, s)),
                     self.env, self.policy, self.policy_kwargs, self.run_plots)
                for c, p, s in self.grid]

    def _check_folder(self) -> None:
        settings = {"env": self.env, "policy": self.policy}
        meta = self.out / "sweep.json"
        if self.out.exists() and not self.out.is_dir():
            raise SweepError(f"sweep output {self.out} is a file; choose another --out")
        if meta.exists():
            try:
                with open(meta, encoding="utf-8") as f:
                    old = json.load(f)
            except ValueError:
                raise SweepError(f"{meta} is not valid JSON; move it away") from None
            mismatch = [k for k in ("env", "policy") if old.get(k) != settings[k]]
            if mismatch:
                changed = sorted(key for key in set(old.get("env", {})) | set(self.env)
                                 if old.get("env", {}).get(key) != self.env.get(key))
                what = ", ".join(changed) if changed else "policy"
                raise SweepError(f"sweep folder {self.out} was made with other settings "
                                 f"({what} differ); use another --out")
        elif self.out.is_dir() and any(self.out.iterdir()):
            raise SweepError(f"output folder {self.out} holds something else (not a CIVA "
                             "sweep folder); choose an empty or new --out")
        self.out.mkdir(parents=True, exist_ok=True)
        grids = sorted({json.dumps(g) for g in ([] if not meta.exists() else
                                                   json.loads(meta.read_text()).get("grids", []))}
                       | {json.dumps(self._grid_spec())})
        write_json_atomic(meta, {"civa_version": __version__, **settings,
                                 "grids": [json.loads(g) for g in grids]})

    def _grid_spec(self) -> dict[str, Any]:
        return {"conditions": sorted({c for c, _, _ in self.grid}),
                "prevalences": sorted({p for _, p, _ in self.grid}),
                "seeds": sorted({s for _, _, s in self.grid})}

    def run(self, workers: int = 1, backend: str = "local", progress: bool = True,
            ray_address: str | None = None,
            on_row: Callable[[dict[str, Any]], None] | None = None) -> SweepReport:
        """Run what is missing; rows are saved as runs finish (at most once a second)."""
        if backend not in ("local", "ray"):
            raise ValueError(f"unknown backend {backend!r}; use 'local' or 'ray'")
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        start = time.perf_counter()
        # Read the table before anything is written: a corrupt table stops the sweep here.
        rows = load_results(self.results_path)
        self._check_folder()
        tasks = self.tasks()
        already = sum(t.run_id in rows for t in tasks)
        recovered = 0
        for t in tasks:
            if t.run_id not in rows and is_complete_run(Path(t.run_dir)):
                rows[t.run_id] = run_task(t)
                recovered += 1
        order = {t.run_id: k for k, t in enumerate(tasks)}
        saver = _Saver(self.results_path, rows, order)
        saver.save()
        todo = [t for t in tasks if t.run_id not in rows]

        def done(row: dict[str, Any]) -> None:
            saver.add(row)
            if on_row is not None:
                on_row(row)

        try:
            if todo:
                if backend == "ray":
                    _run_ray(todo, workers, done, progress, ray_address)
                elif workers == 1:
                    _run_serial(todo, done, progress)
                else:
                    _run_pool(todo, workers, done, progress)
        finally:
            saver.save()
        return SweepReport(len(tasks), already, recovered, saver.added,
                           time.perf_counter() - start, self.results_path)


class _Saver:
    """Keeps the rows and rewrites results.csv atomically, at most once a second."""

    def __init__(self, path: Path, rows: dict[str, dict[str, Any]], order: dict[str, int]):
        self.path, self.rows, self.order = path, rows, order
        self.added = 0
        self._last = 0.0
        self._dirty = False

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["run_id"]] = row
        self.added += 1
        self._dirty = True
        if time.monotonic() - self._last > 1.0:
            self.save()

    def save(self) -> None:
        big = len(self.order)
        ranked = sorted(self.rows.values(),
                        key=lambda r: (self.order.get(r["run_id"], big), r["run_id"]))
        write_results(self.path, ranked)
        self._last = time.monotonic()
        self._dirty = False


def _bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep", unit="run", disable=not progress)


def _run_serial(todo: list[Task], done: Callable, progress: bool) -> None:
    with _bar(len(todo), progress) as bar:
        for task in todo:
            done(run_task(task))
            bar.update(1)


def _run_pool(todo: list[Task], workers: int, done: Callable, progress: bool) -> None:
    import multiprocessing

    # fork where available: workers start with civa_env already imported (a spawned
    # worker pays a fresh interpreter and imports, seconds on a busy machine). The parent
    # holds no locks or threads of ours at this point.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        with _bar(len(todo), progress) as bar:
            pending = {pool.submit(run_task, t): t for t in todo}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = pending.pop(fut)
                    try:
                        row = fut.result()
                    except Exception as err:
                        raise RuntimeError(f"run {task.run_id} failed: {err}") from err
                    done(row)
                    bar.update(1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(todo: list[Task], workers: int, done: Callable, progress: bool,
             address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("--backend ray needs Ray: pip install 'civa_env[ray]'") from None
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
                    raise RuntimeError(f"run {task.run_id} failed: {err}") from err
                done(row)
                bar.update(1)
    finally:
        if started:
            ray.shutdown()
