"""Factored actions: one integer per component, with a mask per component.

A factored action is a row of ``N_COMPONENTS`` ints (``FactoredSpec.nvec`` gives each
component's size, the ``MultiDiscrete`` of the adapters):

====  =================  ================================================================
col   component          values
====  =================  ================================================================
0     ``primary``        the catalogue's primary choice: work at factory slot m (M),
                         explore, upgrade self, upgrade factory slot m (M), idle
                         (``2 M + 3``; M factory slots, ``civa_env.world.slots``)
1     ``secondary``      none, gift, attack, merge (``Secondary``, 4)
2     ``target``         the view slot the secondary action aims at (V; read for gift,
                         attack and merge only)
3     ``amount``         the gift level, an index into ``gift_levels`` (L; read for gifts)
4     ``message``        none, or one of ``MESSAGE_KINDS`` (cheap talk, 1 + 6)
5     ``message_to``     the view slot the message goes to, or V for everyone (V + 1; read
                         when a message is sent)
====  =================  ================================================================

The flat catalogue (``Catalogue``) is one encoding of the same choice without messages:
``to_flat`` and ``from_flat`` convert. Component masks are independent: each says which
values of its component can be valid for some choice of the others (a merge with a slot
already allied is masked in the flat catalogue but not in the target component), so a
combination the components allow can still be flagged by the world's validation, exactly as
a flat id or a structured dict would be.

Cheap talk. ``MESSAGE_KINDS`` are a small fixed set of messages any resident (an RL resident
too) can send: each is rendered as a fixed English text (``render_message``), which is what
LLM residents read in their briefings and what the behaviour detectors classify, so an RL
resident's "friendly" message followed by an attack on its recipient is deception by the
same rule as an LLM resident's. The texts are chosen so that the keyword classifier reads
the friendly kinds (friendly, proposes an alliance, asks for help) as friendly and the others
(warning, threat, a factory's worth) as not; a test checks it.

Decoding is one compiled pass (``kernels.decode_actions``; no per-resident Python except
for the messages sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from civa_env.world.actions import EVERYONE, ActionBatch
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.kinds import P, S, Secondary
from civa_env.world.state import Message, WorldState

COMPONENTS = ("primary", "secondary", "target", "amount", "message", "message_to")
N_COMPONENTS = len(COMPONENTS)

# Cheap talk: code 0 is "no message"; codes 1.. are these kinds, in this order.
MESSAGE_KINDS = ("friendly", "proposes_alliance", "warning", "threat", "asks_for_help",
                 "factory_worth")
# Which kinds are friendly or peaceful in intent (what the keyword classifier must say).
FRIENDLY_KINDS = frozenset({"friendly", "proposes_alliance", "asks_for_help"})
# (The recipient is not named: readers see who wrote to whom, and a small set of texts keeps
# the classifier's cache small.)
_TEMPLATES = {
    "friendly": "Hello, I am your friend and I mean you no harm.",
    "proposes_alliance": "I propose an alliance: let us work together.",
    "warning": "A warning: guard your wealth, there are raids about.",
    "threat": "Give me wealth or I will attack you.",
    "asks_for_help": "Please help me: I am short of wealth.",
    "factory_worth": "Factory {factory} paid {worth:.1f} per worker yesterday.",
}


def render_message(kind: int, factory: int = -1, worth: float = 0.0) -> str:
    """The text of cheap-talk message ``kind`` (1-based code); ``factory``/``worth`` fill
    the factory's-worth message."""
    name = MESSAGE_KINDS[kind - 1]
    if name == "factory_worth" and factory < 0:
        return "I know of no factory worth sharing."
    return _TEMPLATES[name].format(factory=factory, worth=worth)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class FactoredSpec:
    """Component sizes of a config's factored action, and their offsets in the mask."""

    n_primary: int
    n_secondary: int
    n_target: int
    n_amount: int
    n_message: int
    n_message_to: int

    @classmethod
    @lru_cache(maxsize=32)
    def of(cls, cfg: Config) -> FactoredSpec:
        """The spec of ``cfg`` (sizes depend on the config's shape fields only; one per
        config)."""
        m, v = cfg.factory_slot_count, cfg.view_size
        return cls(2 * m + 3, len(Secondary), v, len(cfg.gift_levels),
                   1 + len(MESSAGE_KINDS), v + 1)

    @cached_property
    def nvec(self) -> np.ndarray:
        """(C,) int64 component sizes (``gymnasium.spaces.MultiDiscrete(nvec)``; read-only)."""
        return _read_only(np.array([self.n_primary, self.n_secondary, self.n_target,
                                    self.n_amount, self.n_message, self.n_message_to], np.int64))

    @property
    def mask_size(self) -> int:
        """Length of the concatenated component masks (the sum of ``nvec``)."""
        return int(self.nvec.sum())

    @cached_property
    def offsets(self) -> np.ndarray:
        """(C + 1,) where each component's mask starts in the concatenated mask (read-only)."""
        return _read_only(np.concatenate([[0], np.cumsum(self.nvec)]))

    def nothing_mask(self) -> np.ndarray:
        """(sum of nvec,) int8: the mask of a slot that holds no resident, allowing only the
        "nothing" value of each component (idle, no secondary, slot 0, level 0, no message,
        everyone), so that a masked sampler never meets an all-masked component."""
        o = self.offsets
        out = np.zeros(self.mask_size, np.int8)
        out[[o[0] + self.n_primary - 1, o[1], o[2], o[3], o[4], o[6] - 1]] = 1
        return out


def masks(state: WorldState, view: np.ndarray, rows: np.ndarray, cfg: Config,
          catalogue: Catalogue, out: np.ndarray | None = None,
          out_rows: np.ndarray | None = None) -> np.ndarray:
    """Concatenated component masks of residents ``rows``: (K, sum of nvec) int8; or, given
    ``out`` (R, sum of nvec) int8 and ``out_rows`` (K,), written into rows ``out_rows`` of
    ``out`` (every column), which is returned. ``view`` is ``perception.compute_view``'s (a
    row holds each name once).

    primary: as the catalogue's primary part (known factories in the factory slots,
    upgrades affordable);
    secondary: none always, gift with wealth > 0 and someone in view, attack with someone in
    view, merge with someone in view not yet an ally; target: the occupied view slots;
    amount: every level; message: every kind while ``max_messages`` > 0; message_to: the
    occupied slots and everyone. (One compiled pass: ``kernels.fill_masks``.)
    """
    from civa_env.world.kernels import fill_masks  # (numba loads on first use)

    spec = FactoredSpec.of(cfg)
    rows = np.asarray(rows, np.int64)
    if out is None:
        out = np.empty((len(rows), spec.mask_size), np.int8)
        out_rows = np.arange(len(rows))
    elif out_rows is None or len(out_rows) != len(rows):
        raise ValueError("masks: out needs out_rows, one row of out per row of rows")
    if len(rows):
        o1 = int(spec.offsets[1])
        fill_masks(rows, np.asarray(out_rows, np.int64), out, state.wealth,
                   float(cfg.upgrade_cost), state.factory_slots, state.known, view,
                   state.allies, spec.offsets, o1 + S.NONE, o1 + S.GIFT, o1 + S.ATTACK,
                   o1 + S.MERGE, cfg.max_messages > 0)
    return out


def _fill_slots_and_talk(out: np.ndarray, o: np.ndarray, present: np.ndarray,
                         cfg: Config) -> None:
    """The target, amount, message and message_to parts of component masks ``out``, given
    the occupied view slots ``present`` (K, V)."""
    out[:, o[2]:o[3]] = present
    out[:, o[3]:o[4]] = True
    out[:, o[4]] = True
    out[:, o[4] + 1:o[5]] = cfg.max_messages > 0
    out[:, o[5]:o[6] - 1] = present
    out[:, o[6] - 1] = True


def masks_from_flat(flat: np.ndarray, cfg: Config, catalogue: Catalogue) -> np.ndarray:
    """The component masks (K, sum of nvec) int8 that ``masks`` gives, read off the flat
    catalogue masks (K, catalogue size) (for policies that get only the flat masks, such as
    a ``Batch``'s; a test checks that the two agree)."""
    k = len(flat)
    spec = FactoredSpec.of(cfg)
    o = spec.offsets
    cube = np.asarray(flat, bool).reshape(k, catalogue.n_primary, catalogue.n_secondary)
    sec = cube.any(axis=1)  # (K, n_secondary): valid with some primary choice
    out = np.zeros((k, spec.mask_size), bool)
    out[:, o[0]:o[1]] = cube.any(axis=2)
    for kind in range(len(Secondary)):
        out[:, o[1] + kind] = sec[:, catalogue.s_kind == kind].any(axis=1)
    present = sec[:, catalogue.s_kind == S.ATTACK]  # attack slot v is valid iff v is occupied
    _fill_slots_and_talk(out, o, present, cfg)
    return out.view(np.int8)


def check_shape(acts: np.ndarray, k: int, cfg: Config, who: str) -> np.ndarray:
    """``acts`` as a (k, C) int64 array, or a ValueError naming ``who`` and the column."""
    arr = np.asarray(acts)
    if arr.dtype.kind not in "iub" or arr.dtype.kind == "b":
        raise ValueError(f"factored actions of {who}: expected integers, got dtype "
                         f"{arr.dtype}")
    if arr.shape != (k, N_COMPONENTS):
        raise ValueError(f"factored actions of {who}: expected shape ({k}, {N_COMPONENTS}) "
                         f"(one column per component {', '.join(COMPONENTS)}), got "
                         f"{arr.shape}")
    if arr.dtype.kind == "u" and k and int(arr.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"factored actions of {who}: value {int(arr.max())} out of range")
    return arr.astype(np.int64, copy=False)


def decode_reasons(spec: FactoredSpec) -> tuple[str, ...]:
    """What ``decode`` flags in its compiled pass, in order (bit b of
    ``kernels.decode_actions``' result is the b-th)."""
    return (f"primary choice outside [0, {spec.n_primary}): idle",
            "factory slot is empty: idle",
            f"secondary outside [0, {spec.n_secondary}): none",
            f"target slot outside [0, {spec.n_target}): no secondary action",
            "target view slot is empty: no secondary action",
            f"amount level outside [0, {spec.n_amount}): no gift")


def decode(batch: ActionBatch, rows: np.ndarray, acts: np.ndarray, state: WorldState,
           view: np.ndarray, cfg: Config, catalogue: Catalogue, day: int | np.ndarray) -> None:
    """Write residents ``rows``' factored actions ``acts`` (K, C) into ``batch``.

    A component value outside its range is unknown content: flagged, and the component
    takes its "nothing" meaning (idle, no secondary, no message). Validation of what is left
    (factories known, targets alive, gifts affordable...) is the world's, as for any action.
    """
    from civa_env.world.kernels import decode_actions  # (numba loads on first use)

    spec = FactoredSpec.of(cfg)
    nvec = spec.nvec
    acts = np.ascontiguousarray(acts, np.int64)
    rows = np.ascontiguousarray(rows, np.int64)
    reasons = decode_actions(rows, acts, nvec, catalogue.p_kind, catalogue.p_factory,
                             state.factory_slots, view, state.wealth, catalogue.gift_levels,
                             batch.primary, batch.factory, batch.secondary, batch.target,
                             batch.amount, P.IDLE, S.NONE, S.GIFT)
    batch.flag_bits(rows, reasons, decode_reasons(spec))
    decode_messages(batch, rows, acts, state, view, cfg, day)


def decode_messages(batch: ActionBatch, rows: np.ndarray, acts: np.ndarray,
                    state: WorldState, view: np.ndarray, cfg: Config,
                    day: int | np.ndarray) -> None:
    """``decode``'s last step: the cheap-talk messages of residents ``rows``' factored
    actions ``acts`` (K, C) (columns ``message``, ``message_to``), rendered and appended to
    ``batch.messages``; out-of-range or undeliverable ones flagged and dropped. Reads the
    batch's decoded ``factory`` (a factory's-worth message speaks of it)."""
    message, message_to = acts[:, 4], acts[:, 5]
    talk = message != 0
    if not np.count_nonzero(talk):
        return
    rows = np.asarray(rows, np.int64)
    if cfg.max_messages <= 0:
        batch.flag_many(rows[talk], "messages are off (max_messages = 0): dropped")
        return
    spec = FactoredSpec.of(cfg)
    nvec = spec.nvec
    out_of_range = (acts[:, 4:] < 0) | (acts[:, 4:] >= nvec[4:])
    bad_m = talk & (out_of_range[:, 0] | out_of_range[:, 1])
    if np.count_nonzero(bad_m):
        batch.flag_many(rows[bad_m], f"message kind outside [0, {spec.n_message}) or "
                                     f"recipient outside [0, {spec.n_message_to}): dropped")
    v = cfg.view_size
    sending = (talk & ~bad_m).nonzero()[0]
    # Yesterday's pay per worker of every factory row, and each sender's day (taken once, not
    # per message: a batch holds every community's factories).
    per_worker = state.output / np.maximum(state.workers, 1)
    days = np.broadcast_to(state.per_row(day, rows[sending]), len(sending)).tolist()
    m = state.m_per
    for k, today in zip(sending.tolist(), days, strict=True):
        i, to = int(rows[k]), int(message_to[k])
        if to == v:
            recipient = EVERYONE
        else:
            recipient = int(view[i, to])
            if recipient < 0:
                batch.flag(i, "message to an empty view slot: dropped")
                continue
        lo = i // state.n_per * m
        factory, worth = _factory_worth(state, i, int(batch.factory[i]),
                                        per_worker[lo:lo + m])
        text = render_message(int(message[k]), factory, worth)
        batch.messages.append(Message(int(today), i, recipient, text[: cfg.max_message_chars]))


def _factory_worth(state: WorldState, i: int, factory: int,
                   per_worker: np.ndarray) -> tuple[int, float]:
    """The factory a factory's-worth message speaks of (the one of today's primary action,
    else the known factory that paid most per worker yesterday) and its pay per worker,
    given ``per_worker`` (M,) of ``i``'s community's factories (its own numbers)."""
    if factory < 0:
        known = state.known[i].nonzero()[0]
        if len(known) == 0:
            return -1, 0.0
        factory = int(known[np.argmax(per_worker[known])])
    return factory, float(per_worker[factory])


def to_flat(acts: np.ndarray, cfg: Config, catalogue: Catalogue | None = None) -> np.ndarray:
    """Flat catalogue ids (K,) of factored actions (K, C) (their message columns dropped)."""
    catalogue = catalogue or Catalogue(cfg)
    acts = np.asarray(acts, np.int64)
    p = acts[:, 0]
    sec = acts[:, 1]
    return catalogue.encode(catalogue.p_kind[p], catalogue.p_factory[p], sec,
                            np.where(sec != S.NONE, acts[:, 2], -1),
                            np.where(sec == S.GIFT, acts[:, 3], 0))


def from_flat(ids: np.ndarray, cfg: Config, catalogue: Catalogue | None = None) -> np.ndarray:
    """Factored actions (K, C) of flat catalogue ids (K,), sending no message."""
    catalogue = catalogue or Catalogue(cfg)
    ids = np.asarray(ids, np.int64)
    p, s = np.divmod(ids, catalogue.n_secondary)
    out = np.zeros((len(ids), N_COMPONENTS), np.int64)
    out[:, 0] = p
    out[:, 1] = catalogue.s_kind[s]
    out[:, 2] = np.maximum(catalogue.s_slot[s], 0)
    out[:, 3] = np.maximum(catalogue.s_level[s], 0)
    return out
