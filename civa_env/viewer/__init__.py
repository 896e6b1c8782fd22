"""``civa view``: one self-contained HTML page that shows what happened in a run.

    from civa_env.viewer import build_page
    build_page("runs/my-run")            # writes runs/my-run/view.html

The page needs no server and no network: the run's data, the script and the styles are
inlined. It draws with canvas from compact columnar data (see ``data.py``), so a run of
1000 residents over 100 days opens in a few seconds. A truncated ``events.jsonl`` gives a
page of the complete days with a banner saying where the log ends; a missing one is an
error naming it.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from civa_env.viewer import data as d
from civa_env.viewer.data import RunFolderError
from civa_env.viewer.layout import spring_layout
from civa_env.viewer.residents import read_reflections, read_residents_json, resident_table
from civa_env.world import behaviours
from civa_env.world.kinds import EventKind

__all__ = ["RunFolderError", "build_page", "page_data"]

# Messages, reasons and reflections together, in characters, before each is cut.
MAX_TEXT_CHARS = 40_000_000
# Per-policy and per-condition breakdowns of metrics.json, shown as tables of their own.
GROUP_KEYS = ("by_policy", "by_condition")

PLACEHOLDER = re.compile(r"/\*__(?:CSS|JS)__\*/|__(?:TITLE|DATA)__")

# Edges that pull residents together in the layout, and how strongly.
LAYOUT_PULL = {EventKind.ALLIANCE_FORMED: 3.0, EventKind.GIFT: 0.5, EventKind.BIRTH: 1.0,
               EventKind.MERGE_PROPOSAL: 0.3}


def page_data(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Everything the page shows, as a JSON-ready dict (typed arrays as base64)."""
    run_dir = Path(run_dir)
    config_json, cfg, log = d.load_run(run_dir)
    cols, texts = log.columns()
    census = log.census
    days = np.array([c["day"] for c in census], np.int32)
    n_days = len(days)
    partial = getattr(log, "partial_reason", None)
    used = [cfg.n_agents]
    for key in ("actor", "target"):
        if len(cols[key]):
            used.append(int(cols[key].max()) + 1)
    n_used = max(used)

    born, died, parent = d.resident_lives(cols, cfg, n_used)
    table = resident_table(config_json, cfg, cols, n_used, read_residents_json(run_dir))
    behaviour_data, _ = d.behaviour_rows(cols, texts, census, cfg)
    summary, summary_source = d.summary_of(run_dir, log, cfg, partial is not None)
    series, actions = d.census_series(census)
    reflections, transcript_note = read_reflections(run_dir, n_used, d.MAX_REFLECTION_CHARS)

    # Layout: attraction along alliances, gifts, proposals and births of the whole run.
    pull = np.array([LAYOUT_PULL.get(EventKind(k), 0.0) for k in range(len(EventKind))])
    w = pull[cols["kind"]]
    sel = (w > 0) & (cols["actor"] >= 0) & (cols["target"] >= 0)
    # About 4 million sampled repulsions at most: 60 rounds x 48 samples up to ~1400
    # residents, fewer above (4000 residents: 30 rounds x 32 samples, about a second).
    rounds = int(np.clip(4e6 / (48 * max(n_used, 1)), 30, 60))
    samples = int(np.clip(4e6 / (rounds * max(n_used, 1)), 16, 48))
    xy = spring_layout(table["condition"], cols["actor"][sel], cols["target"][sel], w[sel],
                       rounds=rounds, samples=samples)

    # Texts: messages and invalid-action reasons, deduplicated.
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
    if text_total > MAX_TEXT_CHARS:
        # Huge LLM runs: cut every text to the same share instead of writing a page that
        # no browser opens comfortably.
        cap = max(MAX_TEXT_CHARS // len(strings), 40)
        strings = [t if len(t) <= cap else t[:cap] + " [...]" for t in strings]
        notes_extra = [f"Texts cut to {cap} characters each to keep the page small "
                       f"({text_total} characters in all; events.jsonl has them in full)."]
    else:
        notes_extra = []
    idt = d.index_dtype(n_used)
    incomplete = None
    if partial is None and n_days < cfg.max_days and (not census or census[-1]["population"]):
        incomplete = (f"The run stopped after day {int(days[-1]) if n_days else 0} of "
                      f"{cfg.max_days} with residents still alive (interrupted?).")
    notes = [n for n in (transcript_note,) if n] + notes_extra
    summary_table = {k: v for k, v in summary.items()
                     if k not in d.SERIES_KEYS and k not in GROUP_KEYS}
    groups = {k: summary[k] for k in GROUP_KEYS if isinstance(summary.get(k), dict)}
    status = config_json.get("status") if isinstance(config_json, dict) else None
    if isinstance(status, str) and status not in ("complete", "running"):
        notes.append(f"config.json says the run {status}")
    elif status == "running" and partial is None and incomplete is None:
        notes.append("config.json says the run is still running (or was killed): "
                     "the page shows the days logged so far")
    return d.to_jsonable({
        "version": 1,
        "title": run_dir.resolve().name,
        "nDays": n_days,
        "maxDays": cfg.max_days,
        "days": days.tolist(),
        "partial": partial,
        "incomplete": incomplete,
        "notes": notes,
        "config": config_json,
        "summary": summary_table,
        "groups": groups,
        "summarySource": summary_source,
        "census": series,
        "actions": actions,
        "kinds": [k.label for k in EventKind],
        "behaviourNames": list(behaviours.BEHAVIOURS),
        "conditionLabels": d.condition_labels(),
        "residents": {
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
            "llm": d.packed(np.isin(np.arange(n_used),
                                    [r["agent"] for r in reflections]), np.uint8),
        },
        "alive": d.alive_by_day(cols, days, born, died, cfg),
        "events": {
            "off": d.packed(d.day_offsets(cols["day"], days), np.int32),
            "kind": d.packed(cols["kind"], np.uint8),
            "actor": d.packed(cols["actor"], idt),
            "target": d.packed(cols["target"], idt),
            "factory": d.packed(cols["factory"], np.int8 if cfg.n_factories < 127
                                else np.int16),
            "amount": d.packed(cols["amount"], np.float32),
            "flag": d.packed(cols["flag"], np.uint8),
        },
        "texts": {"rows": d.packed(text_rows, np.int32), "idx": d.packed(text_idx, np.int32)},
        "strings": strings,
        "alliances": d.alliance_intervals(cols, days),
        "behaviours": behaviour_data,
        "reflections": refl,
    })


def _asset(name: str) -> str:
    return resources.files("civa_env.viewer").joinpath(name).read_text(encoding="utf-8")


def render(payload: dict[str, Any]) -> str:
    """The page's HTML for a payload of ``page_data``."""
    blob = json.dumps(payload, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    # "<" only occurs inside JSON strings: escaping it means no message can close the
    # script element or open an HTML comment inside it ("</script>", "<!--").
    blob = blob.replace("<", "\\u003c")
    title = str(payload.get("title", "run")).replace("&", "&amp;").replace("<", "&lt;")
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
        RunFolderError: the folder, ``events.jsonl`` or ``config.json`` is missing or broken
            (the message names the file).
    """
    run_dir = Path(run_dir)
    out = Path(out_path) if out_path is not None else run_dir / "view.html"
    html = render(page_data(run_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
