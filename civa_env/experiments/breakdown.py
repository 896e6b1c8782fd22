"""Per-group breakdowns of a run (by policy, by value condition) and the residents table.

``breakdown`` counts, for each group of residents, survival, wealth, actions by kind (the
kinds metrics' census counts as actions), behaviours (by the actor's group) and, for LLM
residents, decision outcomes. ``group_table`` prints groups as aligned plain text (what
``civa run`` shows). ``residents_table`` is what ``residents.json`` holds. See
docs/run-folder.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from civa_env.world import behaviours
from civa_env.world.day import World
from civa_env.world.events import agent_name
from civa_env.world.kinds import ACTION_KINDS, LLM_OUTCOMES
from civa_env.world.values import ValueCondition


def llm_counts(counts: np.ndarray) -> dict[str, Any]:
    """Decision outcomes of some residents: (n, 3) counts in ``LLM_OUTCOMES`` order."""
    total = counts.sum(axis=0)
    decisions = int(total.sum())
    out: dict[str, Any] = {"decisions": decisions}
    out.update({o: int(c) for o, c in zip(LLM_OUTCOMES, total.tolist(), strict=True)})
    out["fallback_rate"] = out["fallback"] / decisions if decisions else 0.0
    out["fallback_residents"] = int((counts[:, LLM_OUTCOMES.index("fallback")] > 0).sum())
    return out


def breakdown(world: World, group: np.ndarray, labels: Sequence[str], *,
              cols: Mapping[str, np.ndarray] | None = None,
              masks: Mapping[str, np.ndarray] | None = None,
              llm: np.ndarray | None = None) -> dict[str, dict]:
    """Per-group survival, wealth, actions and behaviours (and LLM decision outcomes).

    Args:
        world: a finished (or running) world (its state, config and event log).
        group: (N,) int group index per resident of the pool, -1 for unused names.
        labels: name of each group index.
        cols: ``world.log.columns()[0]`` when the caller has it already.
        masks: ``behaviours.detect`` of the log (one bool array per behaviour, aligned with
            the log's rows), so that several breakdowns share one detection.
        llm: (N, 3) int counts of each resident's LLM decisions by ``LLM_OUTCOMES``; groups
            with any get an ``llm`` entry (see ``llm_counts``).
    """
    log, cfg = world.log, world.cfg
    world = world.state
    used = np.arange(world.n_pool) < world.n_used
    last_day = world.day
    end = np.where(world.died_day >= 0, world.died_day, last_day)
    days = np.where(used, np.maximum(end - world.born_day, 0), 0)
    if cols is None or masks is None:
        cols, texts = log.columns()
        masks = behaviours.detect(cols, texts, log.census, recent_days=cfg.recent_days,
                                  deception_window=cfg.deception_window)
    actor = cols["actor"].astype(np.int64)
    actor_group = np.where(actor >= 0, group[np.maximum(actor, 0)], -1)
    out = {}
    for g, label in enumerate(labels):
        members = used & (group == g)
        if not members.any():
            continue
        mine = actor_group == g
        living = members & world.alive
        rd = int(days[members].sum())
        actions = {k.label: int(((cols["kind"] == k) & mine).sum()) for k in ACTION_KINDS}
        counts = {b: int((m & mine).sum()) for b, m in masks.items()}
        out[label] = {
            "residents": int(members.sum()),
            "founders": int((members & (world.parent < 0)).sum()),
            "born": int((members & (world.parent >= 0)).sum()),
            "alive_end": int(living.sum()),
            "survival": float(living.sum() / members.sum()),
            "resident_days": rd,
            "mean_wealth_end": float(world.wealth[living].mean()) if living.any() else 0.0,
            "actions": actions,
            "actions_per_resident_day": {k: c / max(rd, 1) for k, c in actions.items()},
            "behaviours": counts,
            "behaviour_rates": {b: c / max(rd, 1) for b, c in counts.items()},
        }
        if llm is not None and llm[members].any():
            out[label]["llm"] = llm_counts(llm[members])
    return out


# Columns of ``group_table``: heading, width, and the cell of a group.
GROUP_COLUMNS: tuple[tuple[str, int, Any], ...] = (
    ("residents", 9, lambda g: str(g["residents"])),
    ("alive", 6, lambda g: str(g["alive_end"])),
    ("survival", 8, lambda g: f"{g['survival']:.2f}"),
    ("wealth", 7, lambda g: f"{g['mean_wealth_end']:.1f}"),
    ("gifts/d", 8, lambda g: f"{g['actions_per_resident_day']['gift']:.3f}"),
    ("attacks/d", 9, lambda g: f"{g['actions_per_resident_day']['attack']:.3f}"),
)


def group_table(groups: Mapping[str, Mapping[str, Any]], heading: str = "group",
                indent: str = "    ") -> list[str]:
    """A breakdown (``breakdown``'s result) as lines of plain text: one row per group, the
    label column as wide as the longest label (a ``ppo:`` checkpoint path is shown whole),
    so that every number stays under its heading."""
    width = max([len(heading), 24, *(len(str(name)) for name in groups)])
    head = " ".join([f"{heading:<{width}}", *(f"{h:>{w}}" for h, w, _ in GROUP_COLUMNS)])
    rows = [" ".join([f"{str(name):<{width}}", *(f"{cell(g):>{w}}" for _, w, cell in
                                                 GROUP_COLUMNS)])
            for name, g in groups.items()]
    return [indent + line for line in (head, *rows)]


def residents_table(world: World, owner: np.ndarray, specs: Sequence[str],
                    llm: np.ndarray | None = None) -> dict[str, dict]:
    """One record per resident who ever lived: policy, value condition, family, fate.

    With ``llm`` ((N, 3) decision outcome counts), residents who made LLM decisions also get
    ``"llm": {"valid": ..., "retried": ..., "fallback": ...}``.
    """
    w = world.state
    out = {}
    for i in range(w.n_used):
        out[agent_name(i)] = record = {
            "policy": specs[owner[i]] if owner[i] >= 0 else None,
            "condition": str(ValueCondition.from_code(int(w.condition[i]))),
            "parent": agent_name(int(w.parent[i])) if w.parent[i] >= 0 else None,
            "born_day": int(w.born_day[i]),
            "died_day": int(w.died_day[i]) if w.died_day[i] >= 0 else None,
            "alive": bool(w.alive[i]),
            "wealth": round(float(w.wealth[i]), 4),
        }
        if llm is not None and llm[i].any():
            record["llm"] = dict(zip(LLM_OUTCOMES, map(int, llm[i].tolist()), strict=True))
    return out
