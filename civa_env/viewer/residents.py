"""Who each resident is: value condition, policy, and (for LLM residents) reflections.

The event log does not name conditions or policies, so they come from the run folder:

1. ``residents.json`` (``{agent: {"policy": ..., "condition": ..., ...}}``, written by the
   runner), then ``config.json`` ``residents`` (``{agent: "policy spec"}``);
2. else the conditions are redrawn from the config's seed, exactly as ``reset`` draws them,
   and used only if that draw reproduces the founders' starting wealth found in the log;
   newcomers take their parent's condition when ``inherit_values`` is set;
3. else they are shown as unknown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from civa_env.world.config import Config
from civa_env.world.day import reset as reset_world
from civa_env.world.events import agent_index
from civa_env.world.kinds import EventKind
from civa_env.world.values import ValueCondition

UNKNOWN = -1
# Fields of an LLM answer shown as the resident's thoughts (others are its actions).
THOUGHT_FIELDS = ("reflection", "plan", "memory", "thoughts", "reasoning")


def _policy_name(spec: Any) -> str | None:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        for key in ("policy", "spec", "name"):
            if isinstance(spec.get(key), str):
                return spec[key]
            if isinstance(spec.get(key), dict) and isinstance(spec[key].get("name"), str):
                return spec[key]["name"]
    return None


def _condition_code(spec: Any) -> int | None:
    value = spec.get("condition") if isinstance(spec, dict) else None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return ValueCondition.parse(value).code
        except ValueError:
            return None
    return None


def _recorded(config_json: dict[str, Any]) -> dict[int, Any]:
    """{resident index: spec} from config.json (several shapes accepted)."""
    residents = config_json.get("residents") if isinstance(config_json, dict) else None
    out: dict[int, Any] = {}
    if isinstance(residents, dict):
        for name, spec in residents.items():
            try:
                out[agent_index(name)] = spec
            except ValueError:
                continue
    elif isinstance(residents, list):
        for k, spec in enumerate(residents):
            name = spec.get("agent", spec.get("name")) if isinstance(spec, dict) else None
            try:
                out[agent_index(name) if isinstance(name, str) else k] = spec
            except ValueError:
                continue
    return out


def _seeds(config_json: dict[str, Any], cfg: Config) -> list[int]:
    seeds = []
    for value in (config_json.get("seed") if isinstance(config_json, dict) else None,
                  cfg.seed):
        if isinstance(value, int) and value not in seeds:
            seeds.append(value)
    return seeds


def redraw_conditions(config_json: dict[str, Any], cfg: Config, cols: dict[str, np.ndarray],
                      n_used: int) -> np.ndarray | None:
    """Founders' conditions redrawn from the seed, if the draw matches the log's day 1."""
    first = (cols["day"] == cols["day"].min()) if len(cols["day"]) else np.zeros(0, bool)
    sel = first & (cols["actor"] >= 0) & ~np.isnan(cols["wealth"]) & (
        cols["actor"] < cfg.n_agents)
    if not sel.any():
        return None
    for seed in _seeds(config_json, cfg):
        state = reset_world(cfg, seed).state
        if np.allclose(state.wealth[cols["actor"][sel]], cols["wealth"][sel], atol=1e-5):
            out = np.full(n_used, UNKNOWN, np.int16)
            out[: cfg.n_agents] = state.condition[: cfg.n_agents]
            return out
    return None


def resident_table(config_json: dict[str, Any], cfg: Config, cols: dict[str, np.ndarray],
                   n_used: int, residents_json: dict[str, Any] | None = None) -> dict[str, Any]:
    """Condition code (-1 unknown) and policy index per resident, and where they came from."""
    recorded = _recorded(config_json)
    from_file = _recorded({"residents": residents_json or {}})
    for i, spec in from_file.items():
        if isinstance(spec, dict) and _policy_name(spec) is None and i in recorded:
            spec = {**spec, "policy": _policy_name(recorded[i])}
        recorded[i] = spec
    condition = np.full(n_used, UNKNOWN, np.int16)
    source = "unknown (the run folder does not record them and the seed does not reproduce day 1)"
    codes = {i: _condition_code(spec) for i, spec in recorded.items() if i < n_used}
    codes = {i: c for i, c in codes.items() if c is not None}
    if codes:
        condition[list(codes)] = list(codes.values())
        source = "recorded in residents.json" if from_file else "recorded in config.json"
    else:
        redrawn = redraw_conditions(config_json, cfg, cols, n_used)
        if redrawn is not None:
            condition = redrawn
            source = "redrawn from the config's seed (checked against day 1 of the log)"
    if cfg.inherit_values:
        # Newcomers take their parent's condition (births in log order: parents first).
        b = np.flatnonzero(cols["kind"] == EventKind.BIRTH)
        for parent, kid in zip(cols["actor"][b].tolist(), cols["target"][b].tolist(),
                               strict=True):
            if condition[kid] == UNKNOWN and kid < n_used:
                condition[kid] = condition[parent]
    names = {i: _policy_name(spec) for i, spec in recorded.items() if i < n_used}
    policies = sorted({n for n in names.values() if n})
    default = None if policies else _default_policy(config_json)
    if default and default not in policies:
        policies.append(default)
    policy = np.full(n_used, -1, np.int16)
    if default:
        policy[:] = policies.index(default)
    for i, name in names.items():
        if name:
            policy[i] = policies.index(name)
    # Newcomers take their parent's policy (runner rule); residents.json may not list the
    # newest ones when the run crashed.
    b = np.flatnonzero(cols["kind"] == EventKind.BIRTH)
    for parent, kid in zip(cols["actor"][b].tolist(), cols["target"][b].tolist(), strict=True):
        if kid < n_used and policy[kid] < 0:
            policy[kid] = policy[parent]
    return {"condition": condition, "condition_source": source, "policy": policy,
            "policy_names": policies}


def _default_policy(config_json: dict[str, Any]) -> str | None:
    """The policy of residents config.json does not list: a sole policy, if there is one."""
    policies = config_json.get("policies") if isinstance(config_json, dict) else None
    if isinstance(policies, str):
        return policies
    if isinstance(policies, dict) and len(policies) == 1:
        key, spec = next(iter(policies.items()))
        return _policy_name(spec) or str(key)
    if isinstance(policies, list) and len(policies) == 1:
        return _policy_name(policies[0])
    policy = config_json.get("policy") if isinstance(config_json, dict) else None
    return _policy_name(policy) if policy is not None else None


def readable_answer(answer: Any) -> str:
    """A model's answer as text: the fields of a JSON object one a line ("reflection: ...")."""
    value = answer
    if isinstance(answer, str):
        try:
            value = json.loads(answer)
        except ValueError:
            return answer
    if isinstance(value, dict) and value:
        # The action fields of a combined answer are in the event log already.
        own = {k: v for k, v in value.items() if k in THOUGHT_FIELDS} or value
        return "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}"
                         for k, v in own.items())
    return answer if isinstance(answer, str) else json.dumps(answer)


def read_reflections(run_dir: Path, n_used: int, max_chars: int,
                     total_chars: int = 20_000_000) -> tuple[list[dict], str | None]:
    """Reflections (answers of the perception or combined phase) from transcript.jsonl.

    Each is cut to ``max_chars``, and all to ``total_chars`` together. A broken line is
    skipped and counted; the note says so.
    """
    path = run_dir / "transcript.jsonl"
    if not path.is_file():
        return [], None
    out, broken = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
                agent = agent_index(record["agent"])
                day = int(record["day"])
            except (ValueError, KeyError, TypeError):
                broken += 1
                continue
            if record.get("phase") not in ("perception", "combined") or agent >= n_used:
                continue
            answer = readable_answer(record.get("answer"))
            if len(answer) > max_chars:
                answer = answer[:max_chars] + " [...]"
            label = "reflection" if record["phase"] == "perception" else "reflection (combined)"
            attempt, outcome = record.get("attempt"), record.get("outcome")
            if (isinstance(attempt, int) and attempt > 1) or outcome not in (None, "valid"):
                label += f", attempt {attempt}: {outcome}"
            out.append({"agent": agent, "day": day, "label": label, "text": answer})
    notes = [f"{path.name}: {broken} unreadable lines skipped"] if broken else []
    total = sum(len(r["text"]) for r in out)
    if total > total_chars:
        # A long LLM run: every reflection is cut to the same share of the budget.
        cap = max(total_chars // len(out), 80)
        for r in out:
            if len(r["text"]) > cap:
                r["text"] = r["text"][:cap] + " [...]"
        notes.append(f"{path.name}: reflections cut to {cap} characters each to keep the "
                     "page small (the transcript has them in full)")
    return out, "; ".join(notes) or None
