"""A sweep's results table, ``results.csv``: one row per finished run.

The table is rewritten atomically (a temporary file of its own, then ``os.replace``), so it
is never half-written; ``load_results`` refuses a corrupt one with a one-line error that says
how to recover. See docs/cli.md.

Tables written before a column existed still load: ``holders`` is derived from the prevalence
and the number of founders, ``collapsed``, ``quasi_extinction``, ``llm_tokens`` and
``llm_cost_usd`` read as NaN (not measured). The last two are a run's LLM tokens (prompt and
completion, of all its LLM policies) and their estimated cost in USD; empty for runs without
LLM residents, and the cost for runs without prices (llm options ``price_per_mtok_in``/``_out``).

``same_as``: empty for a run done; for a prevalence-0 cell that shares the run of its seed's
baseline world (prevalence 0 is the baseline world, so a sweep runs it once per seed), the
run_id of that run, whose folder holds it (the cell has none). Empty in older tables.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from civa_env.experiments.runfolder import atomic_open
from civa_env.world.values import holder_count

METRICS = ("nAUP", "SC", "ED", "IC", "CC", "final_population", "autocorr_lag1", "variance")
BEHAVIOUR_RATES = ("cooperation_rate", "betrayal_rate", "deception_rate", "power_seeking_rate",
                   "free_riding_rate")
COLUMNS = ("run_id", "condition", "prevalence", "holders", "seed", "same_as", "policy",
           "agents", "days", *METRICS, "extinct_day", "collapsed", "quasi_extinction",
           *BEHAVIOUR_RATES, "llm_tokens", "llm_cost_usd", "population")
NUMERIC = ("prevalence", "seed", "agents", "days", *METRICS, *BEHAVIOUR_RATES)
# Columns added after the first tables were written: a header may lack them, a cell may be
# empty (NaN). holders = founders holding the condition; collapsed = 1 when the final
# population is below quasi_extinction x agents; llm_tokens and llm_cost_usd: a run's LLM
# tokens and their estimated cost; same_as = the run a prevalence-0 cell shares.
OPTIONAL = ("holders", "same_as", "collapsed", "quasi_extinction", "llm_tokens",
            "llm_cost_usd")
REQUIRED = tuple(c for c in COLUMNS if c not in OPTIONAL)


class ResultsError(ValueError):
    """results.csv cannot be read as a sweep table."""


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of results.csv by run_id ({} when the file does not exist).

    Raises:
        ResultsError: wrong header, a short or malformed row, a duplicate run_id.
    """
    def convert(row: dict[str, Any]) -> None:
        for key in NUMERIC:
            row[key] = float(row[key])
            if not math.isfinite(row[key]):
                raise ValueError(key)
        for key in ("seed", "agents", "days"):
            row[key] = int(row[key])
        row["population"] = [float(x) for x in row["population"].split()]
        _read_optional(row)

    return read_table(Path(path), ResultsError, "results", _known_header, convert,
                      hint="; move it away and rerun the sweep: finished runs are recovered "
                           "from their folders")


def read_table(path: Path, error: type[ValueError], what: str,
               header_ok: Callable[[list[str]], bool], convert: Callable[[dict], None], *,
               hint: str, check: Callable[[dict], bool] = lambda row: True,
               key: str = "run_id") -> dict[str, dict[str, Any]]:
    """Rows of a CSV table of runs by ``key`` ({} when ``path`` does not exist): the reader
    of results.csv and of civa resilience's runs.csv.

    ``header_ok`` accepts the header; ``convert`` turns a row's strings into values in place
    (a ValueError: a malformed number); ``check`` a converted row. Every problem raises
    ``error`` naming the file and line, followed by ``hint``.
    """
    if not path.exists():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path} cannot be read ({err}){hint}") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or not header_ok(header):
        raise error(f"{path} is corrupt: its header is not the {what} header{hint}")
    rows: dict[str, dict[str, Any]] = {}
    for line, values in enumerate(reader, start=2):
        if len(values) != len(header):
            raise error(f"{path} is corrupt: line {line} has {len(values)} fields, "
                        f"expected {len(header)}{hint}")
        row: dict[str, Any] = dict(zip(header, values, strict=True))
        try:
            convert(row)
        except ValueError:
            raise error(f"{path} is corrupt: line {line} holds a malformed number"
                        f"{hint}") from None
        if not row[key] or row[key] in rows or not check(row):
            raise error(f"{path} is corrupt: line {line} repeats or lacks a {key} or holds "
                        f"an unknown value{hint}")
        rows[row[key]] = row
    return rows


def _known_header(header: list[str]) -> bool:
    """Every required column, each column once, none unknown (optional ones may be absent)."""
    return (len(set(header)) == len(header) and set(header) <= set(COLUMNS)
            and set(REQUIRED) <= set(header))


def _read_optional(row: dict[str, Any]) -> None:
    """The optional columns as numbers: holders derived when absent, the others NaN."""
    text = row.get("holders", "")
    row["holders"] = (int(text) if text != "" else
                      holder_count(row["prevalence"], row["agents"]))
    row["same_as"] = row.get("same_as", "")
    for key in ("collapsed", "quasi_extinction", "llm_tokens", "llm_cost_usd"):
        text = row.get(key, "")
        row[key] = float(text) if text != "" else math.nan
        if math.isinf(row[key]):
            raise ValueError(key)


def write_results(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write the table atomically (a temporary file of its own, then ``os.replace``)."""
    with atomic_open(Path(path), newline="", fsync=True) as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            out = dict(row)
            if isinstance(out["population"], list):
                out["population"] = " ".join(f"{x:g}" for x in out["population"])
            writer.writerow([_cell(out[c] if c not in OPTIONAL else out.get(c, ""))
                             for c in COLUMNS])


def _cell(value: Any) -> str:
    """Canonical text of a cell, the same for fresh rows and rows read back."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return ""  # an optional column not measured
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)
