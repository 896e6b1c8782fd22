"""Actions: the structured form, packing and validation (the flat catalogue and the mask
are in ``civa_env.world.catalogue``).

A resident's action is either

* structured, a dict with the keys ``primary`` (``work``, ``explore``, ``upgrade_self``,
  ``upgrade_factory``, ``idle`` or its int), ``factory`` (int), ``secondary`` (``none``,
  ``gift``, ``attack``, ``merge`` or its int), ``target`` (a resident's name, or a view slot
  int), ``amount`` (gift size in wealth units) and ``messages`` (a list of
  ``{"to": name | "everyone" | view slot, "text": str}``, or one such dict); all keys but
  ``primary`` (and a message's ``text``) are optional; or
* a flat int id of the catalogue ``primary choice x secondary choice`` (messages left out),
  the form of ``action_space(agent)`` and of the ``action_mask``; or
* a factored action (``civa_env.world.factored``): a 1-D integer array, list or tuple of
  one int per component (6), cheap-talk messages included.

The contract of ``pack_actions`` (and so of ``step``) has three outcomes and no fourth:

1. Content that cannot be carried out becomes its nearest valid meaning and is *flagged*
   with a reason in ``infos[agent]["invalid"]``: an unknown kind name or int; an unknown
   factory, or one the resident does not know; a flat id outside ``[0, catalogue.size)``
   (any int, however large: ``2**64``, ``np.uint64``); a factored component outside its
   range (any int, however large, as for flat ids); a target or recipient that is not a
   living other resident or a filled view slot; a gift amount that is not above 0 (NaN,
   -inf included) or is over the wealth held (+inf and ints beyond the float range
   included: cut to the wealth held); too many messages; a message too long.
2. What is not an action raises a ``ValueError`` naming the resident and the field: an
   ``actions`` argument that is not a dict, an agent name outside the pool, an action that
   is neither an int id, a dict nor a factored row of 6 ints (a float, a str, a set, a list
   of another length or of other things), a field of the wrong
   type, an unknown key at any level (in the action, in a message), a required field
   missing.
3. Nothing else escapes (no OverflowError, TypeError, KeyError, ...).

The rules behind them:

* *None means absent*, for every optional field (``factory``, ``secondary``, ``target``,
  ``amount``, ``messages``, a message's ``to``: everyone) and for a living resident's whole
  action (it idles, flagged "no action given", as when its name is left out). ``primary``
  and a message's ``text`` are required: None there raises.
* *Types are checked for every field given, used or not*: a wrong-typed ``target`` or
  ``amount`` raises even with secondary ``none``, a wrong-typed ``factory`` even with
  primary ``explore``. Int fields (``primary``, ``factory``, ``secondary``, a view slot)
  take an int or a numpy integer, or an integral float (``2.0``); ``amount`` takes an int,
  a float or a numpy integer or floating value. Not numbers of these types (bool,
  complex, ``Fraction``, ``Decimal``, a str of digits) raise, as do non-integral floats
  (NaN, inf) in int fields. A numpy array of one element counts as that element. A flat id
  must be an int, a numpy integer or a one-element integer array.
* *Names resolve only in their exact canonical form* ``resident_<i>`` (ASCII digits, no
  leading zero, no whitespace around): ``resident_01``, ``resident_`` with an Arabic-Indic
  one, ``RESIDENT_1`` or ``" resident_1"`` name nobody (an unknown target, flagged). Kind
  names (``work``, ``gift``, ...) and the words for everyone (``everyone``, ``all``,
  ``*``) are ASCII keywords: any case, surrounding ASCII whitespace ignored.
* Actions of dead (or not yet born) residents are ignored, whatever they are.
* Reasons and error messages show an offending value by a ``repr`` cut to
  ``SHOW_CHARS`` characters (a 1 MB string is not repeated).
* All or nothing: every resident's action is read and checked before the day is played,
  and packing changes nothing in the world, so after a ValueError the world (state, random
  streams, day, log) is as it was.
"""

from __future__ import annotations

import enum
import math
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from civa_env.world import slots
from civa_env.world.arrays import filled
from civa_env.world.catalogue import Catalogue, ally_keys
from civa_env.world.config import Config
from civa_env.world.kinds import P, Primary, S, Secondary
from civa_env.world.state import Message, WorldState

EVERYONE = -1
ACTION_KEYS = ("primary", "factory", "secondary", "target", "amount", "messages")
MESSAGE_KEYS = ("to", "text")
_EVERYONE_WORDS = ("everyone", "all", "*")
_IDLE = int(Primary.IDLE)  # a plain int: numpy is slower to fill with an enum member
_NAME_PREFIX = "resident_"
_ASCII_SPACE = " \t\n\r\f\v"
SHOW_CHARS = 60
"""Longest ``repr`` of an offending value in a reason or an error message."""

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = SHOW_CHARS
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = _repr.maxfrozenset = 6
_repr.maxlevel = 3


def show(value: Any) -> str:
    """A short, bounded ``repr`` of ``value`` (at most ``SHOW_CHARS`` characters) that never
    raises (huge ints, whose repr Python refuses, are shown by their size)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 160:
        text = f"<int of {value.bit_length()} bits>"
    else:
        try:
            text = _repr.repr(value)
        except Exception:  # a broken __repr__, an int inside a container too large to show
            text = f"<{_type_name(value)}>"
    return text if len(text) <= SHOW_CHARS else text[: SHOW_CHARS - 3] + "..."


def _type_name(value: Any) -> str:
    return type(value).__name__[:40]


def check_actions(actions: Any) -> None:
    """ValueError unless ``actions`` is a mapping of agent names to actions (``step``'s
    argument)."""
    if not isinstance(actions, Mapping):
        raise ValueError(
            "step expects a dict mapping agent names to actions (a flat action id or a "
            f"structured dict each), got {_type_name(actions)} {show(actions)}")


def _is_int(value: Any) -> bool:
    """An int or a numpy integer; not a bool, nor a numpy timedelta (a numpy integer that
    ``int()`` refuses)."""
    return (isinstance(value, (int, np.integer))
            and not isinstance(value, (bool, np.bool_, np.timedelta64)))


def _unwrap(value: Any) -> Any:
    """The element of a one-element numpy array, else ``value``."""
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.reshape(()).item()
    return value


def _keyword(value: str) -> str:
    """A keyword as written, without surrounding ASCII whitespace; "" if not ASCII."""
    word = value.strip(_ASCII_SPACE)
    return word if word.isascii() else ""


def _enum_value(enum_cls: type[enum.IntEnum], value: Any, agent: str, key: str) -> int | None:
    """Int of an enum given by int or name; None when the content is unknown (flagged)."""
    value = _unwrap(value)
    if isinstance(value, str):
        member = enum_cls.__members__.get(_keyword(value).upper())
        return None if member is None else int(member)
    number = _as_int(value, agent, key)
    return number if number in set(enum_cls) else None


def _as_int(value: Any, agent: str, key: str) -> int:
    value = _unwrap(value)
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"action of {agent}: field {key!r} must be an int, got a bool")
    if _is_int(value):
        return int(value)
    if isinstance(value, (float, np.floating)):
        with np.errstate(over="ignore"):  # a long double beyond the float range: inf
            number = float(value)
        if number.is_integer():
            return int(number)
    raise ValueError(f"action of {agent}: field {key!r} must be an int, got "
                     f"{_type_name(value)} {show(value)}")


def _as_float(value: Any, agent: str, key: str) -> float:
    """A real number as a float; ints beyond the float range become +-inf (content)."""
    value = _unwrap(value)
    if not (_is_int(value) or isinstance(value, (float, np.floating))):
        raise ValueError(f"action of {agent}: field {key!r} must be a number (int or "
                         f"float), got {_type_name(value)} {show(value)}")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    with np.errstate(over="ignore"):
        return float(value)


def _check_keys(given: Mapping[Any, Any], known: tuple[str, ...], agent: str,
                where: str) -> None:
    """ValueError naming the unknown keys of a structured action or a message."""
    unknown = [k for k in given if not (isinstance(k, str) and k in known)]
    if unknown:
        shown = sorted(show(k) for k in unknown[:6])[:5]
        more = f" and {len(unknown) - len(shown)} more" if len(unknown) > len(shown) else ""
        raise ValueError(f"action of {agent}: unknown field(s) {', '.join(shown)}{more} in "
                         f"{where}; known fields: {', '.join(known)}")


@dataclass
class ActionBatch:
    """One day's actions for the whole pool, as arrays (N,) plus messages."""

    primary: np.ndarray  # (N,) int8 Primary
    factory: np.ndarray  # (N,) int32, -1 none (the community's own factory number)
    secondary: np.ndarray  # (N,) int8 Secondary
    target: np.ndarray  # (N,) int32 resident index, -1 none
    amount: np.ndarray  # (N,) float64 gift amount
    messages: list[Message] = field(default_factory=list)
    invalid: dict[int, list[str]] = field(default_factory=dict)  # resident -> reasons

    @classmethod
    def idle(cls, n: int) -> ActionBatch:
        """Everyone idles, no secondary."""
        return cls(primary=filled(n, _IDLE, np.int8), factory=filled(n, -1, np.int32),
                   secondary=np.zeros(n, np.int8), target=filled(n, -1, np.int32),
                   amount=np.zeros(n))

    def flag(self, i: int, reason: str) -> None:
        """Record why resident i's action was changed."""
        self.invalid.setdefault(int(i), []).append(reason)

    def flag_many(self, rows: np.ndarray, reason: str) -> None:
        """Flag several residents with the same reason."""
        for i in np.asarray(rows).tolist():
            self.invalid.setdefault(i, []).append(reason)

    def flag_bits(self, rows: np.ndarray, bits: np.ndarray, reasons: tuple[str, ...]) -> None:
        """Flag residents ``rows`` (K,) by a compiled pass's reason bits ``bits`` (K,): bit
        b set means ``reasons[b]``; flagged reason by reason, in order (as the numpy code
        flagged them, one reason's rows after another's)."""
        present = int(np.bitwise_or.reduce(bits)) if len(bits) else 0
        for b, reason in enumerate(reasons):
            if present & (1 << b):
                self.flag_many(rows[(bits & (1 << b)).nonzero()[0]], reason)


def pack_actions(actions: Mapping[str, Any], state: WorldState, view: np.ndarray,
                 catalogue: Catalogue, cfg: Config, day: int,
                 index_of: dict[str, int] | None = None) -> ActionBatch:
    """Turn the per-resident actions of ``step`` into a validated ``ActionBatch``.

    Living residents without an action (or with None) idle (flagged). Actions of dead
    residents are ignored; a name outside the pool raises a ValueError. Reads the world,
    changes nothing in it (see the module docstring for the contract).
    """
    check_actions(actions)
    n = state.n_pool
    size = catalogue.size
    batch = ActionBatch.idle(n)
    flat_rows: list[int] = []
    flat_ids: list[int] = []
    outside: list[int] = []  # rows given a flat id outside the catalogue
    factored_rows: list[int] = []  # rows given a factored action (world.factored)
    factored_acts: list[list[int]] = []
    acted_rows: list[int] = []
    alive = state.alive.tolist()
    for name, action in actions.items():
        if index_of is None or not isinstance(name, str):
            i = _pool_index(name, n)  # (a key of another type names nobody)
        else:
            i = index_of.get(name, -1)
        if i < 0:
            raise ValueError(f"action given for unknown agent {show(name)}: agents are "
                             f"named resident_0 ... resident_{n - 1}")
        if not alive[i] or action is None:
            continue  # the dead are ignored; None is no action (idle, flagged below)
        acted_rows.append(i)
        if type(action) is int:  # the common case, checked first
            flat = action
        elif _is_int(action):
            flat = int(action)
        elif isinstance(action, np.ndarray) and action.size == 1 and action.dtype.kind in "iu":
            flat = int(action.reshape(()))
        elif isinstance(action, dict):
            _pack_structured(batch, i, name, action, view, cfg, day)
            continue
        elif _is_factored(action):
            factored_rows.append(i)
            factored_acts.append([int(x) for x in action])
            continue
        else:
            raise ValueError(
                f"action of {name}: expected a flat action id (int), a dict with keys "
                f"{', '.join(ACTION_KEYS)}, or a factored action (one int per component); got "
                f"{_type_name(action)} {show(action)}")
        if 0 <= flat < size:
            flat_rows.append(i)
            flat_ids.append(flat)
        else:
            outside.append(i)
    acted = np.zeros(n, dtype=bool)
    acted[acted_rows] = True
    missing = state.alive & ~acted
    if np.count_nonzero(missing):
        batch.flag_many(missing.nonzero()[0], "no action given: idle")
    if outside:
        batch.flag_many(np.array(outside), f"flat action id outside [0, {size}): idle")
    if flat_rows:
        _pack_flat(batch, np.array(flat_rows), np.array(flat_ids, np.int64), state, view,
                   catalogue)
    if factored_rows:
        from civa_env.world import factored  # (factored builds on this module)

        # Any int, however large, is a value out of its component's range (flagged there):
        # clipped into int64 first.
        acts = np.array([[min(max(x, -1), _INT64.max) for x in row] for row in factored_acts],
                        np.int64)
        factored.decode(batch, np.array(factored_rows), acts, state, view, cfg, catalogue, day)
    validate(batch, state, cfg)
    return batch


_INT64 = np.iinfo(np.int64)


def _is_factored(action: Any) -> bool:
    """A factored action: a 1-D integer array, list or tuple of one int per component (any
    int: a value outside its component's range is flagged there)."""
    from civa_env.world.factored import N_COMPONENTS  # (factored builds on this module)

    if isinstance(action, np.ndarray):
        return action.shape == (N_COMPONENTS,) and action.dtype.kind in "iu"
    if isinstance(action, (list, tuple)) and len(action) == N_COMPONENTS:
        return all(_is_int(x) for x in action)
    return False


def _name_index(name: str) -> int:
    """Index of the exact canonical name ``resident_<i>``; -1 for anything else (no
    leading zeros, no other digits than ASCII's, no whitespace)."""
    if not name.startswith(_NAME_PREFIX):
        return -1
    digits = name[len(_NAME_PREFIX):]
    if (not digits.isascii() or not digits.isdigit() or len(digits) > 18
            or (len(digits) > 1 and digits[0] == "0")):
        return -1
    return int(digits)


def _pool_index(name: Any, n: int) -> int:
    i = _name_index(name) if isinstance(name, str) else -1
    return i if i < n else -1


def set_primary(batch: ActionBatch, rows: np.ndarray, kinds: np.ndarray, slot: np.ndarray,
                state: WorldState) -> None:
    """Residents ``rows``' primary kinds and the factories of their factory slots ``slot``
    (-1: none) (``slots``); a work or upgrade at an empty slot is flagged and idles."""
    factory = slots.factories_of(state, rows, slot)
    empty = (slot >= 0) & (factory < 0)
    batch.primary[rows] = kinds
    batch.factory[rows] = factory
    if np.count_nonzero(empty):
        batch.flag_many(rows[empty], "factory slot is empty: idle")
        batch.primary[rows[empty]] = Primary.IDLE


def _pack_flat(batch: ActionBatch, rows: np.ndarray, ids: np.ndarray, state: WorldState,
               view: np.ndarray, catalogue: Catalogue) -> None:
    """Decode flat ids, all in ``[0, catalogue.size)`` (``pack_actions`` flags the rest)."""
    d = catalogue.decode(ids)
    set_primary(batch, rows, d["primary"], d["factory"], state)
    batch.secondary[rows] = d["secondary"]
    has_slot = d["slot"] >= 0
    target = filled(len(rows), -1, np.int32)
    target[has_slot] = view[rows[has_slot], d["slot"][has_slot]]
    empty_slot = has_slot & (target < 0)
    if np.count_nonzero(empty_slot):
        batch.flag_many(rows[empty_slot], "target view slot is empty: no secondary action")
        batch.secondary[rows[empty_slot]] = Secondary.NONE  # flagged once, here
    batch.target[rows] = target
    gift = d["level"] >= 0
    batch.amount[rows[gift]] = catalogue.gift_levels[d["level"][gift]] * np.maximum(
        state.wealth[rows[gift]], 0.0)


def _resolve_target(value: Any, name: str, key: str, i: int, view: np.ndarray,
                    allow_everyone: bool) -> int | None:
    """Resident index of a target given by name or view slot; None if unknown content."""
    value = _unwrap(value)
    if isinstance(value, str):
        if allow_everyone and _keyword(value).lower() in _EVERYONE_WORDS:
            return EVERYONE
        j = _pool_index(value, view.shape[0])
        return j if j >= 0 else None  # not a name of the pool (however large): flagged
    slot = _as_int(value, name, key)
    if allow_everyone and slot == view.shape[1]:
        return EVERYONE
    if 0 <= slot < view.shape[1]:
        j = int(view[i, slot])
        return j if j >= 0 else None
    return None


def _read_messages(value: Any, name: str, i: int,
                   view: np.ndarray) -> list[tuple[Any, int | None, str]]:
    """(``to`` as given, recipient or None if unknown, text) of each message; checks the
    form of every one (also of those beyond ``max_messages``, dropped later)."""
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"action of {name}: field 'messages' must be a list of "
                         f"{{'to', 'text'}} dicts, got {_type_name(value)} {show(value)}")
    out = []
    for k, msg in enumerate(value):
        if not isinstance(msg, dict):
            raise ValueError(f"action of {name}: messages[{k}] must be a dict with 'to' and "
                             f"'text', got {_type_name(msg)} {show(msg)}")
        _check_keys(msg, MESSAGE_KEYS, name, f"messages[{k}]")
        text = msg.get("text")
        if text is None:
            raise ValueError(f"action of {name}: messages[{k}].text is required")
        if not isinstance(text, str):
            raise ValueError(f"action of {name}: messages[{k}].text must be a string, got "
                             f"{_type_name(text)} {show(text)}")
        to = msg.get("to")
        recipient = EVERYONE if to is None else _resolve_target(
            to, name, f"messages[{k}].to", i, view, True)
        out.append((to, recipient, text))
    return out


def _pack_structured(batch: ActionBatch, i: int, name: str, action: dict[Any, Any],
                     view: np.ndarray, cfg: Config, day: int) -> None:
    # Form first, every field (a ValueError before anything is written), then content.
    _check_keys(action, ACTION_KEYS, name, "the action")
    get = action.get
    if get("primary") is None:
        raise ValueError(f"action of {name}: field 'primary' is required")
    primary = _enum_value(Primary, get("primary"), name, "primary")
    factory = None if get("factory") is None else _as_int(get("factory"), name, "factory")
    secondary = (Secondary.NONE if get("secondary") is None
                 else _enum_value(Secondary, get("secondary"), name, "secondary"))
    target = (None if get("target") is None
              else _resolve_target(get("target"), name, "target", i, view, False))
    amount = None if get("amount") is None else _as_float(get("amount"), name, "amount")
    messages = _read_messages(get("messages"), name, i, view)

    if primary is None:
        batch.flag(i, f"unknown primary {show(get('primary'))}: idle")
        primary = Primary.IDLE
    batch.primary[i] = primary
    if factory is not None:
        # Anything outside [0, n_factories) is stored out of range on purpose (n_factories):
        # flagged in validate.
        batch.factory[i] = factory if 0 <= factory < cfg.n_factories else cfg.n_factories
    if secondary is None:
        batch.flag(i, f"unknown secondary {show(get('secondary'))}: none")
        secondary = Secondary.NONE
    batch.secondary[i] = secondary
    if secondary != Secondary.NONE:
        if target is None:
            batch.flag(i, f"unknown target {show(get('target'))}: no secondary action")
            batch.secondary[i] = Secondary.NONE
        else:
            batch.target[i] = target
        if secondary == Secondary.GIFT:
            batch.amount[i] = 0.0 if amount is None else amount
    if len(messages) > cfg.max_messages:
        batch.flag(i, f"{len(messages)} messages, at most {cfg.max_messages} a day: extra dropped")
        messages = messages[: cfg.max_messages]
    for to, recipient, text in messages:
        if recipient is None:
            batch.flag(i, f"message to unknown resident {show(to)}: dropped")
            continue
        # Line breaks and other whitespace become single spaces, so that a message cannot
        # pose as another line (another sender) in its reader's briefing.
        text = " ".join(text.split())
        if len(text) > cfg.max_message_chars:
            batch.flag(i, f"message longer than {cfg.max_message_chars} characters: cut")
            text = text[: cfg.max_message_chars]
        batch.messages.append(Message(day, i, recipient, text))


def validation_reasons(cfg: Config) -> tuple[str, ...]:
    """What ``validate`` flags, in the order it checks (bit b of ``kernels.validate_actions``'
    result is the b-th)."""
    return ("unknown factory: idle", "factory not known to the resident: idle",
            f"upgrade costs {cfg.upgrade_cost}: idle", "cannot target oneself: none",
            "target is dead or unknown: no secondary action",
            "already allied: no secondary action", "gift amount must be > 0: no gift",
            "gift larger than wealth held: cut")


def validate(batch: ActionBatch, state: WorldState, cfg: Config) -> None:
    """Replace content that cannot be carried out by its nearest valid meaning (flagged).

    For each living resident, in this order: a work or factory upgrade at a factory outside
    ``[0, n_factories)`` or not known to it idles; an upgrade it cannot pay for idles; a
    secondary action at itself, or at a name dead or outside the pool, is dropped, as is a
    merge with an ally and a gift of amount <= 0 (or NaN); a gift larger than the wealth
    held is cut to it. Then the factory is -1 unless working or upgrading a factory, the
    target -1 without a secondary action and the amount 0 unless giving (every name). One
    compiled pass (``kernels.validate_actions``); the reasons are flagged reason by reason
    (``validation_reasons``), then messages to the dead, unknown or oneself are dropped."""
    from civa_env.world.kernels import validate_actions  # (numba loads on first use)

    reasons = validate_actions(
        state.alive, state.known, state.wealth, batch.primary, batch.factory, batch.secondary,
        batch.target, batch.amount, ally_keys(state), cfg.n_factories,
        float(cfg.upgrade_cost), P.WORK, P.UPGRADE_SELF, P.UPGRADE_FACTORY, _IDLE, S.NONE,
        S.GIFT, S.MERGE)
    batch.flag_bits(np.arange(state.n_pool), reasons, validation_reasons(cfg))
    drop_undeliverable(batch, state)


def drop_undeliverable(batch: ActionBatch, state: WorldState) -> None:
    """Drop (and flag) the messages to residents who are dead, never born, outside the pool
    or the sender itself (``validate``'s last step)."""
    n = state.n_pool
    kept = []
    for msg in batch.messages:
        if msg.recipient == EVERYONE or (0 <= msg.recipient < n and state.alive[msg.recipient]
                                         and msg.recipient != msg.sender):
            kept.append(msg)
        else:
            batch.flag(msg.sender, "message to dead, unknown or self "
                                   f"(resident_{msg.recipient}): dropped")
    batch.messages = kept
