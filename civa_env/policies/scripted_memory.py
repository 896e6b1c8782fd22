"""Scripted residents with social memory (``--policy scripted:v2``, table ``scripted-v2``).

The v1 residents (``civa_env.policies.scripted``) see only the observation's window of the
last ``recent_days`` dealings. A v2 resident keeps, per other resident (by the name its
observation gives for each view slot, ``batch.legal(r)["targets"]``), a small memory built
only from what its observation tells it each day:

- **attacks** on it, **gifts** to it, **its own gifts**, **alliances** formed with it: recent
  (an exponentially decayed count, half-life ``MEMORY_HALF_LIFE`` days) and total;
- the day of the last attack and of the last **betrayal**: an attack by an ally (allied at the
  previous observation), by one who wrote to it or to whom it gave within the window;
- the **climate**: decayed counts (half-life ``CLIMATE_HALF_LIFE``) of the hostile deeds it saw
  (attacks on it) and the friendly ones (gifts to it, alliances formed with it).

Deeds are inferred from the observation's slot flags (``slot.attacked_me``, ``slot.gave_me``,
``slot.i_gave``, ``slot.messaged_me``, ``slot.ally``, which cover the last ``recent_days``
days) and yesterday's own counts (``attacks``, ``received``, ``given``): a flag that is on today
but was off (or its resident out of view) at yesterday's observation is a new deed of
yesterday; a flag that stays on is a new deed only when yesterday's own count says that more
deeds of its kind came than the rising flags explain (then each such resident is credited
one). The memory is the same in every observation mode (features and legal facts only), is
kept per key and only for the keys of the latest ``act`` call, and is cleared by ``reset``.
A batch without legal facts (no names) gets no memory: its residents act on the table with
empty memories.

The tendencies (``scripted_table.BASELINE_V2``, ``CHANGES_V2``; ``docs/scripted.md``) use the
memory in these rules, in priority order (the first that fires for a resident wins):

1. **retaliate**: attack the resident in view with the most remembered attacks (a decayed
   count >= ``RETALIATE_MIN``: one attack is answered for ``MEMORY_HALF_LIFE`` days) when
   ``p_win >= retaliate_odds``, with probability ``retaliate``;
2. carry out yesterday's planned (deceptive) attack; 3. a desperate attack (v1 rules);
4. an opportunistic or deceptive attack (v1; not while guarding);
5. **exploit the weak**: attack the fair victim in view with the best odds when
   ``p_win >= WEAK_ODDS`` and the gain is > 0 (``exploit_weak``; not while guarding);
6. **seek an alliance when attacked** (attacked in the window): propose to the trusted
   non-ally in view with the best record (``ally_when_attacked``; also while guarding);
7. **reciprocity**: give back to the trusted resident in view whose remembered (decayed)
   gifts to me most exceed mine to it (``reciprocity``, from wealth above 3/4 of comfort);
8. help the destitute among the trusted in scope (``gift``; close residents include those
   with a good record; the poorest first, less ``record_weight`` x record);
9. propose or answer an alliance (v1's scores plus ``record_weight`` x record; trusted only).

**Trust**: a resident who attacked me is distrusted (no gifts, no alliance proposals to it)
for ``forgive_days`` days after its last attack, a betrayer for ``BETRAYAL_FACTOR`` x
``forgive_days`` days after its last betrayal; then it is forgiven. **Climate**: with at
least ``GUARD_MIN_DEEDS`` decayed deeds seen, a resident whose hostile share reaches
``guard_at`` **guards**: it works or idles (no exploring, no factory upgrades), gives nothing,
starts no attacks (retaliation and desperate attacks stay), and proposes alliances only for
protection. ``conform`` 1 scales gift, reciprocity and alliance probabilities by twice the
friendly share (at most 1): it does what most around it do.

Seeded and deterministic like v1; a run is identical with text on or off.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from civa_env.policies.batch import Batch
from civa_env.policies.scripted import (
    STARVING,
    ScriptedPolicy,
    _Choice,
    _Facts,
    _Targets,
    _Tendencies,
)
from civa_env.policies.scripted_table import FIELDS_V2, TABLE_VERSION_V2, tendency_table
from civa_env.world.config import Config
from civa_env.world.events import agent_index
from civa_env.world.features import FeatureLayout
from civa_env.world.kinds import Primary, Secondary
from civa_env.world.perception import LegalBook

MEMORY_HALF_LIFE = 5.0  # days for a remembered deed's recent count to halve
CLIMATE_HALF_LIFE = 3.0  # days for the climate's counts to halve
BETRAYAL_FACTOR = 2.0  # a betrayer stays distrusted this many times forgive_days
RETALIATE_MIN = 0.5  # decayed attack count from which an attacker is answered
OWED_MIN = 0.5  # decayed gift balance from which a gift is returned
GUARD_MIN_DEEDS = 1.0  # decayed deeds seen before the climate counts
WEAK_ODDS = 0.7  # p_win at which a victim counts as weak
NEVER = -1e9  # "no such day"

# Per-pair memory fields (rows: the policy's residents, columns: names they saw).
_PAIR_FIELDS = ("att_rec", "att_tot", "gift_rec", "gift_tot", "gave_rec", "ally_tot",
                "bet_tot", "last_att", "last_bet", "seen_day", "prev_att", "prev_gift",
                "prev_igave", "prev_msg", "prev_ally")
_NEVER_FIELDS = ("last_att", "last_bet", "seen_day")


class _Memory:
    """Dense per-pair memory: one row per remembered key, one column per name seen."""

    def __init__(self) -> None:
        self.rows: dict[Hashable, int] = {}
        self.free: list[int] = []
        self.pair: dict[str, np.ndarray] = {}
        self.last_day = np.zeros(0)
        self.hostile = np.zeros(0)
        self.friendly = np.zeros(0)
        self._shape = (0, 0)
        self._grow(8, 8)

    def _grow(self, n_rows: int, n_cols: int) -> None:
        r0, c0 = self._shape
        r1, c1 = max(n_rows, r0), max(n_cols, c0)
        if (r1, c1) == (r0, c0):
            return
        for f in _PAIR_FIELDS:
            new = np.full((r1, c1), NEVER if f in _NEVER_FIELDS else 0.0)
            if f in self.pair:
                new[:r0, :c0] = self.pair[f]
            self.pair[f] = new
        for name in ("last_day", "hostile", "friendly"):
            new = np.zeros(r1)
            new[:r0] = getattr(self, name)
            setattr(self, name, new)
        self._shape = (r1, c1)

    def row(self, key: Hashable, day: int) -> int:
        """The row of ``key`` (a new, empty one on first sight)."""
        r = self.rows.get(key)
        if r is None:
            if self.free:
                r = self.free.pop()
            else:
                r = len(self.rows)
                if r >= self._shape[0]:
                    self._grow(2 * self._shape[0], self._shape[1])
            self.rows[key] = r
            self._clear(r, day)
        return r

    def fit_cols(self, n: int) -> None:
        """Room for columns 0..n-1 (a column is a resident's index in the name pool)."""
        if n > self._shape[1]:
            self._grow(self._shape[0], max(n, 2 * self._shape[1]))

    def _clear(self, r: int, day: int) -> None:
        for f in _PAIR_FIELDS:
            self.pair[f][r] = NEVER if f in _NEVER_FIELDS else 0.0
        self.last_day[r] = day
        self.hostile[r] = self.friendly[r] = 0.0

    def keep_only(self, keys: set[Hashable]) -> None:
        """Forget the keys not in ``keys`` (their rows are reused)."""
        for key in [k for k in self.rows if k not in keys]:
            self.free.append(self.rows.pop(key))


def _slot_columns(batch: Batch, v: int) -> np.ndarray:
    """The name-pool index of the resident in each view slot (K, V), -1 for an empty slot or
    a row without legal facts: the names of ``batch.legal(r)["targets"]`` (``resident_i`` is
    index i), read straight from the day's view when the facts are one ``LegalBook`` (the
    same names, without building each resident's facts)."""
    k = len(batch.keys)
    cols = np.full((k, v), -1, np.int64)
    legal = batch.legal_facts
    if legal is None:
        return cols
    if isinstance(legal, LegalBook):
        return np.asarray(legal.view, np.int64)[legal.rows][:, :v].copy()
    for r in range(k):
        facts = legal[r]
        if facts is None:
            continue
        for s, name in enumerate(list(facts["targets"])[:v]):
            cols[r, s] = agent_index(name)
    return cols


class MemoryScriptedPolicy(ScriptedPolicy):
    """Scripted residents with social memory (see the module docstring)."""

    name = "scripted"
    table_version = TABLE_VERSION_V2

    def __init__(self, *, seed: int | None = None) -> None:
        super().__init__(None, seed=seed)
        self.table = tendency_table(TABLE_VERSION_V2)
        self.memory = _Memory()

    def reset(self, cfg: Config, seed: int | None = None) -> None:
        """New episode: as v1, and forget every memory of others."""
        super().reset(cfg, seed)
        self.memory = _Memory()

    def describe(self) -> dict[str, Any]:
        """Name and table version (for config.json)."""
        return {"name": self.name, "table_version": TABLE_VERSION_V2}

    def _tendencies(self, code: np.ndarray) -> _Tendencies:
        """Each resident's row of the v2 table, by field name."""
        return {f: self.table[code, n] for n, f in enumerate(FIELDS_V2)}

    def act(self, batch: Batch) -> dict[Hashable, Any]:
        """One action per key: read the observation into memory, then decide."""
        keys = batch.keys
        if not self._begin(keys):
            return {}
        self.memory.keep_only(set(keys))
        # Eighteen uniform draws per resident: v1's fifteen (see ScriptedPolicy.act), then
        # 15 exploit the weak, 16 alliance when attacked, 17 spare.
        u = self.rng.random((len(keys), 18))
        facts = self._read(batch)
        t = self._tendencies(facts.code)
        view = self._remember(batch, facts)
        guard = self._climate(view, t)
        share, factory = self._choose_factory(keys, facts, t, u)
        primary = self._choose_primary(facts, t, u, share.max(1), factory)
        # Guarding: work (or idle), no exploring or factory upgrades while a factory is known.
        known = facts.known.any(1)
        primary = np.where(guard & known & ((primary == Primary.EXPLORE)
                                            | (primary == Primary.UPGRADE_FACTORY)),
                           Primary.WORK, primary)
        p_index = self._primary_index(facts, primary, factory)
        targets = self._targets(facts, t)
        choice = self._choose_secondary_v2(batch, facts, t, u, targets, view, guard)
        self._write_messages(choice, facts, t, share)
        return self._pack(keys, facts, p_index, choice)

    # ---- memory ----------------------------------------------------------------------------

    def _remember(self, batch: Batch, f: _Facts) -> dict[str, np.ndarray]:
        """Update each resident's memory from today's observation; return what it remembers
        about the resident in each view slot, (K, V) arrays (zeros for empty slots)."""
        mem, k, v = self.memory, len(batch.keys), self.cfg.view_size
        layout = FeatureLayout.of(self.cfg)
        feats = batch.features.astype(np.float64)
        n_att = layout.read(feats, "attacks")  # attacks received yesterday
        got = layout.read(feats, "received") > 1e-9  # gifts received yesterday
        gave = layout.read(feats, "given") > 1e-9  # gifts given yesterday
        msg = f.wrote_me
        days = batch.day.astype(np.float64)
        rows = np.array([mem.row(key, int(d)) for key, d in zip(batch.keys, days, strict=True)],
                        np.int64)
        cols = _slot_columns(batch, v)
        mem.fit_cols(int(cols.max(initial=-1)) + 1)
        slot = (cols >= 0) & f.present
        # Decay the recent counts to today.
        dt = np.maximum(days - mem.last_day[rows], 0.0)
        pd, cd = 0.5 ** (dt / MEMORY_HALF_LIFE), 0.5 ** (dt / CLIMATE_HALF_LIFE)
        for name in ("att_rec", "gift_rec", "gave_rec"):
            mem.pair[name][rows] *= pd[:, None]
        mem.hostile[rows] *= cd
        mem.friendly[rows] *= cd
        mem.last_day[rows] = days
        rr = np.broadcast_to(rows[:, None], (k, v))
        cc = np.where(slot, cols, 0)

        def old(name: str) -> np.ndarray:
            return np.where(slot, mem.pair[name][rr, cc], 0.0)

        yesterday = old("seen_day") == (days[:, None] - 1)

        def new_deeds(flag: np.ndarray, prev: str, today: np.ndarray) -> np.ndarray:
            flag = flag & slot
            kept = yesterday & (old(prev) > 0.5)
            rising = flag & ~kept
            persist = flag & kept
            more = today > rising.sum(1)
            return rising | (persist & more[:, None])

        att = new_deeds(f.attacked_me, "prev_att", n_att)
        gift = new_deeds(f.gave_me, "prev_gift", got.astype(np.int64))
        igave = new_deeds(f.i_gave, "prev_igave", gave.astype(np.int64))
        ally = f.ally & slot
        new_ally = ally & ~(old("prev_ally") > 0.5)
        trusted_before = (old("prev_ally") > 0.5) | (old("prev_msg") > 0.5) | msg \
            | (old("prev_igave") > 0.5) | f.i_gave
        betrayal = att & trusted_before
        # Write back (each slot's name once per row: a view holds distinct residents).
        sel = slot.nonzero()
        r_, c_ = rows[sel[0]], cols[sel]
        yday = days[sel[0]] - 1
        p = mem.pair
        p["att_rec"][r_, c_] += att[sel]
        p["att_tot"][r_, c_] += att[sel]
        p["gift_rec"][r_, c_] += gift[sel]
        p["gift_tot"][r_, c_] += gift[sel]
        p["gave_rec"][r_, c_] += igave[sel]
        p["ally_tot"][r_, c_] += new_ally[sel]
        p["bet_tot"][r_, c_] += betrayal[sel]
        p["last_att"][r_, c_] = np.where(att[sel], yday, p["last_att"][r_, c_])
        p["last_bet"][r_, c_] = np.where(betrayal[sel], yday, p["last_bet"][r_, c_])
        p["seen_day"][r_, c_] = days[sel[0]]
        p["prev_att"][r_, c_] = f.attacked_me[sel]
        p["prev_gift"][r_, c_] = f.gave_me[sel]
        p["prev_igave"][r_, c_] = f.i_gave[sel]
        p["prev_msg"][r_, c_] = msg[sel]
        p["prev_ally"][r_, c_] = ally[sel]
        mem.hostile[rows] += att.sum(1)
        mem.friendly[rows] += gift.sum(1) + new_ally.sum(1)
        return {name: old(name) for name in ("att_rec", "att_tot", "gift_rec", "gift_tot",
                                               "gave_rec", "ally_tot", "bet_tot")} | {
            "last_att": np.where(slot, p["last_att"][rr, cc], NEVER),
            "last_bet": np.where(slot, p["last_bet"][rr, cc], NEVER),
            "day": np.broadcast_to(days[:, None], (k, v)),
            "hostile": mem.hostile[rows].copy(), "friendly": mem.friendly[rows].copy(),
            "attacked": f.attacked_me.any(1) | (n_att > 0),
            "slot": slot}

    def _climate(self, view: dict[str, np.ndarray], t: _Tendencies) -> np.ndarray:
        """Who guards today (K,); scales the cooperative tendencies of conformers (in t)."""
        seen = view["hostile"] + view["friendly"]
        counts = seen >= GUARD_MIN_DEEDS
        hostile_share = np.where(counts, view["hostile"] / np.maximum(seen, 1e-12), 0.0)
        view["hostile_share"] = hostile_share
        follow = np.where(counts & (t["conform"] > 0.5),
                          np.minimum(1.0, 2.0 * (1.0 - hostile_share)), 1.0)
        for name in ("gift", "reciprocity", "ally"):
            t[name] = t[name] * follow
        return counts & (hostile_share >= t["guard_at"])

    @staticmethod
    def _record(view: dict[str, np.ndarray]) -> np.ndarray:
        """A partner's record (K, V): remembered gifts and alliances, less attacks."""
        return view["gift_tot"] + 2.0 * view["ally_tot"] - 2.0 * view["att_tot"] \
            - 3.0 * view["bet_tot"]

    @staticmethod
    def _distrusted(view: dict[str, np.ndarray], t: _Tendencies) -> np.ndarray:
        """Slots holding a resident still distrusted today (K, V)."""
        forgive = t["forgive_days"][:, None]
        day = view["day"]
        return (((day - view["last_att"]) <= forgive)
                | ((day - view["last_bet"]) <= BETRAYAL_FACTOR * forgive))

    def _p_win(self, f: _Facts) -> np.ndarray:
        """Estimated chance of winning an attack on each slot (K, V); their skill taken as 1."""
        cfg = self.cfg
        cap_w = cfg.attack_wealth_cap
        s_me = f.skill + cfg.attack_wealth_weight * np.clip(f.wealth, 0, cap_w)
        s_them = 1.0 + cfg.attack_wealth_weight * np.clip(f.their_wealth, 0, cap_w)
        return s_me[:, None] / (s_me[:, None] + s_them)

    # ---- secondary action ------------------------------------------------------------------

    def _choose_secondary_v2(self, batch: Batch, f: _Facts, t: _Tendencies, u: np.ndarray,
                             tg: _Targets, view: dict[str, np.ndarray],
                             guard: np.ndarray) -> _Choice:
        """Rules 1-9 of the module docstring, in priority order."""
        c = _Choice.empty(len(batch.keys))
        p_win = self._p_win(f)
        distrusted = self._distrusted(view, t)
        record = self._record(view)
        # 1. retaliate against the one who attacked me most (memory), when the odds allow
        back = np.where(tg.attack_ok & (view["att_rec"] >= RETALIATE_MIN)
                        & (p_win >= t["retaliate_odds"][:, None]),
                        view["att_rec"] + 0.01 * p_win, -np.inf)
        c.choose(np.isfinite(back.max(1)) & (u[:, 7] < t["retaliate"]), Secondary.ATTACK,
                 back.argmax(1))
        # 2. yesterday's plan; 3. about to starve (v1)
        self._carry_out_plans(c, batch, tg)
        c.choose((f.wealth < STARVING) & (tg.best_gain > 0) & (u[:, 8] < t["desperate"]),
                 Secondary.ATTACK, tg.best_victim)
        # 4. opportunistic / deceptive attack (v1), not while guarding
        t_att = dict(t)
        t_att["attack"] = np.where(guard, 0.0, t["attack"])
        self._attack_or_deceive(c, batch, t_att, u, tg)
        # 5. exploit the weak
        fair = np.isfinite(np.where(tg.attack_ok, tg.gain, -np.inf)) & (
            (t["betray"][:, None] > 0.5) | (~f.ally & ~f.gave_me))
        weak = np.where(fair & (p_win >= WEAK_ODDS) & (tg.gain > 0), p_win, -np.inf)
        c.choose(np.isfinite(weak.max(1)) & ~guard & (u[:, 15] < t["exploit_weak"]),
                 Secondary.ATTACK, weak.argmax(1))
        # 6. an alliance for protection after an attack
        k, v = len(c.secondary), self.cfg.view_size
        partner_ok = tg.merge_ok & ~f.ally & ~distrusted & (view["att_rec"] < RETALIATE_MIN)
        protect = np.where(partner_ok, t["record_weight"][:, None] * record
                           + 0.001 * self.rng.random((k, v)), -np.inf)
        c.choose(view["attacked"] & np.isfinite(protect.max(1)) & ~c.deceive
                 & (u[:, 16] < t["ally_when_attacked"]), Secondary.MERGE, protect.argmax(1))
        # 7. reciprocity: give back to whom I owe most
        wealth_above = np.maximum(f.wealth - 0.75 * t["comfort"], 0)
        gift_ok = tg.gift_ok & ~distrusted
        owed = view["gift_rec"] - view["gave_rec"]
        owe = np.where(gift_ok & (view["gift_rec"] >= OWED_MIN) & (owed > 0), owed, -np.inf)
        returning = (np.isfinite(owe.max(1)) & (wealth_above > 0.5) & ~guard & ~c.deceive
                     & (u[:, 11] < t["reciprocity"]))
        c.choose(returning, Secondary.GIFT, owe.argmax(1))
        c.amount = np.where(returning & (c.secondary == Secondary.GIFT),
                            np.minimum(np.maximum(1.0, 0.25 * wealth_above), wealth_above),
                            c.amount)
        # 8. help the destitute: trusted, in scope, the poorest first (less the record)
        close = (f.ally | f.gave_me | f.i_gave | f.wrote_me | f.attacked_me
                 | (view["gift_tot"] > 0) | (view["ally_tot"] > 0))
        scope = close | (t["gift_scope"][:, None] > 0.5)
        needy = np.where(gift_ok & scope & (f.their_wealth < 3.0),
                         f.their_wealth - t["record_weight"][:, None] * np.clip(record, 0, 3),
                         np.inf)
        helping = (np.isfinite(needy.min(1)) & (f.wealth >= t["comfort"]) & ~guard
                   & ~c.deceive & c.free() & (u[:, 12] < t["gift"]))
        c.choose(helping, Secondary.GIFT, needy.argmin(1))
        c.amount = np.where(helping, np.maximum(t["gift_share"] * (f.wealth - t["comfort"]), 1.0),
                            c.amount)
        # 9. alliances (v1's scores plus the record), trusted only, not while guarding
        score = (np.where(f.wrote_me, 4.0, 0) + np.where(f.gave_me, 2.0, 0)
                 + t["record_weight"][:, None] * np.clip(record, -5, 5)
                 + self.rng.random((k, v)))
        score = np.where(tg.merge_ok & ~f.ally & ~distrusted, score, -np.inf)
        answering = (score.max(1) >= 4.0) & (u[:, 13] < np.minimum(1.0, 4 * t["ally"]))
        asking = (u[:, 14] < t["ally"]) & ~guard
        merging = (answering | asking) & np.isfinite(score.max(1)) & ~c.deceive
        c.choose(merging, Secondary.MERGE, score.argmax(1))
        return c


__all__ = ["MemoryScriptedPolicy"]
