"""What a policy receives each day: one ``Batch`` of the residents it controls.

A batch holds, for K residents (possibly from several communities: keys are opaque, e.g.
agent names or ``(community, agent)`` tuples), the stacked features and action masks, the
briefings when text is rendered, the day about to be played, and the facts a policy needs
beyond the features (``legal(r)``: known factories, the residents in each view slot by name,
allies, wealth, message limits; ``slot_factories()``: the factory in each factory slot).
The legal facts are the same in every observation mode and are computed only for the rows
a policy asks about.

A policy returns one action per key and may report how each decision went in
``batch.results[key]`` (an LLM policy writes ``{"decision": "valid" | "retried" |
"fallback", ...}``); the runner counts those outcomes per resident.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from civa_env.world.day import Observation


@dataclass
class Batch:
    """The residents a policy decides for today (see the module docstring)."""

    keys: list[Hashable]  # (K,)
    features: np.ndarray  # (K, F) float32
    masks: np.ndarray  # (K, A) bool: valid flat action ids
    day: np.ndarray  # (K,) int64: the day about to be played (1 = the first day)
    texts: list[str] | None = None  # (K,) briefings; None when no text is rendered
    legal_facts: Sequence[Mapping[str, Any]] | None = None  # (K,) lazily computed mappings
    # (K, S) int: the factory in each factory slot (-1 empty; ``civa_env.world.slots``).
    factory_slots: np.ndarray | None = None
    results: dict[Hashable, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def legal(self, r: int) -> Mapping[str, Any] | None:
        """Legal facts of row ``r``: ``factories`` (known ids), ``targets`` (names per view
        slot), ``allies`` (names), ``wealth``, ``can_upgrade``, ``max_messages``,
        ``max_message_chars``; None for a row given without them (e.g. the last observation
        of a resident who starved)."""
        if self.legal_facts is None:
            raise ValueError("this batch carries no legal facts: pass the infos of "
                             "env.reset/env.step to Batch.from_observations")
        return self.legal_facts[r]

    def slot_factories(self) -> np.ndarray | None:
        """(K, S) int64: the factory number in each row's factory slots (-1 empty), from the
        observation, else from the legal facts (``factory_slots``; a row without them, the
        last observation of a resident who starved, holds none); None without either."""
        if self.factory_slots is not None:
            return np.asarray(self.factory_slots, np.int64)
        given = [f for f in self.legal_facts or () if f is not None]
        if not given:
            return None
        out = np.full((len(self.keys), len(given[0]["factory_slots"])), -1, np.int64)
        for r, f in enumerate(self.legal_facts):
            if f is not None:
                out[r] = f["factory_slots"]
        return out

    @classmethod
    def concat(cls, parts: Sequence[Batch]) -> Batch:
        """One batch of several (e.g. the same policy's residents in several communities)."""
        if not parts:
            raise ValueError("Batch.concat needs at least one batch")
        if len(parts) == 1:
            return parts[0]
        texts = None
        if all(p.texts is not None for p in parts):
            texts = [t for p in parts for t in p.texts]
        legal = None
        if all(p.legal_facts is not None for p in parts):
            legal = [f for p in parts for f in p.legal_facts]
        table = None
        if all(p.factory_slots is not None for p in parts):
            table = np.concatenate([p.factory_slots for p in parts])
        return cls(keys=[k for p in parts for k in p.keys],
                   features=np.concatenate([p.features for p in parts]),
                   masks=np.concatenate([p.masks for p in parts]),
                   day=np.concatenate([p.day for p in parts]), texts=texts, legal_facts=legal,
                   factory_slots=table)

    @classmethod
    def from_seen(cls, seen: Observation, keys: list[Hashable],
                  sel: np.ndarray | None = None) -> Batch:
        """A batch of rows ``sel`` (all by default) of ``World.observe``'s result, keyed by
        ``keys`` (one per selected row); the legal facts stay lazy."""
        if sel is None:
            sel = np.arange(len(seen.rows))
        return cls(keys=keys, features=seen.features[sel], masks=seen.masks[sel].view(bool),
                   day=np.full(len(sel), seen.day, np.int64),
                   texts=None if seen.texts is None else [seen.texts[r] for r in sel.tolist()],
                   legal_facts=seen.legal.take(sel), factory_slots=seen.factory_slots[sel])

    @classmethod
    def from_observations(cls, observations: Mapping[Hashable, Mapping[str, Any]],
                          infos: Mapping[Hashable, Mapping[str, Any]] | None = None,
                          day: int | None = None) -> Batch:
        """A batch from PettingZoo dicts (``env.step``'s observations and infos).

        Texts are kept when every observation has one; legal facts come from
        ``infos[key]["legal"]`` (present in every observation mode for the living; a row
        without them reads None). The day is ``day``, else ``infos[key]["day"]``. In
        ``obs_mode="features"`` an observation is the features array itself and its mask is
        ``infos[key]["action_mask"]``: pass the living residents' (``env.living_agents``).
        """
        keys = list(observations)
        infos = infos or {}
        if not keys:
            return cls(keys=[], features=np.zeros((0, 0), np.float32),
                       masks=np.zeros((0, 0), bool), day=np.zeros(0, np.int64))
        observations = {k: _as_dict(observations[k], infos.get(k), k) for k in keys}
        features = np.stack([np.asarray(observations[k]["features"], np.float32) for k in keys])
        masks = np.stack([np.asarray(observations[k]["action_mask"]) for k in keys]) > 0
        texts = [observations[k].get("text", "") for k in keys]
        legal = [(infos.get(k) or {}).get("legal") for k in keys]
        if day is None:
            days = [(infos.get(k) or {}).get("day") for k in keys]
            if any(d is None for d in days):
                raise ValueError("Batch.from_observations needs the day: pass day= or the "
                                 "infos of env.reset/env.step")
            day_arr = np.array(days, np.int64)
        else:
            day_arr = np.full(len(keys), day, np.int64)
        return cls(keys=keys, features=features, masks=masks, day=day_arr,
                   texts=texts if all(texts) else None,
                   legal_facts=legal if any(f is not None for f in legal) else None)


def _as_dict(obs: Any, info: Mapping[str, Any] | None, key: Hashable) -> Mapping[str, Any]:
    """An observation as a dict: ``obs_mode="features"`` gives the features array alone,
    with the mask in the infos."""
    if isinstance(obs, Mapping):
        return obs
    if info is None or "action_mask" not in info:
        raise ValueError(f"observation of {key!r} is an array (obs_mode='features'): its "
                         "mask is in infos[key]['action_mask']; pass the infos")
    return {"features": obs, "action_mask": info["action_mask"]}
