"""The feature vector: a table of named channels, each with its scale, written and read by name.

``CHANNELS`` defines every channel once (its name, group, encoding and meaning), in the way
Neural MMO names its state columns once and reads them by name. A ``FeatureLayout`` places
the channels of a config in the vector: the own facts, the value condition one-hot, one
block per factory slot (slot-major; ``civa_env.world.slots``: slot m is factory m while
``n_factories <= factory_slots``, else the resident's known factories by capacity) and one
block per view slot (slot-major), in that order.
``features`` writes the vector by channel name; readers use the layout
(``layout.read(feats, "wealth")`` gives wealth in world units, undoing the signed log).

Encodings (every value is clipped to [-FEATURE_CLIP, FEATURE_CLIP]; ``read`` cannot undo
the clipping, so values beyond it saturate):

- ``log``: ``signed_log(x) = sign(x) log(1 + |x|)``; read back with ``unlog``.
- ``scale``: ``x / scale``, the scale a number or a config field (``/max_days``); counts
  (``count=True``) are read back rounded to integers.
- ``flag``: 0 or 1; read back as bool (> 0.5).
- ``one_hot``: ``width`` columns, one set; read back as the index set, -1 for none.
- ``relative_log``: ``signed_log(theirs) - signed_log(own wealth)``; read back as theirs,
  from the resident's own ``wealth`` channel.

Factory channels describe yesterday's report of the factory in each factory slot and are 0
for the factories the resident does not know and for empty slots; slot channels describe
the resident in each view slot (the dealings of the last ``recent_days`` days) and are 0
for empty slots. Messages to everyone
count for neither ``slot.messaged_me`` nor ``slot.friendly_to_me``, as a broadcast never
makes an attack deceptive; a friendly direct message sets both.

Channels:

{channels}
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from civa_env.world.arrays import index
from civa_env.world.config import Config
from civa_env.world.rules import outage_prob, upkeep_factor
from civa_env.world.state import WorldState
from civa_env.world.values import N_CONDITION_CODES, Direction, Value, direction_of, value_of

FEATURE_CLIP = 10.0
GROUPS = ("own", "condition", "factory", "slot")
ENCODINGS = ("log", "scale", "flag", "one_hot", "relative_log")


@dataclass(frozen=True)
class Channel:
    """One named channel of the feature vector: one column (``width`` for a one-hot), once
    per resident for the own and condition groups, once per factory or view slot for the
    factory and slot groups."""

    name: str  # "wealth", "condition.direction", "factory.capacity", "slot.present"
    group: str  # one of GROUPS
    encoding: str  # one of ENCODINGS
    doc: str
    # Divisor of a ``scale`` channel: a number, or a Config field the layout holds
    # (max_days, n_agents, view_size).
    scale: float | str = 1.0
    count: bool = False  # the world value is a whole number (read rounds it)
    width: int = 1  # columns (one-hot channels only)

    def __post_init__(self) -> None:
        if self.group not in GROUPS or self.encoding not in ENCODINGS:
            raise ValueError(f"channel {self.name!r}: unknown group or encoding")
        if (self.width > 1) != (self.encoding == "one_hot"):
            raise ValueError(f"channel {self.name!r}: only one-hots have several columns")

    @property
    def short(self) -> str:
        """The name within its group: ``factory.capacity`` -> ``capacity``."""
        return self.name.split(".", 1)[1] if self.group in ("factory", "slot") else self.name

    @property
    def code(self) -> str:
        """The encoding as a formula, for the channel table."""
        if self.encoding == "scale":
            if self.scale == 1.0:
                return "x"
            return f"x / {self.scale:g}" if isinstance(self.scale, float) else f"x / {self.scale}"
        return {"log": "signed_log(x)", "flag": "0/1", "one_hot": f"one-hot of {self.width}",
                "relative_log": "signed_log(x) - signed_log(wealth)"}[self.encoding]


def _own(name: str, encoding: str, doc: str, scale: float | str = 1.0,
         count: bool = False) -> Channel:
    return Channel(name, "own", encoding, doc, scale, count)


CHANNELS: tuple[Channel, ...] = (
    _own("wealth", "log", "own wealth"),
    _own("skill", "scale", "own skill"),
    _own("day", "scale", "days completed", "max_days", count=True),
    _own("population", "scale", "living residents", "n_agents", count=True),
    _own("allies", "scale", "own allies", "view_size", count=True),
    _own("income", "log", "yesterday's income (production and finds)"),
    _own("received", "log", "yesterday's gifts received"),
    _own("given", "log", "yesterday's gifts given"),
    _own("looted", "log", "yesterday's loot taken in attacks"),
    _own("lost", "log", "yesterday's losses to attacks and fights"),
    _own("attacks", "scale", "attacks received yesterday", count=True),
    _own("inbox", "scale", "messages delivered today (broadcasts included)", 10.0, count=True),
    _own("mean_wealth", "log", "mean wealth of the living residents"),
    _own("upkeep", "log", "today's upkeep (before noise and the idle discount; stress and "
         "shock included)"),
    _own("outage_prob", "scale", "today's outage probability of a factory (stress included)"),
    Channel("condition.direction", "condition", "one_hot",
            "value condition direction: " + ", ".join(d.name.lower() for d in Direction),
            width=len(Direction)),
    Channel("condition.value", "condition", "one_hot",
            "the condition's value (none set for baseline): "
            + ", ".join(v.name.lower() for v in Value), width=len(Value)),
    Channel("factory.known", "factory", "flag", "the resident knows the factory"),
    Channel("factory.capacity", "factory", "scale", "capacity", 10.0),
    Channel("factory.workers", "factory", "scale", "yesterday's workers", 10.0, count=True),
    Channel("factory.output", "factory", "scale", "yesterday's output", 10.0),
    Channel("factory.outage", "factory", "flag", "an outage yesterday"),
    Channel("slot.present", "slot", "flag", "a resident is in the slot"),
    Channel("slot.wealth", "slot", "relative_log", "its wealth, relative to own wealth"),
    Channel("slot.ally", "slot", "flag", "an ally"),
    Channel("slot.gave_me", "slot", "flag", "it gave me a gift"),
    Channel("slot.i_gave", "slot", "flag", "I gave it a gift"),
    Channel("slot.attacked_me", "slot", "flag", "it attacked me"),
    Channel("slot.i_attacked", "slot", "flag", "I attacked it"),
    Channel("slot.messaged_me", "slot", "flag", "it sent me a message"),
    Channel("slot.friendly_to_me", "slot", "flag",
            "it sent me a friendly message (to me alone: the class and the messages the "
            "deception detector counts, see behaviours.friendly_texts)"),
)


def signed_log(x: np.ndarray) -> np.ndarray:
    """``sign(x) log(1 + |x|)``, the ``log`` encoding."""
    return np.copysign(np.log1p(np.abs(x)), x)


def unlog(x: np.ndarray) -> np.ndarray:
    """Inverse of ``signed_log``."""
    return np.sign(x) * np.expm1(np.abs(x))


def _clip(x: np.ndarray) -> np.ndarray:
    """``np.clip(x, -FEATURE_CLIP, FEATURE_CLIP)``: the same values with less overhead per
    call (the features are built every step from small arrays)."""
    return np.minimum(np.maximum(x, -FEATURE_CLIP), FEATURE_CLIP)


def channel_table() -> str:
    """The channels as a text table (one line each), for docstrings and docs."""
    lines = []
    for ch in CHANNELS:
        per = {"factory": " (per factory slot)", "slot": " (per view slot)"}.get(ch.group, "")
        lines.append(f"- ``{ch.name}``{per}: {ch.doc}; {ch.code}")
    return "\n".join(lines)


class FeatureLayout:
    """Where each channel sits in the feature vector of a config (see the module docstring).

    ``size`` columns: the own channels, the condition one-hots, ``factory_slots`` blocks of
    the factory channels (``Config.factory_slot_count``), then ``view_size`` blocks of the
    slot channels. ``columns`` names
    every column (``wealth``, ``condition.value.power``, ``factory[2].capacity``,
    ``slot[0].present``). Readers take ``feats`` of shape (..., size).
    """

    def __init__(self, factory_slots: int, view_size: int, max_days: int, n_agents: int) -> None:
        self.factory_slots, self.view_size = factory_slots, view_size
        self.max_days, self.n_agents = max_days, n_agents
        self.channels = {ch.name: ch for ch in CHANNELS}
        by_group = {g: [ch for ch in CHANNELS if ch.group == g] for g in GROUPS}
        self.own = tuple(ch.name for ch in by_group["own"])
        self.factory_channels = tuple(ch.short for ch in by_group["factory"])
        self.slot_channels = tuple(ch.short for ch in by_group["slot"])
        # Where each channel is: an int column (own channels), or a slice (one-hots: their
        # columns; factory and slot channels: one column per factory or slot, strided).
        self._where: dict[str, int | slice] = {}
        columns: list[str] = []
        for ch in by_group["own"] + by_group["condition"]:
            if ch.width == 1:
                self._where[ch.name] = len(columns)
                columns.append(ch.name)
            else:
                self._where[ch.name] = slice(len(columns), len(columns) + ch.width)
                labels = Direction if ch.name == "condition.direction" else Value
                columns += [f"{ch.name}.{x.name.lower()}" for x in labels]
        self.factory_start = len(columns)
        n_fc, n_sc = len(self.factory_channels), len(self.slot_channels)
        self.slot_start = self.factory_start + n_fc * factory_slots
        self.size = self.slot_start + n_sc * view_size
        for c, ch in enumerate(by_group["factory"]):
            self._where[ch.name] = slice(self.factory_start + c, self.slot_start, n_fc)
        for c, ch in enumerate(by_group["slot"]):
            self._where[ch.name] = slice(self.slot_start + c, self.size, n_sc)
        self._offset = {ch.name: c for chans in (by_group["factory"], by_group["slot"])
                        for c, ch in enumerate(chans)}
        columns += [f"factory[{m}].{c}" for m in range(factory_slots)
                    for c in self.factory_channels]
        columns += [f"slot[{s}].{c}" for s in range(view_size) for c in self.slot_channels]
        self.columns = tuple(columns)
        self._column = {name: i for i, name in enumerate(columns)}
        # Encoding plans of the own and factory channels (see ``encode``).
        self._plans = {g: self._plan(by_group[g]) for g in ("own", "factory")}

    @classmethod
    def of(cls, cfg: Config) -> FeatureLayout:
        """The layout of ``cfg`` (built once per shape and scales)."""
        return _layout(cfg.factory_slot_count, cfg.view_size, cfg.max_days, cfg.n_agents)

    def __repr__(self) -> str:
        return (f"FeatureLayout(factory_slots={self.factory_slots}, view_size={self.view_size}, "
                f"size={self.size})")

    # ---- where ---------------------------------------------------------------------------

    def channel(self, name: str) -> Channel:
        """The channel called ``name`` (a clear error for unknown names)."""
        try:
            return self.channels[name]
        except KeyError:
            raise KeyError(f"no feature channel {name!r}; known: "
                           f"{', '.join(self.channels)}") from None

    def scale(self, name: str) -> float:
        """The divisor of channel ``name`` for this config (1 for non-scale channels)."""
        ch = self.channel(name)
        if ch.encoding != "scale":
            return 1.0
        return float(getattr(self, ch.scale)) if isinstance(ch.scale, str) else ch.scale

    def index(self, name: str) -> int:
        """The column of an own channel (``index("wealth")``)."""
        where = self._where[self.channel(name).name]
        if not isinstance(where, int):
            raise ValueError(f"channel {name!r} has several columns: use slice(), factory() "
                             "or slot()")
        return where

    def slice(self, name: str) -> slice:
        """The columns of a channel: its one-hot columns, one column per factory or view slot
        (a strided slice), or the one column of an own channel."""
        where = self._where[self.channel(name).name]
        return slice(where, where + 1) if isinstance(where, int) else where

    def column(self, name: str) -> int:
        """The column called ``name`` in ``columns`` (``factory[2].capacity``)."""
        return self._column[name]

    def factory(self, m: int, name: str) -> int:
        """The column of factory slot ``m``'s channel ``name`` (``capacity`` or
        ``factory.capacity``)."""
        if not 0 <= m < self.factory_slots:
            raise IndexError(f"factory slot {m} out of range [0, {self.factory_slots})")
        return self._where[self._full(name, "factory")].start + m * len(self.factory_channels)

    def slot(self, s: int, name: str) -> int:
        """The column of view slot ``s``'s channel ``name`` (``present`` or ``slot.present``)."""
        if not 0 <= s < self.view_size:
            raise IndexError(f"view slot {s} out of range [0, {self.view_size})")
        return self._where[self._full(name, "slot")].start + s * len(self.slot_channels)

    def offset(self, name: str) -> int:
        """Position of a factory or slot channel within its block (``slot.gave_me`` -> 3)."""
        offset = self._offset.get(name)
        if offset is None:
            self.channel(name)  # a clear error for unknown names
            raise ValueError(f"channel {name!r} is not a factory or slot channel")
        return offset

    def _full(self, name: str, group: str) -> str:
        full = f"{group}.{name}"
        if full not in self.channels:
            full = name
        if self.channel(full).group != group:
            raise ValueError(f"channel {name!r} is not a {group} channel")
        return full

    # ---- reading -----------------------------------------------------------------------------

    def block(self, feats: np.ndarray, name: str) -> np.ndarray:
        """The raw (encoded) values of channel ``name``: (...,) for an own channel, (..., W)
        for a one-hot, (..., M) for a factory channel (M factory slots), (..., V) for a slot
        channel."""
        where = self._where[self.channel(name).name]
        return np.asarray(feats)[..., where]

    def factory_block(self, feats: np.ndarray, name: str) -> np.ndarray:
        """The raw values of factory channel ``name`` for every factory slot: (..., M)."""
        return self.block(feats, self._full(name, "factory"))

    def slot_block(self, feats: np.ndarray, name: str) -> np.ndarray:
        """The raw values of slot channel ``name`` for every view slot: (..., V)."""
        return self.block(feats, self._full(name, "slot"))

    def read(self, feats: np.ndarray, name: str) -> np.ndarray:
        """Channel ``name`` in world units (the encoding undone; clipping cannot be).

        ``log``: float64 values; ``scale``: times the scale (counts rounded); ``flag``: bool;
        ``one_hot``: the index set (int64, -1 for none); ``relative_log``: the other's
        wealth, from the resident's own ``wealth`` column. Shapes as ``block``.
        """
        ch = self.channel(name)
        x = self.block(feats, name)
        if ch.encoding == "flag":
            return x > 0.5
        if ch.encoding == "one_hot":
            return np.where(x.max(-1) > 0.5, x.argmax(-1), -1)
        x = np.asarray(x, np.float64)
        if ch.encoding == "log":
            return unlog(x)
        if ch.encoding == "relative_log":
            own = np.asarray(self.block(feats, "wealth"), np.float64)
            return unlog(own[..., None] + x)
        y = x * self.scale(name)
        return np.rint(y) if ch.count else y

    # ---- writing -----------------------------------------------------------------------------

    def _plan(self, chans: list[Channel]) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """Names, log columns and divisors of a group's (width 1) channels, in order."""
        names = tuple(ch.short for ch in chans)
        logs = np.array([c for c, ch in enumerate(chans) if ch.encoding == "log"], np.int64)
        divisors = np.array([self.scale(ch.name) for ch in chans])
        return names, logs, divisors

    def encode(self, group: str, values: dict[str, np.ndarray | float],
               shape: tuple[int, ...]) -> np.ndarray:
        """Encode world values of every channel of ``group`` (``own`` or ``factory``), given
        by short name, each broadcast to ``shape``: (*shape, C) float64, clipped."""
        names, logs, divisors = self._plans[group]
        # Channel-major while encoding (each channel's values contiguous), then transposed.
        x = np.empty((len(names),) + shape)
        for c, name in enumerate(names):
            x[c] = values[name]
        if len(logs):
            x[logs] = signed_log(x[logs])
        x /= divisors.reshape((-1,) + (1,) * len(shape))  # 1 for log and flag channels: exact
        x = _clip(x)
        return x.T if len(shape) == 1 else np.moveaxis(x, 0, -1)


@lru_cache(maxsize=64)
def _layout(factory_slots: int, view_size: int, max_days: int, n_agents: int) -> FeatureLayout:
    return FeatureLayout(factory_slots, view_size, max_days, n_agents)


def feature_size(cfg: Config) -> int:
    """Length F of the feature vector (fixed by the config's shape fields)."""
    return FeatureLayout.of(cfg).size


# Condition code -> its direction and value (codes 1-10 and 11-20 name the same ten values;
# -1 for baseline).
_CODES = np.arange(N_CONDITION_CODES)
_DIRECTION = direction_of(_CODES)
_VALUE = value_of(_CODES)


# The own channels' sources, in the order ``kernels.fill_features`` reads them: one value per
# name of the pool, then one per community.
_NAME_SOURCES = ("wealth", "skill", "allies", "income", "received", "given", "looted", "lost",
                 "attacks", "inbox")
_COMMUNITY_SOURCES = ("day", "population", "mean_wealth", "upkeep", "outage_prob")


@lru_cache(maxsize=8)
def _plan(layout: FeatureLayout) -> dict[str, np.ndarray | int]:
    """Where ``kernels.fill_features`` writes what, for ``layout``: the own sources' columns,
    log flags and divisors, the condition tables and the factory and slot offsets."""
    sources = _NAME_SOURCES + _COMMUNITY_SOURCES
    if sorted(sources) != sorted(layout.own):
        raise AssertionError("every own channel needs a source in features._NAME_SOURCES "
                             "or _COMMUNITY_SOURCES")
    ally, friendly, dealt_me, i_dealt = _dealing_offsets(layout)
    return {
        "own_col": np.array([layout.index(n) for n in sources], np.int64),
        "own_log": np.array([layout.channel(n).encoding == "log" for n in sources]),
        "own_div": np.array([layout.scale(n) for n in sources]),
        "direction_start": layout.slice("condition.direction").start,
        "value_start": layout.slice("condition.value").start,
        "present_at": layout.offset("slot.present"),
        "wealth_at": layout.offset("slot.wealth"),
        "ally_at": ally, "friendly_at": friendly, "dealt_me": dealt_me, "i_dealt": i_dealt,
    }


def features(state: WorldState, view: np.ndarray, rows: np.ndarray, inbox_count: np.ndarray,
             cfg: Config, out: np.ndarray | None = None,
             out_rows: np.ndarray | None = None) -> np.ndarray:
    """Feature vectors of residents ``rows``: (K, F) float32 in [-10, 10]; or, given
    ``out`` (R, F) float32 and ``out_rows`` (K,), written into rows ``out_rows`` of ``out``
    (every column), which is returned. ``view`` is ``perception.compute_view``'s (a row
    holds each name once: a dealing's flag goes to the first slot holding the name).

    Written by channel name (``CHANNELS``, placed by ``FeatureLayout.of(cfg)``) in one
    compiled pass (``kernels.fill_features``) with numpy's float64 arithmetic, clipped, then
    stored as float32:

    {channels}
    """
    from civa_env.world.kernels import fill_features  # (numba loads on first use)

    layout = FeatureLayout.of(cfg)
    plan = _plan(layout)
    rows = np.asarray(rows, np.int64)
    if out is None:
        out = np.empty((len(rows), layout.size), np.float32)
        out_rows = index(len(rows))
    elif out_rows is None or len(out_rows) != len(rows):
        raise ValueError("features: out needs out_rows, one row of out per row of rows")
    if len(rows) == 0:
        return out
    day = np.atleast_1d(np.asarray(state.day, np.int64))
    # The state's own arrays where they are float64 already (no copy of the pool's rows);
    # all writable, so that numba sees one array type (a read-only one is copied).
    def as_float(x: np.ndarray) -> np.ndarray:  # (np.require's checks, without its cost)
        flags = x.flags
        if x.dtype == np.float64 and flags.c_contiguous and flags.writeable:
            return x
        return np.array(x, np.float64, order="C")

    per_name = tuple(as_float(x) for x in (
        state.wealth, state.skill, np.bincount(state.allies.ravel(), minlength=state.n_pool),
        state.income, state.received, state.given, state.looted, state.lost,
        state.attacked_by, inbox_count))
    # Today is the day about to be played (state.day days are completed).
    upkeep = cfg.upkeep * np.atleast_1d(upkeep_factor(cfg, state.day + 1))
    outage = np.atleast_1d(outage_prob(cfg, state.day + 1))
    # (rows in that order; the population and mean wealth are the kernel's to write:
    # ``kernels.community_wealth``, each community's sum as ``ndarray.sum`` takes it alone)
    per_community = np.empty((len(_COMMUNITY_SOURCES), len(day)))
    per_community[0], per_community[3], per_community[4] = day, upkeep, outage
    # Each factory's report (capacity etc. are >= 0), shown for those the resident knows.
    report = np.ascontiguousarray(layout.encode("factory", {
        "known": 1.0, "capacity": state.capacity, "workers": state.workers,
        "output": state.output, "outage": state.outage}, (len(state.capacity),)))  # (E M, C)
    fill_features(
        rows, np.asarray(out_rows, np.int64), out, state.n_per, FEATURE_CLIP, state.alive,
        per_name, per_community, plan["own_col"], plan["own_log"], plan["own_div"],
        state.condition, _DIRECTION, _VALUE, plan["direction_start"], plan["value_start"],
        state.factory_slots, state.known, state.m_per, report, layout.factory_start,
        view, state.wealth, layout.slot_start, len(layout.slot_channels), plan["present_at"],
        plan["wealth_at"], state.allies, plan["ally_at"], state.recent_day,
        state.recent_src, state.recent_dst, state.recent_kind, state.recent_friendly,
        day - cfg.recent_days + 1, plan["dealt_me"], plan["i_dealt"], plan["friendly_at"])
    return out


# Slot channels filled from dealings, by Deal kind (gift, attack, merge, message): what the
# other did to the viewer, and what the viewer did to the other (None: not shown).
_DEALT_ME = ("slot.gave_me", "slot.attacked_me", None, "slot.messaged_me")
_I_DEALT = ("slot.i_gave", "slot.i_attacked", None, None)


@lru_cache(maxsize=8)
def _dealing_offsets(layout: FeatureLayout) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The ally and friendly-message channels' offsets in a slot block, and the dealing
    channels' by Deal kind."""
    def offsets(names: tuple[str | None, ...]) -> np.ndarray:
        return np.array([-1 if n is None else layout.offset(n) for n in names])

    return (layout.offset("slot.ally"), layout.offset("slot.friendly_to_me"),
            offsets(_DEALT_ME), offsets(_I_DEALT))


# The channel lists of the docstrings come from the table (absent under python -OO).
if __doc__:
    __doc__ = __doc__.format(channels=channel_table())
if features.__doc__:
    features.__doc__ = features.__doc__.format(
        channels=channel_table().replace("\n", "\n    "))
