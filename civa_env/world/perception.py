"""What residents perceive: the bounded view, the text briefing and the legal facts.

``compute_view`` is vectorised over residents; ``Briefer.brief`` is the only per-resident
loop and is skipped in numeric mode; ``LegalBook``/``LegalFacts`` compute a resident's legal
facts only when a policy reads them. The feature vector lives in ``civa_env.world.features``.
``Briefer`` is briefing v1 (``Config.briefing="v1"``); v2, the default, is in
``civa_env.world.briefing``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from civa_env.world import slots
from civa_env.world.actions import EVERYONE
from civa_env.world.arrays import filled
from civa_env.world.config import Config
from civa_env.world.events import agent_name
from civa_env.world.rules import upkeep_factor
from civa_env.world.state import Message, WorldState
from civa_env.world.values import N_CONDITION_CODES, ValueCondition, prompt_for

TIERS = ("destitute", "poor", "middling", "rich", "very rich")
TIER_EDGES = np.array([3.0, 8.0, 15.0, 30.0])
_NOT_PRINTABLE = re.compile(f"[^{re.escape(string.printable)}]")


def fold_text(text: str, max_chars: int | None = None) -> str:
    """Printable ASCII only (anything else becomes '?'), cut to ``max_chars``."""
    # (str.isprintable is False for newlines, which are printable ASCII here.)
    if not (text.isascii() and text.replace("\n", " ").isprintable()):
        text = _NOT_PRINTABLE.sub("?", text)
    return text if max_chars is None else text[:max_chars]


def compute_view(state: WorldState, cfg: Config, rng: np.random.Generator,
                 out: np.ndarray | None = None, stale: np.ndarray | None = None
                 ) -> np.ndarray:
    """Who each living resident sees: (N, V) int32 resident indices, -1 for empty slots.
    Given ``out`` (N, V) int32, whose rows are all -1 but those of pool rows ``stale``, it
    is written in place and returned (a batch's view, day after day: ``stale`` the rows
    of those alive the day before).

    Allies first, then residents who dealt with it in the last ``recent_days`` days, then a
    seeded random sample of the rest (a window of a random permutation, so the work is
    O(N V), not O(N^2)). Within a priority, slots are in name order. In a batch of
    communities (``state.communities``) each community's residents are permuted among
    themselves, so each sees only its own community, as it would alone.
    """
    from civa_env.world.kernels import fill_view  # (numba loads on first use)

    n, v = state.n_pool, cfg.view_size
    if out is None:
        view = filled((n, v), -1, np.int32)
    else:
        view = out
        view[stale] = -1
    # One key per name, drawn whatever the population (common random numbers: the stream
    # stays in step between conditions); sorting the living residents' keys shuffles them.
    order_key = rng.random(n)
    living = state.alive.nonzero()[0].astype(np.int64)
    if len(living) <= 1:
        return view
    fill_view(order_key, living, state.n_per, *priority_csr(state, cfg.recent_days), view)
    return view


def founders_view(cfg: Config, g: int, rng: np.random.Generator) -> np.ndarray:
    """``compute_view`` of G fresh worlds (``state.seeded_states``: the founders alive, no
    relations yet), drawn from ``rng`` (their streams, a ``batch.StreamBatch`` for G > 1),
    without the state: (G N, V) int32, pool rows of those G worlds (a test compares the
    two)."""
    from civa_env.world.kernels import fill_view  # (numba loads on first use)

    n, v = g * cfg.max_agents, cfg.view_size
    view = filled((n, v), -1, np.int32)
    order_key = rng.random(n)  # (compute_view's draw: one key per name)
    living = (np.arange(g)[:, None] * cfg.max_agents + np.arange(cfg.n_agents)).ravel()
    if len(living) <= 1:
        return view
    fill_view(order_key, living, cfg.max_agents, np.zeros(n + 1, np.int64),
              np.empty(0, np.int64), view)
    return view


def priority_csr(state: WorldState, recent_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Whom each resident sees first (allies, then direct dealings of the last
    ``recent_days`` days, each by name) as CSR: ``ptr`` (N + 1,), ``pair_to`` (P,) int64
    (``kernels.priority_pairs``)."""
    from civa_env.world.kernels import priority_pairs  # (numba loads on first use)

    return priority_pairs(state.allies, state.recent_src, state.recent_dst, state.recent_day,
                          np.atleast_1d(state.day).astype(np.int64), state.alive, state.n_per,
                          recent_days)


def inboxes(state: WorldState) -> tuple[dict[int, list[Message]], list[Message]]:
    """Today's deliveries: direct messages by recipient (newest first), and broadcasts."""
    direct: dict[int, list[Message]] = {}
    broadcast: list[Message] = []
    for msg in reversed(state.inbox):
        if msg.recipient == EVERYONE:
            broadcast.append(msg)
        else:
            direct.setdefault(msg.recipient, []).append(msg)
    return direct, broadcast


def inbox_count(state: WorldState) -> np.ndarray:
    """Messages delivered to each resident today: (N,) int64 (broadcasts count for all)."""
    n = state.n_pool
    if not state.inbox:
        return np.zeros(n, np.int64)
    recipients = np.array([m.recipient for m in state.inbox], np.int64)
    direct = recipients[recipients >= 0]
    if state.communities == 1:
        return np.bincount(direct, minlength=n) + np.count_nonzero(recipients < 0)
    # In a batch a broadcast reaches the sender's community.
    senders = np.array([m.sender for m in state.inbox], np.int64)[recipients < 0]
    per = np.bincount(senders // state.n_per, minlength=state.communities)
    return np.bincount(direct, minlength=n) + np.repeat(per, state.n_per)


def wealth_tier(wealth: np.ndarray) -> np.ndarray:
    """Coarse tier index per resident (see ``TIERS``)."""
    return np.searchsorted(TIER_EDGES, wealth, side="right")


class Briefer:
    """Builds the text briefings of one day (shared pieces are made once per day)."""

    def __init__(self, state: WorldState, view: np.ndarray, cfg: Config) -> None:
        self.state, self.view, self.cfg = state, view, cfg
        self.direct, self.broadcast = inboxes(state)
        s = state
        self.factory_lines = [
            f"- factory {m}: capacity {s.capacity[m]:.1f}; yesterday "
            + ("an outage, nothing produced" if s.outage[m]
               else f"{s.workers[m]} workers shared {s.output[m]:.1f}")
            for m in range(cfg.n_factories)]
        tiers = wealth_tier(s.wealth)
        self.labels = {int(j): f"resident_{j} ({TIERS[tiers[j]]})"
                       for j in s.alive.nonzero()[0]}
        self.allies_of: dict[int, list[int]] = {}
        for a, b in s.allies.tolist():
            self.allies_of.setdefault(a, []).append(b)
            self.allies_of.setdefault(b, []).append(a)
        self.n_alive = int(np.count_nonzero(s.alive))
        # Today's upkeep (stress and shock included; the config's upkeep without them).
        upkeep = cfg.upkeep * upkeep_factor(cfg, s.day + 1)
        self.header = (f"Day {s.day + 1} of {cfg.max_days}. {self.n_alive} residents are alive. "
                       f"Upkeep is about {upkeep:g} a day ({cfg.idle_upkeep_factor:g} of it "
                       f"when idle); below 0 wealth you starve.")
        self.prompts = [prompt_for(c) for c in range(N_CONDITION_CODES)]


    def brief(self, i: int) -> str:
        """The briefing of resident ``i``."""
        s, cfg = self.state, self.cfg
        lines = [f"You are resident_{i}. " + self.header,
                 f"Your wealth: {s.wealth[i]:.1f}. Your skill: {s.skill[i]:.2f}."]
        prompt = self.prompts[s.condition[i]]
        if prompt:
            lines.append(prompt)
        known = slots.listed(s, i)
        if known:
            note = more_known(s, i, len(known))
            lines.append("Factories you know" + (f" ({note})" if note else "") + ":")
            lines += [self.factory_lines[m] for m in known]
        else:
            lines.append("You know no factory yet: explore to find one.")
        if s.day > 0:
            lines.append(
                f"Yesterday you earned {s.income[i]:.1f}, received {s.received[i]:.1f} in gifts, "
                f"gave {s.given[i]:.1f}, took {s.looted[i]:.1f} in attacks, lost {s.lost[i]:.1f} "
                f"and were attacked {s.attacked_by[i]} times.")
        allies = self.allies_of.get(i)
        lines.append("Your allies: " + (", ".join(f"resident_{a}" for a in sorted(allies))
                                        if allies else "none") + ".")
        seen = self.view[i]
        labels = self.labels
        visible = [labels[j] for j in seen[seen >= 0].tolist()]
        lines.append("Residents you see: " + (", ".join(visible) if visible else "nobody") + ".")
        mail = self.direct.get(i, []) + self.broadcast
        if mail:
            lines.append("Messages for you:")
            for msg in mail[: cfg.inbox_size]:
                to = " (to everyone)" if msg.recipient == EVERYONE else ""
                lines.append(f'- from resident_{msg.sender}{to}: "{msg.text}"')
        return fold_text("\n".join(lines), cfg.max_text_chars)


SHOWN_SALT = 0x62726566  # keeps the listing order's stream apart from any other use of a seed


class ShownOrder:
    """The seeded order in which each resident is shown, on one day, the residents it sees
    (a permutation of its occupied view slots, taken in slot order) and its known factories
    (taken in index order). Briefing v2 lists them so, and so do the LLM prompts: one order
    per resident and day, from a generator seeded by (world seed, days completed), never
    from the world's streams. One uniform key per (resident, slot or factory), drawn once a
    day on first use; a resident's order sorts its keys."""

    __slots__ = ("_keys", "day", "n_factories", "n_pool", "seed", "view_size")

    def __init__(self, seed: int, day: int, n_pool: int, view_size: int,
                 n_factories: int) -> None:
        self.seed, self.day, self.n_pool = seed, day, n_pool
        self.view_size, self.n_factories = view_size, n_factories
        self._keys: np.ndarray | None = None

    def __call__(self, i: int, n_targets: int, n_factories: int) -> tuple[list[int], list[int]]:
        """(order of the ``n_targets`` residents, order of the ``n_factories`` factories)
        resident ``i`` is shown."""
        if self._keys is None:
            rng = np.random.default_rng([self.seed, self.day, SHOWN_SALT])
            self._keys = rng.random((self.n_pool, self.view_size + self.n_factories))
        row = self._keys[i]
        v = self.view_size
        return (np.argsort(row[:n_targets], kind="stable").tolist(),
                np.argsort(row[v:v + n_factories], kind="stable").tolist())


def more_known(state: WorldState, i: int, listed: int) -> str:
    """The note ``"the 8 largest of the 14 you know"`` when resident ``i`` knows more
    factories than its ``listed`` slots show, else ``""``."""
    n_known = int(np.count_nonzero(state.known[i]))
    return f"the {listed} largest of the {n_known} you know" if n_known > listed else ""


def legal(state: WorldState, view: np.ndarray, cfg: Config, i: int,
          seed: int | None = None, shown: ShownOrder | None = None) -> dict[str, Any]:
    """What resident ``i`` may do now, for policies that build structured actions: known
    factories (``factories``: those in its factory slots, ``slots.listed``; and
    ``factory_slots``: the factory in each slot, -1 empty), the residents in its view
    slots (by name, in slot order), its allies, its wealth, whether it can pay an upgrade,
    the message limits and its value condition (an LLM policy's persona: briefing v2
    carries no value prompt).

    Given the world's ``seed``, also ``shown_targets`` and ``shown_factories``: the same
    lists in the order briefing v2 shows them (``ShownOrder``; ``shown``: the day's, to
    reuse).
    """
    seen = view[i]
    pairs = state.allies
    allies = np.concatenate([pairs[pairs[:, 0] == i, 1], pairs[pairs[:, 1] == i, 0]])
    out = {
        "factories": slots.listed(state, i),
        "factory_slots": state.factory_slots[i].tolist(),
        "targets": [agent_name(j) for j in seen[seen >= 0].tolist()],
        "allies": [agent_name(j) for j in sorted(allies.tolist())],
        "wealth": float(state.wealth[i]),
        "can_upgrade": bool(state.wealth[i] >= cfg.upgrade_cost),
        "max_messages": cfg.max_messages,
        "max_message_chars": cfg.max_message_chars,
        "condition": str(ValueCondition.from_code(state.condition[i])),
    }
    if seed is not None:
        if shown is None:
            shown = ShownOrder(seed, state.day, state.n_pool, cfg.view_size,
                               cfg.factory_slot_count)
        by_t, by_f = shown(i, len(out["targets"]), len(out["factories"]))
        out["shown_targets"] = [out["targets"][k] for k in by_t]
        out["shown_factories"] = [out["factories"][k] for k in by_f]
    return out


class LegalFacts(Mapping):
    """``legal(state, view, cfg, i)`` as a mapping computed on first access.

    Observations carry one per resident in every observation mode; most policies never
    read it, so building it eagerly would cost every step.
    """

    __slots__ = ("_book", "_i", "_facts")

    def __init__(self, book: LegalBook, i: int) -> None:
        self._book, self._i = book, i
        self._facts: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._facts is None:
            b = self._book
            self._facts = legal(b.state, b.view, b.cfg, self._i, b.seed, b.shown)
        return self._facts

    def __getitem__(self, key: str) -> Any:
        if key == "factory_slots" and self._facts is None:  # (cheap: no other fact built)
            return self._book.state.factory_slots[self._i].tolist()
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return f"LegalFacts({self._get()!r})"


class LegalBook(Sequence):
    """The legal facts of residents ``rows`` on one day, as a sequence of ``LegalFacts``
    made on access (so a batch of K residents costs nothing until a policy reads one)."""

    __slots__ = ("cfg", "rows", "seed", "shown", "state", "view")

    def __init__(self, state: WorldState, view: np.ndarray, cfg: Config,
                 rows: np.ndarray, seed: int | None = None) -> None:
        self.state, self.view, self.cfg, self.seed = state, view, cfg, seed
        self.rows = np.asarray(rows, np.int64)  # (K,)
        # The day's listing order, shared by its facts (drawn on first use).
        self.shown = (ShownOrder(seed, state.day, state.n_pool, cfg.view_size,
                                 cfg.factory_slot_count) if seed is not None else None)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, r: int) -> LegalFacts:  # type: ignore[override]
        return LegalFacts(self, int(self.rows[r]))

    def take(self, sel: np.ndarray | Sequence[int]) -> LegalBook:
        """The book of rows ``sel`` of this one."""
        return LegalBook(self.state, self.view, self.cfg, self.rows[np.asarray(sel, np.int64)],
                         self.seed)

    def all(self) -> list[LegalFacts]:
        """One ``LegalFacts`` per row (cheap: each computes on first access)."""
        return [LegalFacts(self, i) for i in self.rows.tolist()]
