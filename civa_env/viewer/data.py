"""Turn a run folder into the compact data the viewer page embeds.

Everything the page draws is precomputed here, column by column, so that the browser only
indexes arrays: per-day offsets into the event columns, the residents alive at the end of
each day with their wealth, alliance intervals, the rows flagged by
``behaviours.detect``, a fixed layout, and the reflections of LLM residents. Numeric
columns travel as base64 typed arrays (``{"$b64": ..., "t": "i32"}``), which costs about
5.3 characters per 4-byte value instead of JSON's decimal text.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import numpy as np

from civa_env.experiments import runfolder
from civa_env.world import behaviours, metrics
from civa_env.world.config import Config
from civa_env.world.events import EventLog
from civa_env.world.kinds import EventKind
from civa_env.world.values import ValueCondition

PRIMARY_KINDS = (EventKind.WORK, EventKind.EXPLORE, EventKind.UPGRADE_SELF,
                 EventKind.UPGRADE_FACTORY, EventKind.IDLE)
MAX_REFLECTION_CHARS = 2000
# Series of metrics.json drawn from the census instead (kept out of the summary table).
SERIES_KEYS = ("population", "wealth_mean", "gini", "production", "actions")


_TYPES = {np.dtype(np.int8): "i8", np.dtype(np.uint8): "u8", np.dtype(np.int16): "i16",
          np.dtype(np.int32): "i32", np.dtype(np.float32): "f32"}


def packed(array: np.ndarray, dtype: Any) -> dict[str, str]:
    """A typed array as base64 of its little-endian bytes, tagged with its type."""
    arr = np.ascontiguousarray(np.asarray(array).astype(dtype))
    tag = _TYPES[arr.dtype]
    return {"$b64": base64.b64encode(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
            .decode("ascii"), "t": tag}


def index_dtype(n: int) -> Any:
    """Smallest signed integer type that holds resident indices up to ``n`` (and -1)."""
    return np.int16 if n < 32767 else np.int32


def load_run(run_dir: Path) -> tuple[dict[str, Any], Config, EventLog]:
    """config.json (as written), its env Config, and the event log (partial days dropped).

    Raises:
        RunFolderError: the folder, config.json or events.jsonl is missing or broken.
    """
    config_json = runfolder.read_config(run_dir)
    cfg = runfolder.read_env_config(run_dir, config_json)
    log = runfolder.read_events(run_dir, allow_partial=True)
    return config_json, cfg, log


def check_indices(run_dir: Path, cols: dict[str, np.ndarray], cfg: Config) -> None:
    """Refuse an event log that names a resident beyond the run's pool (``max_agents``) or a
    factory it does not have: a corrupt line, which would otherwise make the page size its
    arrays by it.

    Raises:
        RunFolderError: naming events.jsonl and the first such line.
    """
    limits = {"actor": cfg.max_agents, "target": cfg.max_agents, "factory": cfg.n_factories}
    bad = {k: cols[k][(cols[k] < -1) | (cols[k] >= n)] for k, n in limits.items()}
    found = next(((k, int(v[0])) for k, v in bad.items() if len(v)), None)
    if found is None:
        return

    def match(record: dict[str, Any]) -> str | None:
        if record.get("kind") == "census":
            return None
        return next(filter(None, (_out_of_range(k, record.get(k), cfg) for k in limits)), None)

    raise runfolder.event_line_error(run_dir, match, f"{found[0]} index {found[1]} is out "
                                     f"of range (0 to {limits[found[0]] - 1})")


def _out_of_range(key: str, value: Any, cfg: Config) -> str | None:
    """Why an event's ``actor``/``target``/``factory`` value is out of this run's range."""
    if key == "factory":
        if _is_number(value) and not -1 <= value < cfg.n_factories:
            return (f"factory {value} is out of range (config.json: n_factories "
                    f"{cfg.n_factories})")
        return None
    if isinstance(value, str) and value.startswith("resident_") and value[9:].isdigit():
        if int(value[9:]) >= cfg.max_agents:
            return (f"{key} {value} is not a resident of this run (config.json: max_agents "
                    f"{cfg.max_agents}, residents resident_0 to resident_{cfg.max_agents - 1})")
    return None


# What the page and its summary read from each census line, as numbers.
CENSUS_NUMBERS = ("day", "population", "acting", "production", "wealth_mean",
                  "wealth_mean_start", "wealth_median_start", "gini", "ic")


def check_census(run_dir: Path, census: list[dict[str, Any]]) -> None:
    """Refuse census lines without the numbers the page reads (a corrupt line).

    Raises:
        RunFolderError: naming events.jsonl and the line.
    """
    bad = next(((k, wrong) for k, c in enumerate(census)
                if (wrong := _census_problem(c)) is not None), None)
    if bad is None:
        return
    seen = 0

    def match(record: dict[str, Any]) -> str | None:
        nonlocal seen
        if record.get("kind") != "census":
            return None
        seen += 1
        return _census_problem(record) if seen == bad[0] + 1 else None

    raise runfolder.event_line_error(run_dir, match, f"census {bad[0] + 1}: {bad[1]}")


def _census_problem(census: dict[str, Any]) -> str | None:
    missing = next((key for key in CENSUS_NUMBERS if not _is_number(census.get(key))), None)
    if missing is not None:
        return f"census line has no number {missing!r}"
    actions = census.get("actions", {})
    if not (isinstance(actions, dict) and all(_is_number(v) for v in actions.values())):
        return "census line's 'actions' is not an object of counts"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def day_offsets(day_col: np.ndarray, days: np.ndarray) -> np.ndarray:
    """(D+1,) row offsets of each day in the (day-sorted) event columns."""
    return np.concatenate([np.searchsorted(day_col, days, side="left"),
                           [len(day_col)]]).astype(np.int32)


def resident_lives(cols: dict[str, np.ndarray], cfg: Config,
                   n_used: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """born day (0: founder), death day (0: never died in the log) and parent (-1) per
    resident, from the birth and death events."""
    born = np.zeros(n_used, np.int32)
    died = np.zeros(n_used, np.int32)
    parent = np.full(n_used, -1, np.int32)
    kind = cols["kind"]
    b = kind == EventKind.BIRTH
    born[cols["target"][b]] = cols["day"][b]
    parent[cols["target"][b]] = cols["actor"][b]
    d = kind == EventKind.DEATH
    died[cols["actor"][d]] = cols["day"][d]
    # Residents that never appear (names reserved, not used) are marked unborn.
    born[cfg.n_agents:][parent[cfg.n_agents:] < 0] = np.iinfo(np.int32).max
    return born, died, parent


def alive_by_day(cols: dict[str, np.ndarray], days: np.ndarray, born: np.ndarray,
                 died: np.ndarray, cfg: Config) -> dict[str, Any]:
    """Residents alive at the end of each day, with their wealth then.

    The wealth at the end of day d is the start-of-day wealth the events of day d+1 record;
    on the last day it is the start-of-day wealth of that day (a newcomer's, its birth gift).
    """
    n_used, n_days = len(born), len(days)
    start = np.full((n_days + 1, n_used), np.nan, np.float32)  # start of day index di
    kind, actor, wealth = cols["kind"], cols["actor"], cols["wealth"]
    prim = np.isin(kind, [int(k) for k in PRIMARY_KINDS]) & (actor >= 0) & ~np.isnan(wealth)
    day_index = np.searchsorted(days, cols["day"])
    start[day_index[prim], actor[prim]] = wealth[prim]
    ids, offs, values = [], [0], []
    for di, day in enumerate(days.tolist()):
        living = np.flatnonzero((born <= day) & ((died == 0) | (died > day)))
        w = start[di + 1, living]
        fallback = start[di, living]
        w = np.where(np.isnan(w), fallback, w)
        w = np.where(np.isnan(w), cfg.newcomer_wealth, w)
        ids.append(living)
        values.append(w)
        offs.append(offs[-1] + len(living))
    idt = index_dtype(n_used)
    return {"off": packed(np.array(offs), np.int32),
            "ids": packed(np.concatenate(ids) if ids else np.zeros(0), idt),
            "wealth": packed(np.concatenate(values) if values else np.zeros(0), np.float32)}


def alliance_intervals(cols: dict[str, np.ndarray], days: np.ndarray) -> dict[str, Any]:
    """Alliances as (a, b, first day, last day) intervals: formed, then ended by an attack
    on the ally or a death (state.allies follows the same rules)."""
    kind, actor, target, day = cols["kind"], cols["actor"], cols["target"], cols["day"]
    rows = np.flatnonzero(np.isin(kind, [EventKind.ALLIANCE_FORMED,
                                         EventKind.ALLIANCE_DISSOLVED, EventKind.DEATH]))
    active: dict[tuple[int, int], int] = {}
    by_member: dict[int, set[tuple[int, int]]] = {}
    out: list[tuple[int, int, int, int]] = []
    last_day = int(days[-1]) if len(days) else 0

    def end(pair: tuple[int, int], d: int) -> None:
        out.append((pair[0], pair[1], active.pop(pair), d - 1))
        for member in pair:
            by_member[member].discard(pair)

    # Within a day, rules run merges, then attacks (dissolving), then deaths.
    order = {EventKind.ALLIANCE_FORMED: 0, EventKind.ALLIANCE_DISSOLVED: 1, EventKind.DEATH: 2}
    rows = sorted(rows.tolist(), key=lambda r: (day[r], order[EventKind(kind[r])], r))
    for r in rows:
        k, d = EventKind(kind[r]), int(day[r])
        if k == EventKind.DEATH:
            for pair in list(by_member.get(int(actor[r]), ())):
                end(pair, d)
            continue
        pair = (min(int(actor[r]), int(target[r])), max(int(actor[r]), int(target[r])))
        if k == EventKind.ALLIANCE_FORMED:
            if pair not in active:
                active[pair] = d
                for member in pair:
                    by_member.setdefault(member, set()).add(pair)
        elif pair in active:
            end(pair, d)
    for pair in list(active):
        end(pair, last_day + 1)
    arr = np.array(out, np.int32).reshape(-1, 4)
    return {"a": packed(arr[:, 0], np.int32), "b": packed(arr[:, 1], np.int32),
            "start": packed(arr[:, 2], np.int32), "end": packed(arr[:, 3], np.int32)}


def behaviour_rows(cols: dict[str, np.ndarray], texts: dict[int, str], census: list[dict],
                   cfg: Config) -> tuple[dict[str, Any], np.ndarray]:
    """Rows flagged by ``behaviours.detect`` with a bit per behaviour, and the bit column."""
    masks = behaviours.detect(cols, texts, census, recent_days=cfg.recent_days,
                              deception_window=cfg.deception_window)
    bits = np.zeros(len(cols["kind"]), np.uint8)
    for k, name in enumerate(behaviours.BEHAVIOURS):
        bits |= masks[name].astype(np.uint8) << k
    rows = np.flatnonzero(bits)
    return {"rows": packed(rows, np.int32), "bits": packed(bits[rows], np.uint8)}, bits


def condition_labels() -> dict[str, str]:
    """{code: "with:benevolence", ...} for every condition code."""
    return {str(c): str(ValueCondition.from_code(c)) for c in range(21)}


def to_jsonable(value: Any) -> Any:
    """Replace NaN/inf by None so the page's JSON stays valid."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def census_series(census: list[dict[str, Any]]) -> tuple[dict[str, list], dict[str, list]]:
    """Per-day census columns and per-day counts of each action kind."""
    keys = ("population", "acting", "births", "deaths", "production", "wealth_total",
            "wealth_mean", "wealth_median", "gini", "ic", "alliances")
    series = {k: [c.get(k) for c in census] for k in keys}
    kinds = [k.label for k in EventKind if k <= EventKind.MESSAGE and k != EventKind.OUTAGE]
    actions = {k: [int(c.get("actions", {}).get(k, 0)) for c in census] for k in kinds}
    return series, actions


def summary_of(run_dir: Path, log: EventLog, cfg: Config, partial: bool) -> tuple[dict, str]:
    """metrics.json when it matches the log, else the summary computed from the log.

    A broken metrics.json is passed over like a missing one: the log has the whole story.
    """
    if not partial:
        try:
            data = runfolder.read_metrics(run_dir)
        except runfolder.RunFolderError:
            data = None
        if data is not None:
            return data, "metrics.json"
    return metrics.summarize(log, cfg), "computed from the complete days of events.jsonl"
