"""The project's one figure style: a palette shared by the plots and the viewer page, and the
matplotlib settings of every figure.

The palette is written here once. ``civa_env.experiments.plots`` draws with it, and
``civa_env.viewer`` puts ``palette()`` into each page as JSON, where the script draws with
the same colours (the tests compare the two). Colours are fixed per:

* action kind (``ACTION_COLOURS``, keys as in the census: ``work``, ``attack``, ...);
* value condition (``condition_colour``: one hue per Schwartz value, full for ``with:``, pale
  for ``without:``, grey for baseline);
* policy (``policy_colour``: by the policy's name, the part of a spec before ``:``);
* behaviour (``BEHAVIOUR_COLOURS``) and census series (``SERIES_COLOURS``).

Figures come in two widths: ``COLUMN_WIDTH`` (one column of a two-column paper, about
3.4 in) and ``PAGE_WIDTH`` (the text width of a page, about 7 in). ``MPL_STYLE`` is an rc
dict for ``matplotlib.pyplot.rc_context``; nothing here imports matplotlib.
"""

from __future__ import annotations

from typing import Any

from civa_env.world.values import Value, ValueCondition

COLUMN_WIDTH = 3.4  # inches
PAGE_WIDTH = 7.0  # inches
PNG_DPI = 200

# Colours of what residents do (stacked bars of the actions per day, edges of the graph).
ACTION_COLOURS = {
    "work": "#60a5fa",
    "explore": "#a3e635",
    "upgrade_self": "#c084fc",
    "upgrade_factory": "#e879f9",
    "idle": "#cbd5e1",
    "gift": "#16a34a",
    "attack": "#dc2626",
    "merge_proposal": "#f59e0b",
    "alliance_formed": "#78350f",
    "alliance_dissolved": "#111827",
    "message": "#2563eb",
    "birth": "#7c3aed",
    "death": "#111827",
}
# One hue per value, in ``Value`` order.
VALUE_HUES = {
    "self-direction": "#e6194b", "stimulation": "#3cb44b", "hedonism": "#4363d8",
    "achievement": "#f58231", "power": "#911eb4", "security": "#42d4f4",
    "conformity": "#f032e6", "tradition": "#9a6324", "benevolence": "#469990",
    "universalism": "#808000",
}
BASELINE_COLOUR = "#8c96a8"
UNKNOWN_COLOUR = "#d0d0d0"
WITHOUT_LIGHTEN = 0.35  # share of white mixed into a value's hue for ``without:``
POLICY_COLOURS = {"scripted": "#475569", "random": "#b45309", "llm": "#7c3aed",
                  "ppo": "#0e7490"}
OTHER_POLICY_COLOUR = "#6b7280"
BEHAVIOUR_COLOURS = {"cooperation": "#16a34a", "betrayal": "#b91c1c", "deception": "#7c3aed",
                     "power_seeking": "#ea580c", "free_riding": "#0891b2"}
SERIES_COLOURS = {"population": "#111827", "wealth_mean": "#2563eb",
                  "wealth_median": "#f59e0b", "gini": "#b91c1c", "baseline": "#6b7280"}
# The graph's edges: what residents did to each other, in their action's colour.
EDGE_COLOURS = {"alliance": "#5a6270", "message": ACTION_COLOURS["message"],
                "broadcast": ACTION_COLOURS["message"],
                "merge_proposal": ACTION_COLOURS["merge_proposal"],
                "gift": ACTION_COLOURS["gift"], "attack": ACTION_COLOURS["attack"],
                "birth": ACTION_COLOURS["birth"]}

MPL_STYLE: dict[str, Any] = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "legend.fontsize": 7, "figure.titlesize": 9,
    "axes.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
    "xtick.major.width": 0.6, "ytick.major.width": 0.6,
    "lines.linewidth": 1.2, "lines.markersize": 3, "patch.linewidth": 0,
    "legend.frameon": False, "legend.handlelength": 1.6, "legend.columnspacing": 1.2,
    "figure.constrained_layout.use": True, "figure.dpi": 100,
    "savefig.dpi": PNG_DPI, "savefig.facecolor": "white",
    # Fonts embedded as TrueType (Type 42), which journals accept, and text kept as text in SVG.
    "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none",
}


def lighten(colour: str, share: float) -> str:
    """``#rrggbb`` mixed with ``share`` of white."""
    rgb = [int(colour[k:k + 2], 16) for k in (1, 3, 5)]
    return "#" + "".join(f"{round(v + (255 - v) * share):02x}" for v in rgb)


def condition_colour(condition: str | ValueCondition) -> str:
    """The colour of a value condition (``baseline``, ``with:power``, ``without:power``);
    ``UNKNOWN_COLOUR`` for anything else."""
    text = str(condition)
    if text == "baseline":
        return BASELINE_COLOUR
    head, _, value = text.partition(":")
    hue = VALUE_HUES.get(value)
    if hue is None or head not in ("with", "without"):
        return UNKNOWN_COLOUR
    return hue if head == "with" else lighten(hue, WITHOUT_LIGHTEN)


CONDITION_COLOURS = {str(c): condition_colour(c) for c in
                     (ValueCondition.from_code(k) for k in range(1 + 2 * len(Value)))}


def policy_colour(spec: str) -> str:
    """The colour of a policy spec (``ppo:runs/x/model.zip`` takes ``ppo``'s)."""
    return POLICY_COLOURS.get(spec.partition(":")[0].partition("=")[0], OTHER_POLICY_COLOUR)


def palette() -> dict[str, Any]:
    """The palette as JSON-ready data (what the viewer page gets)."""
    return {"actions": dict(ACTION_COLOURS), "conditions": dict(CONDITION_COLOURS),
            "unknown": UNKNOWN_COLOUR, "policies": dict(POLICY_COLOURS),
            "otherPolicy": OTHER_POLICY_COLOUR, "behaviours": dict(BEHAVIOUR_COLOURS),
            "series": dict(SERIES_COLOURS), "edges": dict(EDGE_COLOURS)}
