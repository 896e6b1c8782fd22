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
        if not keys:
            return {}
        if self.cfg is None:
            raise RuntimeError("call reset(cfg, seed) before act()")
        # Forget residents who are not in this batch (the dead), so memory stays bounded.
        seen = set(keys)
        self._last_factory = {key: f for key, f in self._last_factory.items() if key in seen}
        self._plan = {key: victim for key, victim in self._plan.items() if key in seen}
        cfg, cat = self.cfg, self.catalogue
        m, v, n_levels = cfg.n_factories, cfg.view_size, cat.n_levels
        k = len(keys)
        feats = batch.features.astype(np.float64)
        layout = FeatureLayout.of(cfg)
        mask = batch.masks.reshape(k, cat.n_primary, cat.n_secondary)
        pmask = mask[:, :, 0]  # (K, P) secondary "none" is always valid
        smask = mask[:, cat.n_primary - 1, :]  # (K, S) idle is always valid
        u = self.rng.random((k, 15))  # independent draws per resident

        # ---- own facts and value condition -------------------------------------------------
        wealth, skill = layout.read(feats, "wealth"), layout.read(feats, "skill")
        # The condition's one-hots: the direction (baseline, with, without), then the value
        # (none set for baseline: argmax 0, which code_of ignores).
        direction = layout.block(feats, "condition.direction").argmax(1)
        value = layout.block(feats, "condition.value").argmax(1)
        code = code_of(direction, value)
        t = {f: self.table[code, n] for n, f in enumerate(FIELDS)}  # each (K,)

        # ---- factories: expected share of each known factory -------------------------------
        known = layout.read(feats, "factory.known")  # (K, M) each
        capacity = layout.read(feats, "factory.capacity")
        workers = layout.read(feats, "factory.workers")
        last = np.array([self._last_factory.get(key, -1) for key in keys])
        was_there = np.arange(m)[None, :] == last[:, None]
        n_after = np.where(was_there, np.maximum(workers, 1), workers + 1)
        share = production(capacity, n_after, cfg) / n_after * skill[:, None]
        share = np.where(known, share, -np.inf)
        best_share = share.max(1)
        top = np.where(known.any(1), best_share, 0.0)[:, None]
        prob = np.where(known, np.exp((np.where(known, share, 0.0) - top) / SOFTMAX_TEMPERATURE),
                        0.0)
        prob /= np.maximum(prob.sum(1, keepdims=True), 1e-12)
        pick = (np.cumsum(prob, 1) < u[:, [0]]).sum(1).clip(max=m - 1)
        busiest = np.where(known, workers, -1).argmax(1)
        pick = np.where(t["crowd"] > 0.5, busiest, pick)
        stay = (last >= 0) & known[np.arange(k), np.maximum(last, 0)] & (u[:, 1] < t["loyalty"])
        factory = np.where(stay, last, pick)

        # ---- primary ------------------------------------------------------------------------
        primary = np.full(k, Primary.WORK, np.int64)
        n_known = known.sum(1)
        unknown_left = n_known < m
        comfortable = wealth >= t["comfort"]
        can_invest = wealth >= t["comfort"] + cfg.upgrade_cost
        starving = wealth < STARVING
        poor_pay = best_share < 0.6 * cfg.upkeep
        explore = unknown_left & ((u[:, 2] < t["explore"]) | (poor_pay & (u[:, 3] < 0.5)))
        primary[explore] = Primary.EXPLORE
        up_factory = can_invest & (u[:, 4] < t["upgrade_factory"])
        primary[up_factory] = Primary.UPGRADE_FACTORY
        up_self = can_invest & (u[:, 5] < t["upgrade_self"])
        primary[up_self] = Primary.UPGRADE_SELF
        rest = comfortable & (u[:, 6] < t["rest"])
        primary[rest] = Primary.IDLE
        primary[starving & (n_known > 0)] = Primary.WORK
        primary[n_known == 0] = Primary.EXPLORE
        p_index = np.select(
            [primary == Primary.WORK, primary == Primary.EXPLORE,
             primary == Primary.UPGRADE_SELF, primary == Primary.UPGRADE_FACTORY],
            [factory, m, m + 1, m + 2 + factory], 2 * m + 2)
        rows = np.arange(k)
        bad = ~pmask[rows, p_index]
        # Fall back to working at the chosen factory, else idling (always valid).
        fallback = np.where(known[rows, factory] & pmask[rows, factory], factory, 2 * m + 2)
        p_index = np.where(bad, fallback, p_index)
        primary = cat.p_kind[p_index].astype(np.int64)

        # ---- who is around ------------------------------------------------------------------
        present = layout.read(feats, "slot.present")  # (K, V) each
        their_wealth = layout.read(feats, "slot.wealth")
        ally, gave_me = layout.read(feats, "slot.ally"), layout.read(feats, "slot.gave_me")
        i_gave = layout.read(feats, "slot.i_gave")
        attacked_me = layout.read(feats, "slot.attacked_me")
        wrote_me = layout.read(feats, "slot.messaged_me")
        attack_ok = smask[:, 1 + v * n_levels: 1 + v * n_levels + v] & present
        gift_ok = smask[:, 1: 1 + v * n_levels: n_levels] & present
        merge_ok = smask[:, 1 + v * n_levels + v:] & present
        # Expected gain of attacking each slot (their skill unknown: taken as 1).
        cap_w = cfg.attack_wealth_cap
        s_me = skill + cfg.attack_wealth_weight * np.clip(wealth, 0, cap_w)
        s_them = 1.0 + cfg.attack_wealth_weight * np.clip(their_wealth, 0, cap_w)
        p_win = s_me[:, None] / (s_me[:, None] + s_them)
        gain = (p_win * cfg.loot_fraction * np.maximum(their_wealth, 0) - cfg.fight_cost
                - (1 - p_win) * cfg.failed_attack_cost)
        fair = attack_ok & ((t["betray"][:, None] > 0.5) | (~ally & ~gave_me))
        gain_fair = np.where(fair, gain, -np.inf)
        best_victim = gain_fair.argmax(1)
        best_gain = gain_fair.max(1)

        secondary = np.zeros(k, np.int64)
        slot = np.full(k, -1, np.int64)
        amount = np.zeros(k)
        messages: list[list[dict[str, Any]]] = [[] for _ in range(k)]
        has_legal = batch.legal_facts is not None

        def names(r: int) -> list[str] | None:
            """Names of the residents in row r's view slots (None without legal facts)."""
            return list(batch.legal(r)["targets"]) if has_legal else None

        def choose(sel: np.ndarray, kind: Secondary, target: np.ndarray) -> None:
            sel = sel & (secondary == Secondary.NONE)
            secondary[sel] = kind
            slot[sel] = target[sel]

        # 1. answer an attack
        back = np.where(attacked_me & attack_ok, gain, -np.inf)
        choose(np.isfinite(back.max(1)) & (u[:, 7] < t["retaliate"]), Secondary.ATTACK,
               back.argmax(1))
        # 2. carry out yesterday's plan (a friendly message was sent to prepare it)
        planned = np.zeros(k, bool)
        plan_slot = best_victim.copy()
        for r, key in enumerate(keys):
            victim = self._plan.pop(key, None)
            if victim is None:
                continue
            seen = names(r) if victim else None
            if victim and seen and victim in seen:
                plan_slot[r] = seen.index(victim)
                planned[r] = attack_ok[r, plan_slot[r]]
            elif not victim:
                planned[r] = np.isfinite(best_gain[r])
        choose(planned, Secondary.ATTACK, plan_slot)
        # 3. about to starve: rob the best victim
        choose(starving & (best_gain > 0) & (u[:, 8] < t["desperate"]), Secondary.ATTACK,
               best_victim)
        # 4. opportunistic attack, possibly prepared by a friendly message today
        opportunist = (secondary == Secondary.NONE) & (best_gain > 1.0) & (u[:, 9] < t["attack"])
        deceive = opportunist & (u[:, 10] < t["deceive"])
        for r in np.flatnonzero(deceive).tolist():
            victim_slot = int(best_victim[r])
            seen = names(r)
            if seen:
                self._plan[keys[r]] = seen[victim_slot]
                messages[r].append({"to": victim_slot, "text": _FRIENDLY_MASK})
            else:
                self._plan[keys[r]] = ""
                messages[r].append({"to": "everyone", "text": _FRIENDLY_BROADCAST})
        choose(opportunist & ~deceive, Secondary.ATTACK, best_victim)
        # 5. return a gift
        wealth_above = np.maximum(wealth - 0.75 * t["comfort"], 0)
        giver = np.where(gave_me & gift_ok, their_wealth, np.inf)
        returning = np.isfinite(giver.min(1)) & (wealth_above > 0.5) & (u[:, 11] < t["reciprocity"])
        choose(returning & ~deceive, Secondary.GIFT, giver.argmin(1))
        amount = np.where(returning & (secondary == Secondary.GIFT),
                          np.minimum(np.maximum(1.0, 0.25 * wealth_above), wealth_above), amount)
        # 6. help the destitute (close ones, or anyone for gift_scope 1)
        close = ally | gave_me | i_gave | wrote_me | attacked_me
        scope = close | (t["gift_scope"][:, None] > 0.5)
        needy = np.where(gift_ok & scope & (their_wealth < NEED_LINE), their_wealth, np.inf)
        helping = (np.isfinite(needy.min(1)) & comfortable & ~deceive
                   & (secondary == Secondary.NONE) & (u[:, 12] < t["gift"]))
        choose(helping, Secondary.GIFT, needy.argmin(1))
        amount = np.where(helping, np.maximum(t["gift_share"] * (wealth - t["comfort"]), 1.0),
                          amount)
        # 7. alliances: answer whoever wrote to me, else ask a giver, else anyone
        partner_score = (np.where(wrote_me, 4.0, 0) + np.where(gave_me, 2.0, 0)
                         + self.rng.random((k, v)))
        partner_score = np.where(merge_ok & ~ally, partner_score, -np.inf)
        answering = (partner_score.max(1) >= 4.0) & (u[:, 13] < np.minimum(1.0, 4 * t["ally"]))
        asking = u[:, 14] < t["ally"]
        merging = (answering | asking) & np.isfinite(partner_score.max(1))
        choose(merging & ~deceive, Secondary.MERGE, partner_score.argmax(1))

        # ---- messages ------------------------------------------------------------------------
        talk = self.rng.random(k) < t["talk"]
        for r in np.flatnonzero((secondary == Secondary.MERGE) | (secondary == Secondary.GIFT)
                                | talk).tolist():
            if secondary[r] == Secondary.MERGE and len(messages[r]) < cfg.max_messages:
                messages[r].append({"to": int(slot[r]), "text": _ALLIANCE})
            elif secondary[r] == Secondary.GIFT and talk[r] and len(messages[r]) < cfg.max_messages:
                messages[r].append({"to": int(slot[r]), "text": _GIFT_NOTE})
            if talk[r] and n_known[r] and len(messages[r]) < cfg.max_messages:
                best = int(np.where(known[r], share[r], -np.inf).argmax())
                messages[r].append({"to": "everyone", "text":
                                    f"Factory {best} looks worth about {best_share[r]:.1f} "
                                    "a worker today."})
        messages = [msgs[: cfg.max_messages] for msgs in messages]

        # ---- pack ------------------------------------------------------------------------------
        out: dict[Hashable, Any] = {}
        s_index = np.select(
            [secondary == Secondary.ATTACK, secondary == Secondary.MERGE],
            [1 + v * n_levels + slot, 1 + v * n_levels + v + slot], 0)
        flat = p_index * cat.n_secondary + s_index
        for r, key in enumerate(keys):
            if primary[r] == Primary.WORK:
                self._last_factory[key] = int(cat.p_factory[p_index[r]])
            if secondary[r] == Secondary.NONE or secondary[r] == Secondary.GIFT or messages[r]:
                action: dict[str, Any] = {"primary": int(primary[r]),
                                          "secondary": int(secondary[r])}
                f = int(cat.p_factory[p_index[r]])
                if f >= 0:
                    action["factory"] = f
                if secondary[r] != Secondary.NONE:
                    action["target"] = int(slot[r])
                if secondary[r] == Secondary.GIFT:
                    action["amount"] = float(min(amount[r], 0.999 * max(wealth[r], 0.0)))
                if messages[r]:
                    action["messages"] = messages[r]
                if secondary[r] == Secondary.NONE and not messages[r]:
                    action = int(p_index[r] * cat.n_secondary)
                out[key] = action
            else:
                out[key] = int(flat[r])
        return out


register_policy("scripted", ScriptedPolicy)
