"""The event log: every day's actions, outcomes, messages, births and deaths as typed records.

Stored by column (one numpy array per field and day) so that a 1000-resident day costs a few
array appends, not thousands of objects; ``events()`` gives typed ``Event`` records and
``write_jsonl`` one JSON object a line. Each day ends with a ``census`` record (population,
wealth statistics, production, ...), which is what the metrics read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from civa_env.world.arrays import filled
from civa_env.world.kinds import KIND_BY_LABEL, EventKind

# Column name -> (dtype, fill value when an event does not set it).
COLUMNS: dict[str, tuple[Any, Any]] = {
    "day": (np.int32, 0),
    "kind": (np.int8, 0),
    "actor": (np.int32, -1),
    "target": (np.int32, -1),
    "factory": (np.int32, -1),  # (a batch's factory rows: E M can pass int16)
    "amount": (np.float64, 0.0),
    "wealth": (np.float64, np.nan),  # actor's wealth at the start of the day
    "target_wealth": (np.float64, np.nan),  # target's wealth at the start of the day
    "flag": (np.int8, 0),
}


def agent_name(i: int) -> str:
    """Name of resident ``i`` in the pool."""
    return f"resident_{i}"


def agent_index(name: str) -> int:
    """Inverse of ``agent_name``; ValueError for anything else."""
    if isinstance(name, str) and name.startswith("resident_") and name[9:].isdigit():
        return int(name[9:])
    raise ValueError(f"not a resident name: {name!r}")


@dataclass(frozen=True)
class Event:
    """One typed event record (names instead of indices)."""

    day: int
    kind: EventKind
    actor: str | None = None
    target: str | None = None
    factory: int | None = None
    amount: float = 0.0
    wealth: float | None = None
    target_wealth: float | None = None
    flag: int = 0
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without empty fields."""
        out: dict[str, Any] = {"day": self.day, "kind": self.kind.label}
        for key in ("actor", "target", "factory", "wealth", "target_wealth", "text"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.amount:
            out["amount"] = self.amount
        if self.flag:
            out["flag"] = self.flag
        return out


_UNSET: Any = object()  # marks a column an ``add`` call leaves at its fill value


class DayEvents:
    """Collects one day's events into preallocated column arrays (grown when full)."""

    kept = True  # (``NoEvents`` keeps none: the rules skip what only the events need)

    def __init__(self, day: int, capacity: int = 256) -> None:
        self.day = day
        self._capacity = max(int(capacity), 1)
        self._cols = {key: filled(self._capacity, fill, dtype)
                      for key, (dtype, fill) in COLUMNS.items()}
        self._texts: dict[int, str] = {}
        self._size = 0

    def _grow(self, need: int) -> None:
        self._capacity = max(need, 2 * self._capacity)
        for key, col in self._cols.items():
            dtype, fill = COLUMNS[key]
            grown = filled(self._capacity, fill, dtype)
            grown[: self._size] = col[: self._size]
            self._cols[key] = grown

    def add(self, kind: EventKind, actor: Any, target: Any = _UNSET, *, factory: Any = _UNSET,
            amount: Any = _UNSET, wealth: Any = _UNSET, target_wealth: Any = _UNSET,
            flag: Any = _UNSET, texts: list[str] | None = None) -> None:
        """Add ``len(actor)`` events of one kind (scalars broadcast; a column not given keeps
        its fill value: -1 for target and factory, 0 for amount and flag, NaN for wealth)."""
        n = len(actor) if hasattr(actor, "__len__") else 1
        if n == 0:
            return
        lo, hi = self._size, self._size + n
        if hi > self._capacity:
            self._grow(hi)
        cols = self._cols
        cols["kind"][lo:hi] = kind
        cols["actor"][lo:hi] = actor
        for key, value in (("target", target), ("factory", factory), ("amount", amount),
                           ("wealth", wealth), ("target_wealth", target_wealth),
                           ("flag", flag)):
            if value is not _UNSET:
                cols[key][lo:hi] = value
        if texts is not None:
            if len(texts) != n:
                raise ValueError("texts must have one entry per event")
            self._texts.update(zip(range(lo, hi), texts, strict=True))
        self._size = hi

    def freeze(self) -> tuple[dict[str, np.ndarray], dict[int, str]]:
        """The day's columns (trimmed copies) and a {row: text} map."""
        size = self._size
        cols = {key: col[:size].copy() for key, col in self._cols.items()}
        cols["day"][:] = self.day
        return cols, dict(self._texts)


class NoEvents:
    """Where a day's events go when nobody keeps them (a batch without logs): ``add`` takes
    them and keeps nothing (the rules check ``kept`` before gathering what only events
    hold: the wealth at the start of the day, the outages' rows)."""

    kept = False

    def add(self, kind: EventKind, actor: Any, target: Any = _UNSET, **columns: Any) -> None:
        """Take the events (``DayEvents.add``'s arguments) and keep nothing."""

    def freeze(self) -> tuple[dict[str, np.ndarray], dict[int, str]]:
        raise ValueError("this day's events were not kept (a batch without logs)")


class EventLog:
    """Append-only log of days; columns concatenated lazily for the metrics."""

    def __init__(self) -> None:
        self._chunks: list[dict[str, np.ndarray]] = []
        self._texts: list[dict[int, str]] = []
        self.census: list[dict[str, Any]] = []
        self._cache: tuple[dict[str, np.ndarray], dict[int, str]] | None = None
        self.partial_reason: str | None = None  # set by read_jsonl when the file ends early
        # Caches of what readers derive from the recorded days (e.g. the briefing's accounts
        # of each day), kept here because days are only ever appended.
        self.derived: dict[str, Any] = {}

    def append(self, day_events: DayEvents | tuple[dict[str, np.ndarray], dict[int, str]],
               census: dict[str, Any]) -> None:
        """Add one finished day (events or their frozen columns) and its census record."""
        cols, texts = day_events.freeze() if isinstance(day_events, DayEvents) else day_events
        self._chunks.append(cols)
        self._texts.append(texts)
        self.census.append(census)
        self._cache = None

    def day_columns(self) -> list[tuple[int, dict[str, np.ndarray]]]:
        """(day, that day's event columns) of every recorded day, oldest first (the log's own
        arrays: read, do not write)."""
        return [(int(c["day"]), cols) for c, cols in zip(self.census, self._chunks,
                                                          strict=True)]

    @property
    def n_days(self) -> int:
        """Days recorded."""
        return len(self.census)

    def __len__(self) -> int:
        return sum(len(c["day"]) for c in self._chunks)

    def columns(self) -> tuple[dict[str, np.ndarray], dict[int, str]]:
        """All events as columns (rows in day order) and a {row: text} map."""
        if self._cache is None:
            if self._chunks:
                cols = {k: np.concatenate([c[k] for c in self._chunks]) for k in COLUMNS}
            else:
                cols = {k: np.empty(0, dtype=dt) for k, (dt, _) in COLUMNS.items()}
            texts: dict[int, str] = {}
            offset = 0
            for chunk, chunk_texts in zip(self._chunks, self._texts, strict=True):
                texts.update({offset + r: t for r, t in chunk_texts.items()})
                offset += len(chunk["day"])
            self._cache = (cols, texts)
        return self._cache

    def events(self, day: int | None = None) -> Iterator[Event]:
        """Typed records, of one day or of all."""
        chunks = range(len(self._chunks)) if day is None else [
            i for i, c in enumerate(self.census) if c["day"] == day]
        for i in chunks:
            yield from _chunk_events(self._chunks[i], self._texts[i])

    def records(self) -> Iterator[dict[str, Any]]:
        """JSON-ready dicts in log order: each day's events, then its census."""
        for i, census in enumerate(self.census):
            for event in _chunk_events(self._chunks[i], self._texts[i]):
                yield event.to_dict()
            yield {"kind": "census", **census}

    def write_jsonl(self, path: str | os.PathLike, *, start_day_index: int = 0,
                    mode: str = "w") -> None:
        """Write (or append, with ``mode="a"``) days from ``start_day_index`` as JSONL."""
        with open(path, mode, encoding="utf-8") as f:
            for i in range(start_day_index, len(self.census)):
                self.write_day(f, i)

    def write_day(self, f: Any, index: int) -> None:
        """Write one recorded day to an open text file, census last, then flush."""
        lines = [json.dumps(e.to_dict(), allow_nan=False)
                 for e in _chunk_events(self._chunks[index], self._texts[index])]
        lines.append(json.dumps({"kind": "census", **self.census[index]}, allow_nan=False))
        f.write("\n".join(lines) + "\n")
        f.flush()

    @classmethod
    def read_jsonl(cls, path: str | os.PathLike, *, allow_partial: bool = False) -> EventLog:
        """Read a log written by ``write_jsonl``.

        A day counts only once its census line is read. A broken or truncated line raises a
        ValueError naming the file and line, unless ``allow_partial``: then reading stops
        there and the complete days before it are kept (``partial_reason`` says why).
        """
        log = cls()
        pending = _PendingDay()
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                try:
                    if not line.endswith("\n"):
                        raise ValueError("truncated line (no newline at end)")
                    record = json.loads(line)
                    if not isinstance(record, dict):
                        raise ValueError("not a JSON object")
                    if record.get("kind") == "census":
                        record.pop("kind")
                        int(record["day"])
                        log.append(pending.freeze(), record)
                        pending = _PendingDay()
                    else:
                        pending.add(record)
                except (ValueError, KeyError, TypeError) as err:
                    reason = f"{path}: line {lineno}: {err}"
                    if not allow_partial:
                        raise ValueError(reason) from None
                    log.partial_reason = reason
                    return log
        if pending.rows:
            reason = (f"{path}: {pending.rows} events after the last complete day "
                      f"(day {pending.first_day} has no census line)")
            if not allow_partial:
                raise ValueError(reason)
            log.partial_reason = reason
        return log


class _PendingDay:
    """Columns of one day being read back from JSONL (validated as they come)."""

    def __init__(self) -> None:
        self.values: dict[str, list[Any]] = {k: [] for k in COLUMNS}
        self.texts: dict[int, str] = {}
        self.rows = 0
        self.first_day: int | None = None

    def add(self, d: dict[str, Any]) -> None:
        kind = d["kind"]
        if kind not in KIND_BY_LABEL:
            raise ValueError(f"unknown event kind {kind!r}")
        v = self.values
        v["day"].append(int(d["day"]))
        v["kind"].append(int(KIND_BY_LABEL[kind]))
        v["actor"].append(_index(d.get("actor")))
        v["target"].append(_index(d.get("target")))
        factory = d.get("factory")
        v["factory"].append(-1 if factory is None else int(factory))
        v["amount"].append(float(d.get("amount", 0.0)))
        wealth, target_wealth = d.get("wealth"), d.get("target_wealth")
        v["wealth"].append(np.nan if wealth is None else float(wealth))
        v["target_wealth"].append(np.nan if target_wealth is None else float(target_wealth))
        v["flag"].append(int(d.get("flag", 0)))
        text = d.get("text")
        if text is not None:
            if not isinstance(text, str):
                raise ValueError("event text must be a string")
            self.texts[self.rows] = text
        if self.first_day is None:
            self.first_day = v["day"][-1]
        self.rows += 1

    def freeze(self) -> tuple[dict[str, np.ndarray], dict[int, str]]:
        cols = {k: np.array(self.values[k], dtype=dt) for k, (dt, _) in COLUMNS.items()}
        return cols, self.texts


def _index(name: str | None) -> int:
    return -1 if name is None else agent_index(name)


def _clean(x: float) -> float | None:
    # Full precision: a log read back must give exactly the metrics of the live run.
    return None if math.isnan(x) else x


def _chunk_events(cols: dict[str, np.ndarray], texts: dict[int, str]) -> Iterator[Event]:
    lists = {k: v.tolist() for k, v in cols.items()}
    for r in range(len(lists["day"])):
        actor, target, factory = lists["actor"][r], lists["target"][r], lists["factory"][r]
        yield Event(
            day=lists["day"][r], kind=EventKind(lists["kind"][r]),
            actor=None if actor < 0 else agent_name(actor),
            target=None if target < 0 else agent_name(target),
            factory=None if factory < 0 else factory,
            amount=lists["amount"][r], wealth=_clean(lists["wealth"][r]),
            target_wealth=_clean(lists["target_wealth"][r]), flag=lists["flag"][r],
            text=texts.get(r))
