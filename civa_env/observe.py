"""What residents perceive: the bounded view, the feature vector and the text briefing.

``compute_view`` and ``features`` are vectorised over residents; ``briefing`` is the only
per-resident loop and is skipped in numeric mode.
"""

from __future__ import annotations

import re
import string

import numpy as np
from gymnasium import spaces

from civa_env.actions import EVERYONE, Catalogue
from civa_env.config import Config
from civa_env.state import Deal, Message, WorldState
from civa_env.values import N_CONDITION_CODES, Direction, Value, prompt_for

FEATURE_CLIP = 10.0
OWN_FEATURES = 13
CONDITION_FEATURES = len(Direction) + len(Value)
FACTORY_FEATURES = 5  # known, capacity, workers, output, outage (yesterday)
SLOT_FEATURES = 8  # present, relative wealth, ally, gave me, I gave, attacked me, I attacked, messaged me
TIERS = ("destitute", "poor", "middling", "rich", "very rich")
TIER_EDGES = np.array([3.0, 8.0, 15.0, 30.0])
_NOT_PRINTABLE = re.compile(f"[^{re.escape(string.printable)}]")


def feature_size(cfg: Config) -> int:
    """Length F of the feature vector (fixed by the config's shape fields)."""
    return (OWN_FEATURES + CONDITION_FEATURES + FACTORY_FEATURES * cfg.n_factories
            + SLOT_FEATURES * cfg.view_size)


def fold_text(text: str, max_chars: int | None = None) -> str:
    """Printable ASCII only (anything else becomes '?'), cut to ``max_chars``."""
    if not (text.isascii() and text.isprintable()):
        text = _NOT_PRINTABLE.sub("?", text)
    return text if max_chars is None else text[:max_chars]


def observation_space(cfg: Config, catalogue: Catalogue) -> spaces.Dict:
    """The per-resident observation space."""
    return spaces.Dict({
        "text": spaces.Text(max_length=cfg.max_text_chars, min_length=0, charset=string.printable),
        "features": spaces.Box(-FEATURE_CLIP, FEATURE_CLIP, shape=(feature_size(cfg),),
                               dtype=np.float32),
        "action_mask": spaces.Box(0, 1, shape=(catalogue.size,), dtype=np.int8),
    })


def compute_view(state: WorldState, cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """Who each living resident sees: (N, V) int32 resident indices, -1 for empty slots.

    Allies first, then residents who dealt with it in the last ``recent_days`` days, then a
    seeded random sample of the rest (a window of a random permutation, so the work is
    O(N V), not O(N^2)). Within a priority, slots are in name order.
    """
    n, v = state.n_pool, cfg.view_size
    view = np.full((n, v), -1, np.int32)
    living = np.flatnonzero(state.alive)
    n_alive = len(living)
    if n_alive <= 1:
        return view
    # Candidate pairs (i, j) with a priority: 2 ally, 1 recent dealing, 0 random.
    parts_i, parts_j, parts_p = [], [], []
    a = state.allies
    if len(a):
        parts_i += [a[:, 0], a[:, 1]]
        parts_j += [a[:, 1], a[:, 0]]
        parts_p += [np.full(2 * len(a), 2, np.int64)]
    direct = state.recent_dst >= 0
    if direct.any():
        src, dst = state.recent_src[direct], state.recent_dst[direct]
        parts_i += [src, dst]
        parts_j += [dst, src]
        parts_p += [np.ones(2 * len(src), np.int64)]
    width = min(v, n_alive - 1)
    perm = living[rng.permutation(n_alive)]
    offsets = (np.arange(n_alive)[:, None] + np.arange(1, width + 1)[None, :]) % n_alive
    parts_i.append(np.repeat(perm, width))
    parts_j.append(perm[offsets].ravel())
    parts_p.append(np.zeros(n_alive * width, np.int64))
    ii = np.concatenate(parts_i).astype(np.int64)
    jj = np.concatenate(parts_j).astype(np.int64)
    pp = np.concatenate(parts_p)
    ok = state.alive[ii] & state.alive[jj] & (ii != jj)
    ii, jj, pp = ii[ok], jj[ok], pp[ok]
    # Keep each pair once, at its highest priority.
    order = np.argsort((ii * n + jj) * 4 + (3 - pp), kind="stable")
    ii, jj, pp = ii[order], jj[order], pp[order]
    first = np.ones(len(ii), bool)
    first[1:] = (ii[1:] != ii[:-1]) | (jj[1:] != jj[:-1])
    ii, jj, pp = ii[first], jj[first], pp[first]
    # Rank within each resident by priority, then name.
    order = np.argsort((ii * 4 + (3 - pp)) * n + jj, kind="stable")
    ii, jj = ii[order], jj[order]
    start = np.searchsorted(ii, ii, side="left")
    rank = np.arange(len(ii)) - start
    keep = rank < v
    view[ii[keep], rank[keep]] = jj[keep]
    return view


def _slot_flags(view: np.ndarray, row_of: np.ndarray, k: int, src: np.ndarray,
                dst: np.ndarray) -> np.ndarray:
    """(K, V) bool: for each pair src -> dst where src is an observed row and dst sits in
    its view, mark that slot. Work is O(pairs x V), independent of N^2."""
    out = np.zeros((k, view.shape[1]), bool)
    if len(src) == 0:
        return out
    row = row_of[src]
    ok = row >= 0
    src, dst, row = src[ok], dst[ok], row[ok]
    pair, slot = np.nonzero(view[src] == dst[:, None])
    out[row[pair], slot] = True
    return out


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def features(state: WorldState, view: np.ndarray, rows: np.ndarray, inbox_count: np.ndarray,
             cfg: Config) -> np.ndarray:
    """Feature vectors of residents ``rows``: (K, F) float32 in [-10, 10].

    Layout: 13 own facts (wealth, skill, day, population, allies, yesterday's income,
    received, given, looted, lost, attacks received, inbox size, mean wealth), the value
    condition one-hot (direction 3, value 10), 5 per factory (known, capacity, workers,
    output, outage; yesterday), then 8 per view slot (present, relative wealth, ally,
    gave me, I gave, attacked me, I attacked, messaged me; the last ``recent_days`` days).
    """
    k, m, v = len(rows), cfg.n_factories, cfg.view_size
    alive = state.alive
    n_alive = max(int(alive.sum()), 1)
    wealth = state.wealth
    n_allies = np.bincount(state.allies.ravel(), minlength=state.n_pool)[rows]
    own = np.stack([
        _signed_log(wealth[rows]), state.skill[rows], np.full(k, state.day / cfg.max_days),
        np.full(k, n_alive / cfg.n_agents), n_allies / v, _signed_log(state.income[rows]),
        _signed_log(state.received[rows]), _signed_log(state.given[rows]),
        _signed_log(state.looted[rows]), _signed_log(state.lost[rows]),
        state.attacked_by[rows].astype(np.float64), inbox_count[rows] / 10.0,
        np.full(k, _signed_log(np.array(wealth[alive].sum() / n_alive))),
    ], axis=1)
    code = state.condition[rows].astype(np.int64)
    cond = np.zeros((k, CONDITION_FEATURES))
    direction = np.where(code == 0, 0, np.where(code <= 10, 1, 2))
    cond[np.arange(k), direction] = 1.0
    has_value = code > 0
    cond[np.flatnonzero(has_value), len(Direction) + (code[has_value] - 1) % 10] = 1.0
    known = state.known[rows]
    fac = np.stack([np.ones(m), state.capacity / 10.0, state.workers / 10.0,
                    state.output / 10.0, state.outage.astype(np.float64)], axis=1)  # (M, 5)
    fac_feats = (known[:, :, None] * fac[None, :, :])
    fac_feats[:, :, 0] = known
    vw = view[rows]  # (K, V)
    present = vw >= 0
    j = np.where(present, vw, 0)
    rel = _signed_log(wealth[j]) - _signed_log(wealth[rows])[:, None]
    row_of = np.full(state.n_pool, -1, np.int64)
    row_of[rows] = np.arange(k)
    recent = (state.recent_day >= state.day - cfg.recent_days + 1) & (state.recent_dst >= 0)
    kinds, src, dst = state.recent_kind[recent], state.recent_src[recent], state.recent_dst[recent]
    gift, attack, message = kinds == Deal.GIFT, kinds == Deal.ATTACK, kinds == Deal.MESSAGE
    a, b = state.allies[:, 0], state.allies[:, 1]
    slot = np.stack([
        present, rel,
        _slot_flags(view, row_of, k, np.concatenate([a, b]), np.concatenate([b, a])),
        _slot_flags(view, row_of, k, dst[gift], src[gift]),  # j gave me
        _slot_flags(view, row_of, k, src[gift], dst[gift]),  # I gave j
        _slot_flags(view, row_of, k, dst[attack], src[attack]),  # j attacked me
        _slot_flags(view, row_of, k, src[attack], dst[attack]),  # I attacked j
        _slot_flags(view, row_of, k, dst[message], src[message]),  # j messaged me
    ], axis=2) * present[:, :, None]
    out = np.concatenate([own, cond, fac_feats.reshape(k, -1), slot.reshape(k, -1)], axis=1)
    return np.clip(out, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)


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
    return np.bincount(direct, minlength=n) + int((recipients < 0).sum())


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
                       for j in np.flatnonzero(s.alive)}
        self.allies_of: dict[int, list[int]] = {}
        for a, b in s.allies.tolist():
            self.allies_of.setdefault(a, []).append(b)
            self.allies_of.setdefault(b, []).append(a)
        self.n_alive = int(s.alive.sum())
        self.header = (f"Day {s.day + 1} of {cfg.max_days}. {self.n_alive} residents are alive. "
                       f"Upkeep is about {cfg.upkeep:g} a day ({cfg.idle_upkeep_factor:g} of it "
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
        known = np.flatnonzero(s.known[i])
        if len(known):
            lines.append("Factories you know:")
            lines += [self.factory_lines[m] for m in known.tolist()]
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
        lines.append("Residents you see: "
                     + ", ".join([labels[j] for j in seen[seen >= 0].tolist()]) + ".")
        mail = self.direct.get(i, []) + self.broadcast
        if mail:
            lines.append("Messages for you:")
            for msg in mail[: cfg.inbox_size]:
                to = " (to everyone)" if msg.recipient == EVERYONE else ""
                lines.append(f'- from resident_{msg.sender}{to}: "{msg.text}"')
        return fold_text("\n".join(lines), cfg.max_text_chars)
