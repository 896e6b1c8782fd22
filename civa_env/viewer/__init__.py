"""``civa view``: one self-contained HTML page that shows what happened in a run.

    from civa_env.viewer import build_page
    build_page("runs/my-run")            # writes runs/my-run/view.html

The page needs no server and no network: the run's data, the script and the styles are
inlined. It draws with canvas from compact columnar data (see ``data.py``), so a run of
1000 residents over 100 days opens in a few seconds. A truncated ``events.jsonl`` (an
interrupted run) gives a page of the complete days with a banner saying where the log ends;
a missing one, or one that names a resident or a factory the run does not have, is an error
naming the file (and the line). Texts that are not valid Unicode (a lone surrogate in a
message) are kept, escaped in the page's JSON. The page is written through a temporary file
that is removed on any failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from civa_env import style
from civa_env.experiments import runfolder
from civa_env.experiments.runfolder import SettingError, atomic_open
from civa_env.policies.llm.diagnostics import warnings as diagnostic_warnings
from civa_env.viewer import data as d
from civa_env.viewer.layout import spring_layout
from civa_env.viewer.residents import read_reflections, resident_table
from civa_env.world import behaviours
from civa_env.world.config import Config
from civa_env.world.kinds import EventKind

__all__ = ["build_page", "page_data"]

# Messages, reasons and reflections together, in characters, before each is cut.
MAX_TEXT_CHARS = 40_000_000
# Per-policy and per-condition breakdowns of metrics.json, shown as tables of their own.
GROUP_KEYS = ("by_policy", "by_condition")

PLACEHOLDER = re.compile(r"/\*__(?:CSS|JS)__\*/|__(?:TITLE|DATA)__")
# UTF-16 surrogates: in a Python str they are lone (a text decoded from a JSON "\\ud800"),
# which UTF-8 cannot encode.
SURROGATE = re.compile("[\ud800-\udfff]")

# Edges that pull residents together in the layout, and how strongly.
LAYOUT_PULL = {EventKind.ALLIANCE_FORMED: 3.0, EventKind.GIFT: 0.5, EventKind.BIRTH: 1.0,
               EventKind.MERGE_PROPOSAL: 0.3}


def page_data(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Everything the page shows, as a JSON-ready dict (typed arrays as base64).

    Raises:
        civa_env.experiments.runfolder.RunFolderError: the folder, ``config.json`` or
            ``events.jsonl`` is missing or broken (the message names the file).
    """
    run_dir = Path(run_dir)
    config_json, cfg, log = d.load_run(run_dir)
    cols, texts = log.columns()
    d.check_indices(run_dir, cols, cfg)
    census = log.census
    d.check_census(run_dir, census)
    days = np.array([c["day"] for c in census], np.int32)
    partial = log.partial_reason
    n_used = _residents_used(cols, cfg)
    born, died, parent = d.resident_lives(cols, cfg, n_used)
    table = resident_table(config_json, cfg, cols, n_used, runfolder.read_residents(run_dir))
    behaviour_data, _ = d.behaviour_rows(cols, texts, census, cfg)
    summary, summary_source = d.summary_of(run_dir, log, cfg, partial is not None)
    series, actions = d.census_series(census)
    reflections, transcript_note = read_reflections(run_dir, n_used, d.MAX_REFLECTION_CHARS)
    strings, text_rows, text_idx, refl, cut_note = _strings(texts, reflections)
    incomplete = _incomplete(cfg, census, days, partial)
    notes = [n for n in (transcript_note, cut_note) if n]
    notes += _status_notes(config_json, partial, incomplete)
    return d.to_jsonable({
        "version": 1,
        "title": run_dir.resolve().name,
        "palette": style.palette(),  # the figures' colours (civa_env.style), for the page
        "nDays": len(days),
        "maxDays": cfg.max_days,
        "days": days.tolist(),
        "partial": partial,
        "incomplete": incomplete,
        "notes": notes,
        "config": config_json,
        "summary": {k: _without_diagnostics(v) if k == "llm" else v
                    for k, v in summary.items()
                    if k not in d.SERIES_KEYS and k not in GROUP_KEYS},
        "llmDiagnostics": _llm_diagnostics(summary),
        "groups": {k: summary[k] for k in GROUP_KEYS if isinstance(summary.get(k), dict)},
        "summarySource": summary_source,
        "census": series,
        "actions": actions,
        "kinds": [k.label for k in EventKind],
        "behaviourNames": list(behaviours.BEHAVIOURS),
        "conditionLabels": d.condition_labels(),
        "residents": _residents(table, cols, n_used, born, died, parent, reflections),
        "alive": d.alive_by_day(cols, days, born, died, cfg),
        "events": _events(cols, days, cfg, n_used),
        "texts": {"rows": d.packed(text_rows, np.int32), "idx": d.packed(text_idx, np.int32)},
        "strings": strings,
        "alliances": d.alliance_intervals(cols, days),
        "behaviours": behaviour_data,
        "reflections": refl,
    })


def _without_diagnostics(llm: Any) -> Any:
    """metrics.json's ``llm`` without ``diagnostics`` (shown in a table of its own)."""
    return {k: v for k, v in llm.items() if k != "diagnostics"} if isinstance(llm, dict) else llm


def _llm_diagnostics(summary: dict[str, Any]) -> dict[str, Any]:
    """``{policy spec: {"figures": ..., "warnings": [...]}}`` from metrics.json's
    ``llm.diagnostics`` (see ``civa_env.policies.llm.diagnostics``); empty without them."""
    llm = summary.get("llm")
    found = llm.get("diagnostics") if isinstance(llm, dict) else None
    if not isinstance(found, dict):
        return {}
    return {spec: {"figures": figures, "warnings": diagnostic_warnings(figures)}
            for spec, figures in found.items() if isinstance(figures, dict)}


def _residents_used(cols: dict[str, np.ndarray], cfg: Config) -> int:
    """Names of the pool the run used: the founders and everyone the log mentions."""
    used = [cfg.n_agents]
    for key in ("actor", "target"):
        if len(cols[key]):
            used.append(int(cols[key].max()) + 1)
    return max(used)


def _layout(conditions: np.ndarray, cols: dict[str, np.ndarray], n_used: int) -> np.ndarray:
    """(n_used, 2) positions: attraction along alliances, gifts, proposals and births of the
    whole run, residents of one condition starting together."""
    pull = np.array([LAYOUT_PULL.get(EventKind(k), 0.0) for k in range(len(EventKind))])
    w = pull[cols["kind"]]
    sel = (w > 0) & (cols["actor"] >= 0) & (cols["target"] >= 0)
    # About 4 million sampled repulsions at most: 60 rounds x 48 samples up to ~1400
    # residents, fewer above (4000 residents: 30 rounds x 32 samples, about a second).
    rounds = int(np.clip(4e6 / (48 * max(n_used, 1)), 30, 60))
    samples = int(np.clip(4e6 / (rounds * max(n_used, 1)), 16, 48))
    return spring_layout(conditions, cols["actor"][sel], cols["target"][sel], w[sel],
                         rounds=rounds, samples=samples)


def _strings(texts: dict[int, str], reflections: list[dict[str, Any]]
             ) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, Any], str | None]:
    """Messages, invalid-action reasons and reflections as one deduplicated string table.

    Returns the strings, the event rows that carry a text and their string index, the
    reflections' columns, and a note when the texts had to be cut.
    """
    strings: list[str] = []
    string_index: dict[str, int] = {}

    def intern(text: str) -> int:
        if text not in string_index:
            string_index[text] = len(strings)
            strings.append(text)
        return string_index[text]

    text_rows = np.array(sorted(texts), np.int32)
    text_idx = np.array([intern(texts[r]) for r in text_rows.tolist()], np.int32)
    refl = {"agent": d.packed([r["agent"] for r in reflections], np.int32),
            "day": d.packed([r["day"] for r in reflections], np.int32),
            "text": d.packed([intern(r["text"]) for r in reflections], np.int32),
            "label": d.packed([intern(r["label"]) for r in reflections], np.int32)}
    text_total = sum(len(t) for t in strings)
    note = None
    if text_total > MAX_TEXT_CHARS:
        # Huge LLM runs: cut every text to the same share instead of writing a page that
        # no browser opens comfortably.
        cap = max(MAX_TEXT_CHARS // len(strings), 40)
        strings = [t if len(t) <= cap else t[:cap] + " [...]" for t in strings]
        note = (f"Texts cut to {cap} characters each to keep the page small "
                f"({text_total} characters in all; events.jsonl has them in full).")
    return strings, text_rows, text_idx, refl, note


def _incomplete(cfg: Config, census: list[dict[str, Any]], days: np.ndarray,
                partial: str | None) -> str | None:
    """A note when a complete log stops before ``max_days`` with residents alive."""
    if partial is None and len(days) < cfg.max_days and (not census or census[-1]["population"]):
        return (f"The run stopped after day {int(days[-1]) if len(days) else 0} of "
                f"{cfg.max_days} with residents still alive (interrupted?).")
    return None


def _status_notes(config_json: dict[str, Any], partial: str | None,
                  incomplete: str | None) -> list[str]:
    """What config.json's status adds: a failed run, or one still running (or killed) whose
    log does not already say it ends early."""
    status = config_json.get("status")
    if isinstance(status, str) and status not in (runfolder.STATUS_COMPLETE,
                                                  runfolder.STATUS_RUNNING):
        return [f"config.json says the run {status}"]
    if status == runfolder.STATUS_RUNNING and partial is None and incomplete is None:
        return ["config.json says the run is still running (or was killed): "
                "the page shows the days logged so far"]
    return []


def _residents(table: dict[str, Any], cols: dict[str, np.ndarray], n_used: int,
               born: np.ndarray, died: np.ndarray, parent: np.ndarray,
               reflections: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-resident columns: condition, policy, life, position, whether it reflected."""
    xy = _layout(table["condition"], cols, n_used)
    return {
        "n": n_used,
        "condition": d.packed(table["condition"], np.int8),
        "conditionSource": table["condition_source"],
        "policy": d.packed(table["policy"], np.int8),
        "policyNames": table["policy_names"],
        "born": d.packed(np.minimum(born, 1 << 30), np.int32),
        "died": d.packed(died, np.int32),
        "parent": d.packed(parent, np.int32),
        "x": d.packed(xy[:, 0], np.float32),
        "y": d.packed(xy[:, 1], np.float32),
        "llm": d.packed(np.isin(np.arange(n_used), [r["agent"] for r in reflections]),
                        np.uint8),
    }


def _events(cols: dict[str, np.ndarray], days: np.ndarray, cfg: Config,
            n_used: int) -> dict[str, Any]:
    """The event columns, with each day's offset into them."""
    idt = d.index_dtype(n_used)
    return {
        "off": d.packed(d.day_offsets(cols["day"], days), np.int32),
        "kind": d.packed(cols["kind"], np.uint8),
        "actor": d.packed(cols["actor"], idt),
        "target": d.packed(cols["target"], idt),
        "factory": d.packed(cols["factory"], np.int8 if cfg.n_factories < 127
                            else np.int16 if cfg.n_factories < 32767 else np.int32),
        "amount": d.packed(cols["amount"], np.float32),
        "flag": d.packed(cols["flag"], np.uint8),
    }


def _asset(name: str) -> str:
    return resources.files("civa_env.viewer").joinpath(name).read_text(encoding="utf-8")


def render(payload: dict[str, Any]) -> str:
    """The page's HTML for a payload of ``page_data``."""
    blob = json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    # "<" only occurs inside JSON strings: escaping it means no message can close the
    # script element or open an HTML comment inside it ("</script>", "<!--").
    blob = blob.replace("<", "\\u003c")
    # A lone surrogate (only ever inside a JSON string) as its JSON escape: the page's
    # JSON.parse gives back the very same string, and the page encodes as UTF-8.
    blob = SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", blob)
    title = SURROGATE.sub("\ufffd", str(payload.get("title", "run")))
    title = title.replace("&", "&amp;").replace("<", "&lt;")
    values = {"/*__CSS__*/": _asset("page.css"), "/*__JS__*/": _asset("page.js"),
              "__TITLE__": title, "__DATA__": blob}
    template = _asset("page.html")
    found = set(PLACEHOLDER.findall(template))
    if found != set(values):
        raise RuntimeError(f"viewer template placeholders {sorted(found)} != {sorted(values)}")
    # One pass, so text inserted for one placeholder is never searched for another.
    return PLACEHOLDER.sub(lambda m: values[m.group(0)], template)


def build_page(run_dir: str | os.PathLike, out_path: str | os.PathLike | None = None) -> Path:
    """Write the viewer page of a run folder and return its path.

    Args:
        run_dir: a run folder written by ``civa run`` (config.json, events.jsonl, ...).
        out_path: where to write the page; default ``run_dir/view.html``.

    Raises:
        civa_env.experiments.runfolder.RunFolderError: the folder, ``events.jsonl`` or
            ``config.json`` is missing or broken (the message names the file).
        civa_env.experiments.runfolder.SettingError: ``out_path`` is a folder.

    Nothing is left behind on a failure: the page goes through a temporary file beside
    ``out_path`` that replaces it only once written, and a folder made for it is removed.
    """
    run_dir = Path(run_dir)
    out = Path(out_path) if out_path is not None else run_dir / "view.html"
    if out.is_dir():
        raise SettingError("{out} {path} is a folder; give the HTML file to write (e.g. "
                           "{example})", {"out": "out_path"},
                           {"path": out, "example": out / "view.html"})
    html = render(page_data(run_dir))
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_open(out) as f:
            f.write(html)
    except BaseException:
        for folder in made:  # the deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return out
