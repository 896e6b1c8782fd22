"""Actions: the structured form, packing and validation (the flat catalogue and the mask
are in ``civa_env.world.catalogue``).

A resident's action is either

* structured, a dict with the keys ``primary`` (``work``, ``explore``, ``upgrade_self``,
  ``upgrade_factory``, ``idle`` or its int), ``factory`` (int), ``secondary`` (``none``,
  ``gift``, ``attack``, ``merge`` or its int), ``target`` (a resident's name, or a view slot
  int), ``amount`` (gift size in wealth units) and ``messages`` (a list of
  ``{"to": name | "everyone" | view slot, "text": str}``); all keys but ``primary`` are
  optional; or
* a flat int id of the catalogue ``primary choice x secondary choice`` (messages left out),
  the form of ``action_space(agent)`` and of the ``action_mask``.

Content that cannot be carried out (an unknown factory, a dead target, a gift larger than
the wealth held, a message too long) becomes its nearest valid meaning and is flagged with a
reason. Something that is not an action at all (a wrong type) raises a ValueError naming the
resident and the field.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from civa_env.world.catalogue import Catalogue, is_allied
from civa_env.world.config import Config
from civa_env.world.events import agent_index
from civa_env.world.kinds import P, Primary, S, Secondary
from civa_env.world.state import Message, WorldState

EVERYONE = -1
ACTION_KEYS = ("primary", "factory", "secondary", "target", "amount", "messages")
_EVERYONE_WORDS = ("everyone", "all", "*")
_IDLE = int(Primary.IDLE)  # a plain int: numpy is slower to fill with an enum member


def _enum_value(enum_cls: type[enum.IntEnum], value: Any, agent: str, key: str) -> int | None:
    """Int of an enum given by int or name; None when the content is unknown (flagged)."""
    if isinstance(value, str):
        try:
            return int(enum_cls[value.strip().upper()])
        except KeyError:
            return None
    number = _as_int(value, agent, key)
    return number if number in set(enum_cls) else None


def _as_int(value: Any, agent: str, key: str) -> int:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"action of {agent}: field {key!r} must be an int, got a bool")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise ValueError(f"action of {agent}: field {key!r} must be an int, got {value!r}")


def _as_float(value: Any, agent: str, key: str) -> float:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"action of {agent}: field {key!r} must be a number, got {value!r}")
    return float(value)


@dataclass
class ActionBatch:
    """One day's actions for the whole pool, as arrays (N,) plus messages."""

    primary: np.ndarray  # (N,) int8 Primary
    factory: np.ndarray  # (N,) int16, -1 none
    secondary: np.ndarray  # (N,) int8 Secondary
    target: np.ndarray  # (N,) int32 resident index, -1 none
    amount: np.ndarray  # (N,) float64 gift amount
    messages: list[Message] = field(default_factory=list)
    invalid: dict[int, list[str]] = field(default_factory=dict)  # resident -> reasons

    @classmethod
    def idle(cls, n: int) -> ActionBatch:
        """Everyone idles, no secondary."""
        return cls(primary=np.full(n, _IDLE, np.int8), factory=np.full(n, -1, np.int16),
                   secondary=np.zeros(n, np.int8), target=np.full(n, -1, np.int32),
                   amount=np.zeros(n))

    def flag(self, i: int, reason: str) -> None:
        """Record why resident i's action was changed."""
        self.invalid.setdefault(int(i), []).append(reason)

    def flag_many(self, rows: np.ndarray, reason: str) -> None:
        """Flag several residents with the same reason."""
        for i in np.asarray(rows).tolist():
            self.invalid.setdefault(i, []).append(reason)


def pack_actions(actions: dict[str, Any], state: WorldState, view: np.ndarray,
                 catalogue: Catalogue, cfg: Config, day: int,
                 index_of: dict[str, int] | None = None) -> ActionBatch:
    """Turn the per-resident actions of ``step`` into a validated ``ActionBatch``.

    Living residents without an action idle (flagged). Actions of dead residents are
    ignored; a name outside the pool raises a ValueError.
    """
    n = state.n_pool
    batch = ActionBatch.idle(n)
    flat_rows: list[int] = []
    flat_ids: list[int] = []
    acted_rows: list[int] = []
    alive = state.alive.tolist()
    for name, action in actions.items():
        i = index_of.get(name, -1) if index_of is not None else _pool_index(name, n)
        if i < 0:
            raise ValueError(f"action given for unknown agent {name!r}")
        if not alive[i]:
            continue
        acted_rows.append(i)
        if type(action) is int:  # the common case, checked first
            flat_rows.append(i)
            flat_ids.append(action)
        elif isinstance(action, (int, np.integer)) and not isinstance(action, (bool, np.bool_)):
            flat_rows.append(i)
            flat_ids.append(int(action))
        elif isinstance(action, np.ndarray) and action.size == 1 and action.dtype.kind in "iu":
            flat_rows.append(i)
            flat_ids.append(int(action.reshape(())))
        elif isinstance(action, dict):
            _pack_structured(batch, i, name, action, view, cfg, day)
        else:
            raise ValueError(
                f"action of {name}: expected a flat action id (int) or a dict with keys "
                f"{', '.join(ACTION_KEYS)}; got {type(action).__name__}")
    acted = np.zeros(n, dtype=bool)
    acted[acted_rows] = True
    missing = state.alive & ~acted
    if missing.any():
        batch.flag_many(np.flatnonzero(missing), "no action given: idle")
    if flat_rows:
        _pack_flat(batch, np.array(flat_rows), np.array(flat_ids, np.int64), state, view,
                   catalogue)
    validate(batch, state, cfg)
    return batch


def _pool_index(name: Any, n: int) -> int:
    try:
        i = agent_index(name)
    except ValueError:
        return -1
    return i if i < n else -1


def _pack_flat(batch: ActionBatch, rows: np.ndarray, ids: np.ndarray, state: WorldState,
               view: np.ndarray, catalogue: Catalogue) -> None:
    bad = (ids < 0) | (ids >= catalogue.size)
    if bad.any():
        batch.flag_many(rows[bad], f"flat action id outside [0, {catalogue.size}): idle")
        rows, ids = rows[~bad], ids[~bad]
    d = catalogue.decode(ids)
    batch.primary[rows] = d["primary"]
    batch.factory[rows] = d["factory"]
    batch.secondary[rows] = d["secondary"]
    has_slot = d["slot"] >= 0
    target = np.full(len(rows), -1, np.int32)
    target[has_slot] = view[rows[has_slot], d["slot"][has_slot]]
    empty_slot = has_slot & (target < 0)
    if empty_slot.any():
        batch.flag_many(rows[empty_slot], "target view slot is empty: no secondary action")
        batch.secondary[rows[empty_slot]] = Secondary.NONE  # flagged once, here
    batch.target[rows] = target
    gift = d["level"] >= 0
    batch.amount[rows[gift]] = catalogue.gift_levels[d["level"][gift]] * np.maximum(
        state.wealth[rows[gift]], 0.0)


def _resolve_target(value: Any, name: str, key: str, i: int, view: np.ndarray,
                    allow_everyone: bool) -> int | None:
    """Resident index of a target given by name or view slot; None if unknown content."""
    if isinstance(value, str):
        word = value.strip()
        if allow_everyone and word.lower() in _EVERYONE_WORDS:
            return EVERYONE
        j = _pool_index(word, view.shape[0])
        return j if j >= 0 else None  # not a name of the pool (however large): flagged
    slot = _as_int(value, name, key)
    if allow_everyone and slot == view.shape[1]:
        return EVERYONE
    if 0 <= slot < view.shape[1]:
        j = int(view[i, slot])
        return j if j >= 0 else None
    return None


def _pack_structured(batch: ActionBatch, i: int, name: str, action: dict[str, Any],
                     view: np.ndarray, cfg: Config, day: int) -> None:
    unknown = set(action) - set(ACTION_KEYS)
    if unknown:
        raise ValueError(f"action of {name}: unknown field(s) {sorted(unknown)}; "
                         f"known fields: {', '.join(ACTION_KEYS)}")
    if "primary" not in action:
        raise ValueError(f"action of {name}: field 'primary' is required")
    primary = _enum_value(Primary, action["primary"], name, "primary")
    if primary is None:
        batch.flag(i, f"unknown primary {action['primary']!r}: idle")
        primary = Primary.IDLE
    batch.primary[i] = primary
    if action.get("factory") is not None:
        factory = _as_int(action["factory"], name, "factory")
        # Anything outside [0, 32767) is stored out of range on purpose: flagged in validate.
        batch.factory[i] = factory if 0 <= factory < 32767 else 32767
    secondary = _enum_value(Secondary, action.get("secondary", 0), name, "secondary")
    if secondary is None:
        batch.flag(i, f"unknown secondary {action['secondary']!r}: none")
        secondary = Secondary.NONE
    batch.secondary[i] = secondary
    if secondary != Secondary.NONE:
        target = action.get("target")
        j = None if target is None else _resolve_target(target, name, "target", i, view, False)
        if j is None:
            batch.flag(i, f"unknown target {target!r}: no secondary action")
            batch.secondary[i] = Secondary.NONE
        else:
            batch.target[i] = j
        if secondary == Secondary.GIFT:
            batch.amount[i] = _as_float(action.get("amount", 0.0), name, "amount")
    messages = action.get("messages")
    if messages is None:
        return
    if isinstance(messages, dict):
        messages = [messages]
    if not isinstance(messages, (list, tuple)):
        raise ValueError(f"action of {name}: field 'messages' must be a list of "
                         f"{{'to', 'text'}} dicts, got {type(messages).__name__}")
    if len(messages) > cfg.max_messages:
        batch.flag(i, f"{len(messages)} messages, at most {cfg.max_messages} a day: extra dropped")
        messages = messages[: cfg.max_messages]
    for k, msg in enumerate(messages):
        if not isinstance(msg, dict) or "text" not in msg:
            raise ValueError(f"action of {name}: messages[{k}] must be a dict with 'to' and 'text'")
        text = msg["text"]
        if not isinstance(text, str):
            raise ValueError(f"action of {name}: messages[{k}].text must be a string")
        recipient = _resolve_target(msg.get("to", "everyone"), name, f"messages[{k}].to", i,
                                    view, True)
        if recipient is None:
            batch.flag(i, f"message to unknown resident {msg.get('to')!r}: dropped")
            continue
        # Line breaks and other whitespace become single spaces, so that a message cannot
        # pose as another line (another sender) in its reader's briefing.
        text = " ".join(text.split())
        if len(text) > cfg.max_message_chars:
            batch.flag(i, f"message longer than {cfg.max_message_chars} characters: cut")
            text = text[: cfg.max_message_chars]
        batch.messages.append(Message(day, i, recipient, text))




def validate(batch: ActionBatch, state: WorldState, cfg: Config) -> None:
    """Replace content that cannot be carried out by its nearest valid meaning (flagged)."""
    n, m = state.n_pool, cfg.n_factories
    p, f = batch.primary, batch.factory
    fac = np.minimum(np.maximum(f, 0), m - 1)  # np.clip, with less overhead
    rows = np.arange(n)
    needs_factory = state.alive & ((p == P.WORK) | (p == P.UPGRADE_FACTORY))
    bad = needs_factory & ((f < 0) | (f >= m))
    bad_known = needs_factory & ~bad & ~state.known[rows, fac]
    if bad.any():
        batch.flag_many(np.flatnonzero(bad), "unknown factory: idle")
    if bad_known.any():
        batch.flag_many(np.flatnonzero(bad_known), "factory not known to the resident: idle")
    p[bad | bad_known] = P.IDLE
    upgrading = state.alive & ((p == P.UPGRADE_SELF) | (p == P.UPGRADE_FACTORY))
    poor = upgrading & (state.wealth < cfg.upgrade_cost)
    if poor.any():
        batch.flag_many(np.flatnonzero(poor), f"upgrade costs {cfg.upgrade_cost}: idle")
        p[poor] = P.IDLE
    f[(p != P.WORK) & (p != P.UPGRADE_FACTORY)] = -1

    s, t = batch.secondary, batch.target
    has_sec = state.alive & (s != S.NONE)
    tgt = np.minimum(np.maximum(t, 0), n - 1)
    bad_t = has_sec & ((t < 0) | (t >= n) | ~state.alive[tgt] | (t == rows))
    if bad_t.any():
        batch.flag_many(np.flatnonzero(bad_t & (t == rows)), "cannot target oneself: none")
        batch.flag_many(np.flatnonzero(bad_t & (t != rows)),
                        "target is dead or unknown: no secondary action")
        s[bad_t] = S.NONE
    merge = state.alive & (s == S.MERGE)
    if merge.any():
        mi = np.flatnonzero(merge)
        already = is_allied(state, mi, t[mi])
        if already.any():
            batch.flag_many(mi[already], "already allied: no secondary action")
            s[mi[already]] = S.NONE
    gift = state.alive & (s == S.GIFT)
    a = batch.amount
    bad_amount = gift & ~(a > 0)  # also catches NaN
    if bad_amount.any():
        batch.flag_many(np.flatnonzero(bad_amount), "gift amount must be > 0: no gift")
        s[bad_amount] = S.NONE
    gift &= ~bad_amount
    too_big = gift & (a > np.maximum(state.wealth, 0.0) + 1e-9)
    if too_big.any():
        batch.flag_many(np.flatnonzero(too_big), "gift larger than wealth held: cut")
        a[too_big] = np.maximum(state.wealth[too_big], 0.0)
    t[s == S.NONE] = -1
    a[s != S.GIFT] = 0.0
    # Messages to residents who are dead (or never born) are dropped.
    kept = []
    for msg in batch.messages:
        if msg.recipient == EVERYONE or (0 <= msg.recipient < n and state.alive[msg.recipient]
                                         and msg.recipient != msg.sender):
            kept.append(msg)
        else:
            batch.flag(msg.sender, "message to dead, unknown or self "
                                   f"(resident_{msg.recipient}): dropped")
    batch.messages = kept
