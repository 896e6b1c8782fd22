"""Value-driven scripted residents: a plain survival strategy bent by the value condition.

Each resident reads its own value condition from its feature vector and looks up a row of
**tendencies** (``scripted_table``): how often it explores, invests, rests, gives (and to whom),
attacks (and whom), seeks alliances, talks, and whether it prepares an attack with a
friendly message. The tendencies are the *inputs* of the experiment; what the community
becomes (survival, fairness, trust) comes from the simulation only.

Baseline residents follow a plain survival strategy: work at the known factory with the best
expected share (yesterday's workers and the production curve), explore when they know no
factory or none pays, invest when comfortable, return some gifts, rarely help the destitute
around them, and attack only when about to starve or to answer an attack.

The tendencies (their meanings, the baseline row and each condition's changes) live in
``civa_env.policies.scripted_table``; ``docs/scripted.md`` shows them as tables.

A day's decision runs in steps: read the features (``_Facts``), look up the tendencies,
choose a factory, then the primary action, weigh the residents in view as targets
(``_Targets``), choose the secondary action by seven rules in priority order (the first rule
that fires for a resident wins: answer an attack, carry out yesterday's plan, rob when about
to starve, attack opportunistically or prepare a deceptive attack, return a gift, help the
destitute, seek an alliance), write messages, and pack the actions.

A deceptive attack takes two days: on day t the resident sends its chosen victim a friendly,
peaceful message ("I trust you and will not attack you"); on day t+1 it attacks that victim
if still in view (found by name through ``batch.legal(r)["targets"]``). A batch without legal
facts (built by hand from features only) gets a broadcast peaceful message on day t and an
attack on the best victim on day t+1 instead.

The policy is vectorised over the batch: it reads the features by channel name and the
action masks, and returns a flat action id, or a structured dict when it gives (explicit
amounts) or sends messages (targets as view slots). What it reads is the same in every
observation mode, so a run is identical with text on or off. Seeded and deterministic: the
same seed, batch and key order give the same actions.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from civa_env.policies.base import Policy, register_policy
from civa_env.policies.batch import Batch
from civa_env.policies.scripted_table import FIELDS, TABLE_VERSION, tendency_table
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.features import FeatureLayout
from civa_env.world.kinds import Primary, Secondary
from civa_env.world.rules import production
from civa_env.world.values import code_of

NEED_LINE = 3.0  # estimated wealth below which a resident counts as destitute (tier edge)
STARVING = 2.0  # own wealth below which a resident is about to starve
SOFTMAX_TEMPERATURE = 0.3  # factory choice: lower = more greedy


_FRIENDLY_MASK = ("Hello friend. I trust you and will not attack you; "
                  "let us work together in peace.")
_FRIENDLY_BROADCAST = "Friends, let us keep the peace and work together."
_ALLIANCE = "Shall we form an alliance? Together we are safer."
_GIFT_NOTE = "A gift for you. Take care."

_Tendencies = dict[str, np.ndarray]  # field of scripted_table -> (K,) value per resident


@dataclass
class _Facts:
    """What one batch says about its K residents, read by feature name.

    Own facts are (K,), factory facts (K, M), slot facts (K, V) (flags as bool, the rest
    in world units); ``pmask`` (K, P) and ``smask`` (K, S) are the valid primaries and
    secondaries, each read with the other part at its always-valid choice.
    """

    wealth: np.ndarray
    skill: np.ndarray
    code: np.ndarray  # value condition code (row of the tendency table)
    known: np.ndarray  # factory slots
    factories: np.ndarray  # (K, M) the factory number in each factory slot, -1 empty
    capacity: np.ndarray
    workers: np.ndarray  # yesterday's workers
    present: np.ndarray  # slots
    their_wealth: np.ndarray
    ally: np.ndarray
    gave_me: np.ndarray
    i_gave: np.ndarray
    attacked_me: np.ndarray
    wrote_me: np.ndarray
    pmask: np.ndarray
    smask: np.ndarray


@dataclass
class _Targets:
    """Which view slots each resident may act on, and what attacking each would gain."""

    attack_ok: np.ndarray  # (K, V) bool
    gift_ok: np.ndarray
    merge_ok: np.ndarray
    gain: np.ndarray  # (K, V) expected gain of attacking the slot
    best_victim: np.ndarray  # (K,) slot with the best gain among fair victims
    best_gain: np.ndarray  # (K,) that gain, -inf when no fair victim


@dataclass
class _Choice:
    """The secondary actions chosen so far: a rule only fills rows still at NONE."""

    secondary: np.ndarray  # (K,) Secondary
    slot: np.ndarray  # (K,) target view slot, -1 for none
    amount: np.ndarray  # (K,) gift amount
    deceive: np.ndarray  # (K,) bool: preparing tomorrow's attack with a friendly message
    messages: list[list[dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def empty(cls, k: int) -> _Choice:
        return cls(secondary=np.zeros(k, np.int64), slot=np.full(k, -1, np.int64),
                   amount=np.zeros(k), deceive=np.zeros(k, bool),
                   messages=[[] for _ in range(k)])

    def free(self) -> np.ndarray:
        """Rows with no secondary action yet."""
        return self.secondary == Secondary.NONE

    def choose(self, sel: np.ndarray, kind: Secondary, target: np.ndarray) -> None:
        """Give ``kind`` at ``target`` (K,) to the rows of ``sel`` that are still free."""
        sel = sel & self.free()
        self.secondary[sel] = kind
        self.slot[sel] = target[sel]


def _slot_names(batch: Batch, r: int) -> list[str] | None:
    """Names of the residents in row r's view slots (None without legal facts)."""
    facts = batch.legal(r) if batch.legal_facts is not None else None
    return list(facts["targets"]) if facts is not None else None


class ScriptedPolicy(Policy):
    """Value-driven scripted residents (see the module docstring).

    Memory (the factory a resident worked at yesterday, a planned attack) is kept per key and
    only for the keys of the latest ``act`` call: call ``act`` once a day with every resident
    the policy controls, as the runner and ``CivaVecEnv`` do; a key missing from a call (a
    resident who died) is forgotten.
    """

    name = "scripted"

    def __init__(self, argument: str | None = None, *, seed: int | None = None) -> None:
        if argument:
            raise ValueError(f"policy 'scripted' takes no argument, got 'scripted:{argument}'")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.table = tendency_table()
        self.cfg: Config | None = None
        self._last_factory: dict[Hashable, int] = {}
        self._plan: dict[Hashable, str] = {}  # key -> victim name, or "" (any victim)

    def reset(self, cfg: Config, seed: int | None = None) -> None:
        """New episode: read the layout from ``cfg``, reseed, forget memories."""
        self.cfg = cfg
        self.catalogue = Catalogue(cfg)
        self.rng = np.random.default_rng(self.seed if seed is None else seed)
        self._last_factory.clear()
        self._plan.clear()

    def describe(self) -> dict[str, Any]:
        """Name and table version (for config.json)."""
        return {"name": self.name, "table_version": TABLE_VERSION}

    def act(self, batch: Batch) -> dict[Hashable, Any]:
        """One action per key, vectorised over the batch."""
        keys = batch.keys
        if not self._begin(keys):
            return {}
        # Fifteen independent uniform draws per resident, one column per decision: 0 factory
        # pick, 1 loyalty, 2-3 explore, 4-5 upgrades, 6 rest, 7 retaliate, 8 desperate,
        # 9 attack, 10 deceive, 11 reciprocity, 12 gift, 13-14 alliance.
        u = self.rng.random((len(keys), 15))
        facts = self._read(batch)
        t = self._tendencies(facts.code)
        share, factory = self._choose_factory(keys, facts, t, u)
        primary = self._choose_primary(facts, t, u, share.max(1), factory)
        p_index = self._primary_index(facts, primary, factory)
        targets = self._targets(facts, t)
        choice = self._choose_secondary(batch, facts, t, u, targets)
        self._write_messages(choice, facts, t, share)
        return self._pack(keys, facts, p_index, choice)

    # ---- reading ---------------------------------------------------------------------------

    def _begin(self, keys: list[Hashable]) -> bool:
        """Start a day's ``act``: False for an empty batch; a RuntimeError before ``reset``;
        else forget the residents not in the batch."""
        if not keys:
            return False
        if self.cfg is None:
            raise RuntimeError("call reset(cfg, seed) before act()")
        self._forget_absent(keys)
        return True

    def _forget_absent(self, keys: list[Hashable]) -> None:
        """Forget residents who are not in this batch (the dead), so memory stays bounded."""
        seen = set(keys)
        self._last_factory = {key: f for key, f in self._last_factory.items() if key in seen}
        self._plan = {key: victim for key, victim in self._plan.items() if key in seen}

    def _read(self, batch: Batch) -> _Facts:
        """The features and masks the policy uses, by name (see ``_Facts``)."""
        cat = self.catalogue
        feats = batch.features.astype(np.float64)
        layout = FeatureLayout.of(self.cfg)
        mask = batch.masks.reshape(len(batch.keys), cat.n_primary, cat.n_secondary)
        # The condition's one-hots: the direction (baseline, with, without), then the value
        # (none set for baseline: argmax 0, which code_of ignores).
        direction = layout.block(feats, "condition.direction").argmax(1)
        value = layout.block(feats, "condition.value").argmax(1)
        return _Facts(
            wealth=layout.read(feats, "wealth"), skill=layout.read(feats, "skill"),
            code=code_of(direction, value),
            known=layout.read(feats, "factory.known"),
            factories=self._slot_factories(batch),
            capacity=layout.read(feats, "factory.capacity"),
            workers=layout.read(feats, "factory.workers"),
            present=layout.read(feats, "slot.present"),
            their_wealth=layout.read(feats, "slot.wealth"),
            ally=layout.read(feats, "slot.ally"), gave_me=layout.read(feats, "slot.gave_me"),
            i_gave=layout.read(feats, "slot.i_gave"),
            attacked_me=layout.read(feats, "slot.attacked_me"),
            wrote_me=layout.read(feats, "slot.messaged_me"),
            pmask=mask[:, :, 0],  # secondary "none" is always valid
            smask=mask[:, cat.n_primary - 1, :],  # idle is always valid
        )

    def _slot_factories(self, batch: Batch) -> np.ndarray:
        """(K, M) the factory in each factory slot: slot m is factory m unless the world
        has more factories than slots (``civa_env.world.slots``), where the batch says."""
        k, m = len(batch.keys), self.catalogue.factory_slots
        if not self.cfg.ranks_factories:
            return np.broadcast_to(np.arange(m), (k, m))
        table = batch.slot_factories()
        if table is None:
            raise ValueError(
                f"the world has more factories ({self.cfg.n_factories}) than factory slots "
                f"({self.cfg.factory_slots}): the scripted policy needs each resident's "
                "factory slots (Batch.factory_slots, or the legal facts in the infos)")
        return table

    def _tendencies(self, code: np.ndarray) -> _Tendencies:
        """Each resident's row of the tendency table, by field name."""
        return {f: self.table[code, n] for n, f in enumerate(FIELDS)}

    # ---- primary action --------------------------------------------------------------------

    def _choose_factory(self, keys: list[Hashable], f: _Facts, t: _Tendencies,
                        u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Expected share of each known factory slot (K, M), -inf where unknown, and the
        slot each resident would work at (K,): a softmax pick over the shares, the busiest
        for crowd followers, or yesterday's factory for the loyal (while in a slot)."""
        cfg, m, k = self.cfg, self.catalogue.factory_slots, len(keys)
        last_factory = np.array([self._last_factory.get(key, -1) for key in keys])
        # Yesterday's factory's slot today (-1: none, or no longer in a slot).
        in_slot = (f.factories == last_factory[:, None]) & (last_factory[:, None] >= 0)
        last = np.where(in_slot.any(1), in_slot.argmax(1), -1)
        # Workers there tomorrow if this resident joins (it already counts where it was).
        was_there = np.arange(m)[None, :] == last[:, None]
        n_after = np.where(was_there, np.maximum(f.workers, 1), f.workers + 1)
        share = production(f.capacity, n_after, cfg) / n_after * f.skill[:, None]
        share = np.where(f.known, share, -np.inf)
        top = np.where(f.known.any(1), share.max(1), 0.0)[:, None]
        prob = np.where(f.known,
                        np.exp((np.where(f.known, share, 0.0) - top) / SOFTMAX_TEMPERATURE), 0.0)
        prob /= np.maximum(prob.sum(1, keepdims=True), 1e-12)
        pick = (np.cumsum(prob, 1) < u[:, [0]]).sum(1).clip(max=m - 1)
        busiest = np.where(f.known, f.workers, -1).argmax(1)
        pick = np.where(t["crowd"] > 0.5, busiest, pick)
        stay = ((last >= 0) & f.known[np.arange(k), np.maximum(last, 0)]
                & (u[:, 1] < t["loyalty"]))
        return share, np.where(stay, last, pick)

    def _choose_primary(self, f: _Facts, t: _Tendencies, u: np.ndarray,
                        best_share: np.ndarray, factory: np.ndarray) -> np.ndarray:
        """The primary kind each resident wants (K,); later lines override earlier ones."""
        cfg, m = self.cfg, self.catalogue.factory_slots
        primary = np.full(len(factory), Primary.WORK, np.int64)
        n_known = f.known.sum(1)
        can_invest = f.wealth >= t["comfort"] + cfg.upgrade_cost
        poor_pay = best_share < 0.6 * cfg.upkeep
        explore = (n_known < m) & ((u[:, 2] < t["explore"]) | (poor_pay & (u[:, 3] < 0.5)))
        primary[explore] = Primary.EXPLORE
        primary[can_invest & (u[:, 4] < t["upgrade_factory"])] = Primary.UPGRADE_FACTORY
        primary[can_invest & (u[:, 5] < t["upgrade_self"])] = Primary.UPGRADE_SELF
        primary[(f.wealth >= t["comfort"]) & (u[:, 6] < t["rest"])] = Primary.IDLE
        primary[(f.wealth < STARVING) & (n_known > 0)] = Primary.WORK
        primary[n_known == 0] = Primary.EXPLORE
        return primary

    def _primary_index(self, f: _Facts, primary: np.ndarray, factory: np.ndarray) -> np.ndarray:
        """The catalogue's primary index (K,) for each kind and factory; an invalid one falls
        back to working at the chosen factory, else idling (always valid)."""
        m, rows = self.catalogue.factory_slots, np.arange(len(primary))
        idle = 2 * m + 2
        p_index = np.select(
            [primary == Primary.WORK, primary == Primary.EXPLORE,
             primary == Primary.UPGRADE_SELF, primary == Primary.UPGRADE_FACTORY],
            [factory, m, m + 1, m + 2 + factory], idle)
        fallback = np.where(f.known[rows, factory] & f.pmask[rows, factory], factory, idle)
        return np.where(f.pmask[rows, p_index], p_index, fallback)

    # ---- secondary action ------------------------------------------------------------------

    def _targets(self, f: _Facts, t: _Tendencies) -> _Targets:
        """Valid slots for each secondary kind, and the expected gain of attacking each slot
        (their skill unknown: taken as 1). Fair victims are neither allies nor givers, unless
        the resident betrays."""
        cfg, v, n_levels = self.cfg, self.cfg.view_size, self.catalogue.n_levels
        attack_at = 1 + v * n_levels  # secondary index of attacking slot 0
        attack_ok = f.smask[:, attack_at: attack_at + v] & f.present
        cap_w = cfg.attack_wealth_cap
        s_me = f.skill + cfg.attack_wealth_weight * np.clip(f.wealth, 0, cap_w)
        s_them = 1.0 + cfg.attack_wealth_weight * np.clip(f.their_wealth, 0, cap_w)
        p_win = s_me[:, None] / (s_me[:, None] + s_them)
        gain = (p_win * cfg.loot_fraction * np.maximum(f.their_wealth, 0) - cfg.fight_cost
                - (1 - p_win) * cfg.failed_attack_cost)
        fair = attack_ok & ((t["betray"][:, None] > 0.5) | (~f.ally & ~f.gave_me))
        gain_fair = np.where(fair, gain, -np.inf)
        return _Targets(attack_ok=attack_ok,
                        gift_ok=f.smask[:, 1: attack_at: n_levels] & f.present,
                        merge_ok=f.smask[:, attack_at + v:] & f.present,
                        gain=gain, best_victim=gain_fair.argmax(1), best_gain=gain_fair.max(1))

    def _choose_secondary(self, batch: Batch, f: _Facts, t: _Tendencies, u: np.ndarray,
                          tg: _Targets) -> _Choice:
        """Rules 1-7 in priority order; a rule only fills residents still without one."""
        c = _Choice.empty(len(batch.keys))
        # 1. answer an attack
        back = np.where(f.attacked_me & tg.attack_ok, tg.gain, -np.inf)
        c.choose(np.isfinite(back.max(1)) & (u[:, 7] < t["retaliate"]), Secondary.ATTACK,
                 back.argmax(1))
        # 2. carry out yesterday's plan (a friendly message was sent to prepare it)
        self._carry_out_plans(c, batch, tg)
        # 3. about to starve: rob the best victim
        c.choose((f.wealth < STARVING) & (tg.best_gain > 0) & (u[:, 8] < t["desperate"]),
                 Secondary.ATTACK, tg.best_victim)
        # 4. opportunistic attack, possibly prepared by a friendly message today
        self._attack_or_deceive(c, batch, t, u, tg)
        # 5. return a gift
        self._return_gift(c, f, t, u, tg)
        # 6. help the destitute (close ones, or anyone for gift_scope 1)
        self._help_destitute(c, f, t, u, tg)
        # 7. alliances: answer whoever wrote to me, else ask a giver, else anyone
        self._seek_alliance(c, f, t, u, tg)
        return c

    def _carry_out_plans(self, c: _Choice, batch: Batch, tg: _Targets) -> None:
        """Rule 2: attack the victim planned yesterday if still in view (by name), or the best
        victim for a plan without a name; every plan is used up."""
        planned = np.zeros(len(batch.keys), bool)
        plan_slot = tg.best_victim.copy()
        for r, key in enumerate(batch.keys):
            victim = self._plan.pop(key, None)
            if victim is None:
                continue
            if not victim:
                planned[r] = np.isfinite(tg.best_gain[r])
                continue
            seen = _slot_names(batch, r)
            if seen and victim in seen:
                plan_slot[r] = seen.index(victim)
                planned[r] = tg.attack_ok[r, plan_slot[r]]
        c.choose(planned, Secondary.ATTACK, plan_slot)

    def _attack_or_deceive(self, c: _Choice, batch: Batch, t: _Tendencies, u: np.ndarray,
                           tg: _Targets) -> None:
        """Rule 4: attack the best victim when the gain is worth it; a deceiver instead sends
        it a friendly message today and plans the attack for tomorrow (by name, or any victim
        with a broadcast when the batch has no legal facts)."""
        opportunist = c.free() & (tg.best_gain > 1.0) & (u[:, 9] < t["attack"])
        c.deceive = opportunist & (u[:, 10] < t["deceive"])
        for r in np.flatnonzero(c.deceive).tolist():
            victim_slot = int(tg.best_victim[r])
            seen = _slot_names(batch, r)
            if seen:
                self._plan[batch.keys[r]] = seen[victim_slot]
                c.messages[r].append({"to": victim_slot, "text": _FRIENDLY_MASK})
            else:
                self._plan[batch.keys[r]] = ""
                c.messages[r].append({"to": "everyone", "text": _FRIENDLY_BROADCAST})
        c.choose(opportunist & ~c.deceive, Secondary.ATTACK, tg.best_victim)

    @staticmethod
    def _return_gift(c: _Choice, f: _Facts, t: _Tendencies, u: np.ndarray,
                     tg: _Targets) -> None:
        """Rule 5: give back to the poorest giver in view, from wealth above 3/4 of comfort."""
        wealth_above = np.maximum(f.wealth - 0.75 * t["comfort"], 0)
        giver = np.where(f.gave_me & tg.gift_ok, f.their_wealth, np.inf)
        returning = (np.isfinite(giver.min(1)) & (wealth_above > 0.5)
                     & (u[:, 11] < t["reciprocity"]))
        c.choose(returning & ~c.deceive, Secondary.GIFT, giver.argmin(1))
        c.amount = np.where(returning & (c.secondary == Secondary.GIFT),
                            np.minimum(np.maximum(1.0, 0.25 * wealth_above), wealth_above),
                            c.amount)

    @staticmethod
    def _help_destitute(c: _Choice, f: _Facts, t: _Tendencies, u: np.ndarray,
                        tg: _Targets) -> None:
        """Rule 6: a comfortable resident gives a share of its surplus (at least 1) to the
        poorest destitute resident in its gift scope."""
        close = f.ally | f.gave_me | f.i_gave | f.wrote_me | f.attacked_me
        scope = close | (t["gift_scope"][:, None] > 0.5)
        needy = np.where(tg.gift_ok & scope & (f.their_wealth < NEED_LINE), f.their_wealth,
                         np.inf)
        helping = (np.isfinite(needy.min(1)) & (f.wealth >= t["comfort"]) & ~c.deceive
                   & c.free() & (u[:, 12] < t["gift"]))
        c.choose(helping, Secondary.GIFT, needy.argmin(1))
        c.amount = np.where(helping, np.maximum(t["gift_share"] * (f.wealth - t["comfort"]), 1.0),
                            c.amount)

    def _seek_alliance(self, c: _Choice, f: _Facts, t: _Tendencies, u: np.ndarray,
                       tg: _Targets) -> None:
        """Rule 7: propose merging with the best-scored non-ally in view (wrote to me 4, gave
        to me 2, plus a uniform draw to break ties); answering a writer is likelier."""
        k, v = len(c.secondary), self.cfg.view_size
        partner_score = (np.where(f.wrote_me, 4.0, 0) + np.where(f.gave_me, 2.0, 0)
                         + self.rng.random((k, v)))
        partner_score = np.where(tg.merge_ok & ~f.ally, partner_score, -np.inf)
        answering = (partner_score.max(1) >= 4.0) & (u[:, 13] < np.minimum(1.0, 4 * t["ally"]))
        asking = u[:, 14] < t["ally"]
        merging = (answering | asking) & np.isfinite(partner_score.max(1))
        c.choose(merging & ~c.deceive, Secondary.MERGE, partner_score.argmax(1))

    # ---- messages and packing --------------------------------------------------------------

    def _write_messages(self, c: _Choice, f: _Facts, t: _Tendencies, share: np.ndarray) -> None:
        """Add a note to an alliance proposal (always) or a gift (talkers), and a talker's tip
        about its best factory; at most ``max_messages`` each."""
        max_messages = self.cfg.max_messages
        talk = self.rng.random(len(c.secondary)) < t["talk"]
        n_known = f.known.sum(1)
        for r in np.flatnonzero((c.secondary == Secondary.MERGE)
                                | (c.secondary == Secondary.GIFT) | talk).tolist():
            msgs = c.messages[r]
            if c.secondary[r] == Secondary.MERGE and len(msgs) < max_messages:
                msgs.append({"to": int(c.slot[r]), "text": _ALLIANCE})
            elif c.secondary[r] == Secondary.GIFT and talk[r] and len(msgs) < max_messages:
                msgs.append({"to": int(c.slot[r]), "text": _GIFT_NOTE})
            if talk[r] and n_known[r] and len(msgs) < max_messages:
                best = int(share[r].argmax())
                msgs.append({"to": "everyone", "text":
                             f"Factory {int(f.factories[r, best])} looks worth about "
                             f"{share[r, best]:.1f} a worker today."})
        c.messages = [msgs[:max_messages] for msgs in c.messages]

    def _pack(self, keys: list[Hashable], f: _Facts, p_index: np.ndarray,
              c: _Choice) -> dict[Hashable, Any]:
        """One action per key: a structured dict when it gives or sends messages, else the
        flat id. Remembers the factory of each worker for tomorrow."""
        cat, v = self.catalogue, self.cfg.view_size
        attack_at = 1 + v * cat.n_levels  # secondary index of attacking slot 0
        s_index = np.select(
            [c.secondary == Secondary.ATTACK, c.secondary == Secondary.MERGE],
            [attack_at + c.slot, attack_at + v + c.slot], 0)
        flat = p_index * cat.n_secondary + s_index
        primary = cat.p_kind[p_index].astype(np.int64)
        slot = cat.p_factory[p_index]  # -1 for a primary without a factory
        factory = np.where(slot >= 0, f.factories[np.arange(len(slot)), np.maximum(slot, 0)],
                           -1)
        out: dict[Hashable, Any] = {}
        # Plain Python values for the loop (an enum member per row is slow at 10,000 rows).
        work, gift, none = int(Primary.WORK), int(Secondary.GIFT), int(Secondary.NONE)
        primary_l, factory_l, flat_l = primary.tolist(), factory.tolist(), flat.tolist()
        secondary_l, slot_l = c.secondary.tolist(), c.slot.tolist()
        for r, key in enumerate(keys):
            if primary_l[r] == work:
                self._last_factory[key] = factory_l[r]
            if secondary_l[r] != gift and not c.messages[r]:
                out[key] = flat_l[r]
                continue
            action: dict[str, Any] = {"primary": primary_l[r], "secondary": secondary_l[r]}
            if factory_l[r] >= 0:
                action["factory"] = factory_l[r]
            if secondary_l[r] != none:
                action["target"] = slot_l[r]
            if secondary_l[r] == gift:
                action["amount"] = float(min(c.amount[r], 0.999 * max(f.wealth[r], 0.0)))
            if c.messages[r]:
                action["messages"] = c.messages[r]
            out[key] = action
        return out


def make_scripted(argument: str | None = None, *, seed: int | None = None) -> Policy:
    """``scripted`` or ``scripted:v1`` (table ``scripted-v1``, the default), ``scripted:v2``
    (residents with social memory, ``civa_env.policies.scripted_memory``)."""
    if not argument or argument in ("v1", "scripted-v1"):
        return ScriptedPolicy(None, seed=seed)
    if argument in ("v2", "scripted-v2"):
        from civa_env.policies.scripted_memory import MemoryScriptedPolicy

        return MemoryScriptedPolicy(seed=seed)
    raise ValueError(f"policy 'scripted' takes no argument or a table version (v1, v2), "
                     f"got 'scripted:{argument}'")


register_policy("scripted", make_scripted)
