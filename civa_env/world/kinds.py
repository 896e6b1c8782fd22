"""Every kind the world knows, with its integer code defined once.

* ``Primary``: the primary action of a day (one per resident).
* ``Secondary``: the optional secondary action (gift, attack, merge proposal).
* ``Deal``: kinds of recent dealings the state remembers for views and features.
* ``EventKind``: what an event of the log records; ``ACTION_KINDS`` are those a resident
  chose, the others are outcomes.
* Event flags: ``ATTACK_SUCCESS``/``ATTACK_ON_ALLY`` (bits of an attack's flag) and
  ``EXPLORE_REVEALED``/``EXPLORE_FOUND`` (an exploration's result).
* ``LLM_OUTCOMES``: how an LLM resident's decision ended (valid, valid after a retry, or a
  fallback to idle).

The rules use plain ints in their hot paths (``P``, ``S``, ``D``, ``K``: attribute access on a
namespace is cheaper than on an enum class, and numpy calls are slower with enum members).
"""

from __future__ import annotations

import enum
from types import SimpleNamespace


class Primary(enum.IntEnum):
    """Primary actions (one a day)."""

    WORK = 0  # secure resources at a known factory
    EXPLORE = 1
    UPGRADE_SELF = 2
    UPGRADE_FACTORY = 3
    IDLE = 4


class Secondary(enum.IntEnum):
    """Secondary actions (at most one a day)."""

    NONE = 0
    GIFT = 1
    ATTACK = 2
    MERGE = 3


class Deal(enum.IntEnum):
    """Kinds of recent dealings kept in ``WorldState.recent_kind``."""

    GIFT = 0
    ATTACK = 1
    MERGE = 2
    MESSAGE = 3


class EventKind(enum.IntEnum):
    """What an event records."""

    WORK = 0  # actor worked at factory; amount = income
    EXPLORE = 1  # flag EXPLORE_REVEALED: revealed factory; EXPLORE_FOUND: found amount
    UPGRADE_SELF = 2  # amount = new skill
    UPGRADE_FACTORY = 3  # factory, amount = new capacity
    IDLE = 4
    OUTAGE = 5  # factory produced nothing today
    GIFT = 6  # actor -> target, amount transferred
    ATTACK = 7  # flag bits ATTACK_SUCCESS, ATTACK_ON_ALLY; amount = loot
    MERGE_PROPOSAL = 8  # actor proposes an alliance to target
    ALLIANCE_FORMED = 9
    ALLIANCE_DISSOLVED = 10  # actor attacked its ally target
    MESSAGE = 11  # target -1 = everyone; text
    BIRTH = 12  # actor = parent, target = newcomer
    DEATH = 13  # actor starved; amount = final wealth
    INVALID = 14  # text = reason the action was changed

    @property
    def label(self) -> str:
        """Lower-case name used in JSON (``merge_proposal``)."""
        return self.name.lower()


KIND_BY_LABEL = {k.label: k for k in EventKind}
# What residents chose to do; the other kinds (outage, alliance formed or dissolved, birth,
# death, invalid) are outcomes. The census and the per-policy breakdowns count these.
ACTION_KINDS = (EventKind.WORK, EventKind.EXPLORE, EventKind.UPGRADE_SELF,
                EventKind.UPGRADE_FACTORY, EventKind.IDLE, EventKind.GIFT, EventKind.ATTACK,
                EventKind.MERGE_PROPOSAL, EventKind.MESSAGE)

ATTACK_SUCCESS = 1  # bit of an attack's flag
ATTACK_ON_ALLY = 2  # bit of an attack's flag
EXPLORE_REVEALED = 1  # an exploration's flag
EXPLORE_FOUND = 2  # an exploration's flag

LLM_OUTCOMES = ("valid", "retried", "fallback")

P = SimpleNamespace(**{k.name: int(k) for k in Primary})
S = SimpleNamespace(**{k.name: int(k) for k in Secondary})
D = SimpleNamespace(**{k.name: int(k) for k in Deal})
K = SimpleNamespace(**{k.name: int(k) for k in EventKind})
