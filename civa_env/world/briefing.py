"""Briefing v2: the text an LLM resident reads before a day (``Config.briefing = "v2"``).

Sections, in this order (the rules card first: it is the same for every resident of a
community and, unless a stress or shock changes the day's numbers, every day, so prompts
share a prefix):

1. Rules with numbers, all from the config: the order of a day, work and today's outage
   probability, today's upkeep (``rules.upkeep_factor``, ``rules.outage_prob``: a note says
   since when a stress applies, or that a shock applies today only), exploring, upgrades,
   the attack formula with its costs and loot, alliances, gifts and births.
2. The resident: its name, the day ("Day 9"; "Day 9 of 30" with ``show_horizon``), how many
   are alive, its wealth, skill, strength and yesterday's income.
3. The factories it knows: capacity, yesterday's report, and today's total output for 1..6
   workers (``rules.production``), in a shuffled order per resident and day.
4. The residents it sees (its view slots) in one list, each with a wealth tier and "ally",
   in a shuffled order per resident and day.
5. The last ``recent_days`` days, newest first, as they concern the resident, every line
   naming the other party and the outcome: attacks on it and by it, the allies who helped
   defend it, gifts, alliance proposals, alliances formed and broken, births and deaths
   among those it knows (a death is named to the residents who dealt with the dead in the
   remembered days, or were allied with them; every death and birth is in the day's
   community totals).
6. Its messages (direct, then to everyone), at most ``inbox_size``, as in v1.

No value prompt: an LLM policy puts the value persona in its system prompt (the condition is
in the legal facts). Every list is capped and says how much it left out; a briefing longer
than ``max_text_chars`` loses its oldest days first, then messages, then ``fold_text`` cuts.

The account is read from the event log, the last ``recent_days`` day chunks. There is no
defence event: the allies who helped defend a resident are derived as the rule applies them
(``rules.attack``): the defender's allies after that day's merges, less those dissolved by an
earlier attack of the day and those attacking the defender themselves. The alliances after
each day's merges come from replaying the log's alliance events (formed, dissolved; deaths
from ``died_day``), a few array comparisons per recorded day.

The shuffled orders come from ``perception.ShownOrder``, a generator seeded by (world seed,
day), never from the world's streams, so rendering text cannot change the world;
the legal facts carry the same orders (``shown_targets``, ``shown_factories``), so the LLM
prompts list the options as the briefing shows them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from civa_env.world import slots as factory_slots
from civa_env.world.actions import EVERYONE
from civa_env.world.config import Config
from civa_env.world.events import EventLog
from civa_env.world.kinds import ATTACK_ON_ALLY, ATTACK_SUCCESS, K
from civa_env.world.perception import (
    TIERS,
    ShownOrder,
    fold_text,
    inboxes,
    more_known,
    wealth_tier,
)
from civa_env.world.rules import outage_prob, production, strength, upkeep_factor
from civa_env.world.state import WorldState

MAX_NAMES = 5  # parties named on one line of the account before "and k more"
MAX_LINES = 10  # lines of the account per day before "and k more"
MAX_SEEN = 40  # residents in the "Residents you see" list before "and k more"
WORKER_COUNTS = np.arange(1, 7)  # the production table's worker counts
# Mixed into the seed of the shuffle, so that its stream is apart from other seeds derived
# from (seed, k) (``day.derived_seed``).


def _num(x: float) -> str:
    return f"{x:g}"


def _cap(items: list[str], cap: int = MAX_NAMES) -> str:
    """``items`` joined by commas, the first ``cap`` of them, then "and k more"."""
    shown = ", ".join(items[:cap])
    return shown + (f" and {len(items) - cap} more" if len(items) > cap else "")


def _name(j: int) -> str:
    return f"resident_{j}"


def _allies(js: list[int]) -> str:
    """"Your ally resident_3" or "Your allies resident_3, resident_5"."""
    return ("Your ally " if len(js) == 1 else "Your allies ") + _cap([_name(j) for j in js])


def _stress_note(factor: float, cfg: Config, day: int) -> list[str]:
    """"raised x1.5 since day 31" while a stress ``factor`` other than 1 applies on ``day``."""
    if day < cfg.stress_day or factor == 1.0:
        return []
    return [f"{'raised' if factor > 1.0 else 'lowered'} x{_num(factor)} since day "
            f"{max(cfg.stress_day, 1)}"]


def _noted(notes: list[str]) -> str:
    return f" ({'; '.join(notes)})" if notes else ""


def rules_card(cfg: Config, day: int) -> list[str]:
    """The rules with their numbers on ``day`` (1-based, the day about to be played): the
    same for every resident, and for every day but where a stress begins or a shock comes."""
    mw = cfg.merge_window
    upkeep_notes = _stress_note(cfg.stress_upkeep, cfg, day)
    if day == cfg.shock_day and cfg.shock_upkeep != 1.0:
        upkeep_notes.append(f"x{_num(cfg.shock_upkeep)} today only: a one-day shock")
    outage_notes = _stress_note(cfg.stress_outage, cfg, day)
    return [
        "Rules:",
        "- A day: work, explore, upgrade or idle; then alliances, gifts, attacks (one by one, "
        "in random order); then upkeep, starvation, births. Messages arrive the next day.",
        f"- Work: a factory's output is shared by its workers' skill (lognormal noise, sigma "
        f"{_num(cfg.production_noise)}); a factory has an outage (no output) with p "
        f"{_num(outage_prob(cfg, day))} a day{_noted(outage_notes)}.",
        f"- Upkeep: about {_num(cfg.upkeep * upkeep_factor(cfg, day))} a day"
        f"{_noted(upkeep_notes)}, {_num(cfg.idle_upkeep_factor)} of it when idle; wealth "
        f"below 0 is starvation.",
        f"- Explore: p {_num(cfg.explore_reveal_prob)} to find a factory you do not know; "
        f"else p {_num(cfg.explore_find_prob)} to find 0 to {_num(cfg.explore_find_max)} "
        f"wealth (uniform).",
        f"- Upgrade: costs {_num(cfg.upgrade_cost)}; self: skill +{_num(cfg.skill_gain)}; "
        f"factory: capacity +{_num(cfg.capacity_gain)} (for all its workers).",
        f"- Attack: strength S = skill + {_num(cfg.attack_wealth_weight)} x min(wealth, "
        f"{_num(cfg.attack_wealth_cap)}); the attacker wins with p S_att / (S_att + S_def); "
        f"each ally of the defender not attacking it adds {_num(cfg.ally_defence)} x its S "
        f"to S_def. A win takes {_num(cfg.loot_fraction)} of the defender's wealth; both pay "
        f"{_num(cfg.fight_cost)}; a failed attacker pays {_num(cfg.failed_attack_cost)} more.",
        f"- Alliance: when two residents propose to each other within {mw} "
        f"day{'s' if mw != 1 else ''}; allies share known factories and help defend each "
        f"other; it ends when one attacks the other or dies.",
        "- Gift: moves wealth (at most what the giver holds).",
        f"- Birth: at wealth >= {_num(cfg.birth_threshold)}, p {_num(cfg.birth_prob)} a day "
        f"of a newcomer; the parent pays {_num(cfg.birth_cost)}; the newcomer starts with "
        f"{_num(cfg.newcomer_wealth)}, the parent's skill and factories.",
    ]


class DayAccounts:
    """The day accounts of one event log, built as days are recorded (each day once).

    ``after[k]``: the alliances standing after the merges of the log's k-th day (those
    formed that day included), before its attacks, as {(a, b), a < b}: a replay of the
    log's formed and dissolved events, one day at a time; an alliance also ends when one
    side dies (``died_day``), which needs no event. ``account(k)``: the k-th day's
    ``DayAccount``, made on first use.
    """

    def __init__(self) -> None:
        self.allied: set[tuple[int, int]] = set()
        self.after: list[set[tuple]] = []
        self.accounts: dict[int, DayAccount] = {}

    def update(self, chunks: list[tuple[int, dict[str, np.ndarray]]],
               died_day: np.ndarray) -> None:
        """Take in the days recorded since the last call. ``died_day``: the current
        state's (a death after a day cannot change that day's alliances)."""
        for day, cols in chunks[len(self.after):]:
            kind = cols["kind"]
            rows = np.flatnonzero((kind == K.ALLIANCE_FORMED) | (kind == K.ALLIANCE_DISSOLVED))
            events = list(zip(kind[rows].tolist(), cols["actor"][rows].tolist(),
                              cols["target"][rows].tolist(), strict=True))
            self.allied.update((a, b) for k, a, b in events if k == K.ALLIANCE_FORMED)
            self.allied = {(a, b) for a, b in self.allied
                           if (died_day[a] < 0 or died_day[a] >= day)
                           and (died_day[b] < 0 or died_day[b] >= day)}
            self.after.append(set(self.allied))
            self.allied.difference_update(
                (a, b) for k, a, b in events if k == K.ALLIANCE_DISSOLVED)

    def account(self, k: int, chunks: list[tuple[int, dict[str, np.ndarray]]]) -> DayAccount:
        if k not in self.accounts:
            day, cols = chunks[k]
            self.accounts[k] = account_day(day, cols, self.after[k])
        return self.accounts[k]


@dataclass
class _Attack:
    attacker: int
    target: int
    success: bool
    loot: float
    on_ally: bool
    defenders: list[int]  # allies of the target whose strength counted


@dataclass
class DayAccount:
    """One day's dealings, indexed by the residents they concern."""

    day: int
    attacks_on: dict[int, list[_Attack]] = field(default_factory=lambda: defaultdict(list))
    attack_by: dict[int, _Attack] = field(default_factory=dict)
    helped: dict[int, list[_Attack]] = field(default_factory=lambda: defaultdict(list))
    gifts_to: dict[int, list[tuple[int, float]]] = field(
        default_factory=lambda: defaultdict(list))
    gift_by: dict[int, tuple[int, float]] = field(default_factory=dict)
    proposals_to: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    proposal_by: dict[int, int] = field(default_factory=dict)
    formed: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    ally_died: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    births: list[tuple[int, int]] = field(default_factory=list)  # (parent, newcomer)
    deaths: list[int] = field(default_factory=list)

    @cached_property
    def involved(self) -> set[int]:
        """Every resident some dealing of the day concerns (births and deaths aside)."""
        out: set[int] = set()
        for table in (self.attacks_on, self.attack_by, self.helped, self.gifts_to,
                      self.gift_by, self.proposals_to, self.proposal_by, self.formed,
                      self.ally_died):
            out.update(table)
        return out


def account_day(day: int, cols: dict[str, np.ndarray], after_merges: set[tuple]) -> DayAccount:
    """Index the dealings of one day's events (``after_merges``: its alliances after the
    merges, ``DayAccounts.after``)."""
    out = DayAccount(day)
    kind = cols["kind"]
    rows = np.flatnonzero((kind == K.GIFT) | (kind == K.ATTACK) | (kind == K.MERGE_PROPOSAL)
                          | (kind == K.ALLIANCE_FORMED) | (kind == K.BIRTH)
                          | (kind == K.DEATH))
    kinds, actors = kind[rows].tolist(), cols["actor"][rows].tolist()
    targets, amounts = cols["target"][rows].tolist(), cols["amount"][rows].tolist()
    flags = cols["flag"][rows].tolist()
    allies_of: dict[int, set[int]] = defaultdict(set)
    for a, b in after_merges:
        allies_of[a].add(b)
        allies_of[b].add(a)
    attacking = {a: t for k, a, t in zip(kinds, actors, targets, strict=True) if k == K.ATTACK}
    for k, a, t, amount, flag in zip(kinds, actors, targets, amounts, flags, strict=True):
        if k == K.ATTACK:
            # As rules.attack: the target's allies at this moment, less its attackers.
            defenders = sorted(x for x in allies_of[t] if attacking.get(x) != t)
            hit = _Attack(a, t, bool(flag & ATTACK_SUCCESS), amount,
                          bool(flag & ATTACK_ON_ALLY), defenders)
            out.attacks_on[t].append(hit)
            out.attack_by[a] = hit
            for x in defenders:
                out.helped[x].append(hit)
            if hit.on_ally:
                allies_of[a].discard(t)
                allies_of[t].discard(a)
        elif k == K.GIFT:
            out.gifts_to[t].append((a, amount))
            out.gift_by[a] = (t, amount)
        elif k == K.MERGE_PROPOSAL:
            out.proposals_to[t].append(a)
            out.proposal_by[a] = t
        elif k == K.ALLIANCE_FORMED:
            out.formed[a].append(t)
            out.formed[t].append(a)
        elif k == K.BIRTH:
            out.births.append((a, t))
        else:  # K.DEATH: its alliances, as they stood at the end of the day, end
            out.deaths.append(a)
            for x in sorted(allies_of[a]):
                out.ally_died[x].append(a)
    return out


class BrieferV2:
    """Builds the v2 briefings of one day (shared pieces are made once per day)."""

    def __init__(self, state: WorldState, view: np.ndarray, cfg: Config, seed: int,
                 log: EventLog) -> None:
        self.state, self.view, self.cfg = state, view, cfg
        s = state
        self.direct, self.broadcast = inboxes(state)
        self.rules = "\n".join(rules_card(cfg, s.day + 1))
        self.header = (f"Day {s.day + 1}" + (f" of {cfg.max_days}" if cfg.show_horizon else "")
                       + f". {int(s.alive.sum())} residents are alive.")
        table = production(s.capacity[:, None], WORKER_COUNTS[None, :], cfg)  # (M, 6)
        self.factory_lines = [
            f"- factory {m}: capacity {s.capacity[m]:.1f}; yesterday "
            + ("an outage, nothing produced" if s.outage[m]
               else f"{s.workers[m]} worker{'' if s.workers[m] == 1 else 's'} shared "
                    f"{s.output[m]:.1f}")
            + "; output " + ", ".join(f"{y:.1f}" for y in table[m].tolist())
            for m in range(cfg.n_factories)]
        self.tiers = wealth_tier(s.wealth).tolist()
        self.labels = {j: f"resident_{j} ({TIERS[self.tiers[j]]}"
                       for j in np.flatnonzero(s.alive).tolist()}
        self.allies_of: dict[int, set[int]] = defaultdict(set)
        for a, b in s.allies.tolist():
            self.allies_of[a].add(b)
            self.allies_of[b].add(a)
        # The order of what each resident is shown (the legal facts use the same).
        self.shown = ShownOrder(seed, s.day, s.n_pool, cfg.view_size, cfg.factory_slot_count)
        # The account of the last recent_days days, newest first.
        chunks = log.day_columns()
        cache = log.derived.setdefault("briefing.accounts", DayAccounts())
        cache.update(chunks, s.died_day)
        first = max(len(chunks) - cfg.recent_days, 0) if s.day > 0 else len(chunks)
        self.days = [cache.account(k, chunks) for k in reversed(range(first, len(chunks)))]
        self.knew_dead = self._dealt_with_the_dead()

    def _dealt_with_the_dead(self) -> dict[int, set[int]]:
        """Who dealt (gift, attack, proposal, message) in the remembered days with someone
        who died in the window: {resident: {dead}}."""
        s = self.state
        dead = [x for d in self.days for x in d.deaths]
        out: dict[int, set[int]] = defaultdict(set)
        if not dead:
            return out
        is_dead = np.zeros(s.n_pool, bool)
        is_dead[dead] = True
        src, dst = s.recent_src, s.recent_dst
        sel = np.flatnonzero((dst >= 0) & (is_dead[src] | is_dead[np.maximum(dst, 0)]))
        for a, b in zip(src[sel].tolist(), dst[sel].tolist(), strict=True):
            if is_dead[a]:
                out[b].add(a)
            if is_dead[b]:
                out[a].add(b)
        return out

    def brief(self, i: int) -> str:
        """The v2 briefing of resident ``i``."""
        s, cfg = self.state, self.cfg
        allies = self.allies_of.get(i, set())
        head = [f"You are resident_{i}. " + self.header]
        own = (f"Your wealth: {s.wealth[i]:.1f} ({TIERS[self.tiers[i]]}). Your skill: "
               f"{s.skill[i]:.2f}. Your strength: {strength(s.skill[i], s.wealth[i], cfg):.2f}.")
        if s.day > 0:
            own += f" Yesterday's income: {s.income[i]:.1f}."
        head.append(own)
        known = factory_slots.listed(s, i)
        slots = [j for j in self.view[i].tolist() if j >= 0]
        by_t, by_f = self.shown(i, len(slots), len(known))
        if known:
            note = more_known(s, i, len(known))
            head.append("Factories you know (" + (f"{note}; " if note else "")
                        + "output: a day's total for 1, 2, 3, 4, 5, 6 "
                        "workers, shared by skill, before noise):")
            head += [self.factory_lines[known[k]] for k in by_f]
        else:
            head.append("You know no factory yet (exploring can reveal one).")
        seen = [slots[k] for k in by_t]
        head.append(self._seen(seen, allies))
        known_to_i = set(seen) | allies
        days = [self._day_lines(d, i, known_to_i) for d in self.days]
        mail = self.direct.get(i, []) + self.broadcast
        n_mail = min(len(mail), cfg.inbox_size)
        # Over the bound: the oldest days go first, then messages, then the rules card.
        rules, n_days = True, len(days)
        text = self._join(rules, head, days, n_days, mail, n_mail)
        while len(text) > cfg.max_text_chars and n_days > 1:
            n_days -= 1
            text = self._join(rules, head, days, n_days, mail, n_mail)
        while len(text) > cfg.max_text_chars and n_mail > 0:
            n_mail -= 1
            text = self._join(rules, head, days, n_days, mail, n_mail)
        if len(text) > cfg.max_text_chars:
            text = self._join(False, head, days, n_days, mail, n_mail)
        return fold_text(text, cfg.max_text_chars)

    def _seen(self, order: list[int], allies: set[int]) -> str:
        """The "Residents you see" line: ``order``, the view in its shuffled order."""
        if not order:
            line = "Residents you see: nobody."
        else:
            labels = self.labels
            items = [labels[j] + (", ally)" if j in allies else ")") for j in order]
            line = "Residents you see (in random order): " + _cap(items, MAX_SEEN) + "."
        if not allies:
            line += " You have no allies."
        else:
            hidden = len(allies - set(order))
            if hidden:
                line += f" Allies out of view: {hidden}."
        return line

    def _join(self, rules: bool, head: list[str], days: list[list[str]], n_days: int,
              mail: list, n_mail: int) -> str:
        """The briefing's text: the rules card (or a note that it was left out), ``head``,
        the newest ``n_days`` of ``days`` and the first ``n_mail`` messages of ``mail``."""
        lines = [self.rules, ""] if rules else ["(The rules card is left out for length.)"]
        lines += head
        if not self.days:
            lines.append("Nothing has happened yet: this is the first day.")
        else:
            lines.append("What happened to you lately (newest first):")
            for d in days[:n_days]:
                lines += d
            if n_days < len(days):
                lines.append("(earlier days left out for length)")
        if mail:
            lines.append("Messages for you:")
            for msg in mail[:n_mail]:
                to = " (to everyone)" if msg.recipient == EVERYONE else ""
                lines.append(f'- from resident_{msg.sender}{to}: "{msg.text}"')
            if len(mail) > n_mail:
                lines.append(f"- ... and {len(mail) - n_mail} more messages not shown")
        return "\n".join(lines)

    def _day_lines(self, d: DayAccount, i: int, seen: set[int]) -> list[str]:
        """The lines of day ``d`` that concern resident ``i`` (its label first); ``seen``:
        the residents it sees now and its allies."""
        cfg, today = self.cfg, self.state.day + 1
        label = f"Day {d.day}" + (" (yesterday)" if d.day == today - 1 else "")
        if not (d.births or d.deaths) and i not in d.involved:
            return [f"{label}: nothing that concerned you."]
        lines: list[str] = []
        hits = d.attacks_on.get(i, [])
        if hits:
            lines.append("Attacked you: " + _cap([
                _name(h.attacker) + (f" (won, took {h.loot:.1f})" if h.success
                                     else " (failed)") for h in hits])
                + f"; each fight cost you {_num(cfg.fight_cost)}.")
            helpers = sorted({x for h in hits for x in h.defenders})
            if helpers:
                lines.append(f"{_allies(helpers)} helped defend you.")
        mine = d.attack_by.get(i)
        if mine is not None:
            cost = cfg.fight_cost + (0.0 if mine.success else cfg.failed_attack_cost)
            line = (f"You attacked {_name(mine.target)}: "
                    + (f"you won and took {mine.loot:.1f}" if mine.success else "you failed")
                    + f", the fight cost you {_num(cost)}")
            if mine.defenders:
                line += f"; its allies {_cap([_name(x) for x in mine.defenders])} defended it"
            lines.append(line + ".")
        broken = ([f"{_name(h.attacker)} attacked you" for h in hits if h.on_ally]
                  + ([f"you attacked {_name(mine.target)}"]
                     if mine is not None and mine.on_ally else []))
        if broken:
            lines.append("Alliance broken: " + _cap(broken) + ".")
        if d.ally_died.get(i):
            lines.append(f"{_allies(d.ally_died[i])} starved; the alliance ended.")
        if d.gifts_to.get(i):
            lines.append("Gave to you: " + _cap([f"{_name(a)} ({x:.1f})"
                                                 for a, x in d.gifts_to[i]]) + ".")
        if i in d.gift_by:
            j, x = d.gift_by[i]
            lines.append(f"You gave {_name(j)} {x:.1f}.")
        if d.proposals_to.get(i):
            lines.append("Proposed an alliance to you: " + _cap([
                f"{_name(j)} ({self._offer(d, j, i, mine=False)})"
                for j in d.proposals_to[i]]) + ".")
        if i in d.proposal_by:
            j = d.proposal_by[i]
            lines.append(f"You proposed an alliance to {_name(j)}: "
                         f"{self._offer(d, i, j, mine=True)}.")
        if d.formed.get(i):
            lines.append("Alliance formed with: " + _cap([_name(j) for j in d.formed[i]])
                         + ".")
        if d.helped.get(i):
            lines.append("You helped defend: " + _cap([
                f"your ally {_name(h.target)} against {_name(h.attacker)} ("
                + ("it won" if h.success else "it failed") + ")" for h in d.helped[i]]) + ".")
        births = [(p, k) for p, k in d.births if p == i or p in seen or k in seen]
        if births:
            lines.append("Born: " + _cap([
                f"{_name(k)} (" + ("your newcomer" if p == i else f"to {_name(p)}") + ")"
                for p, k in births]) + ".")
        knew = self.knew_dead.get(i, set())
        deaths = [x for x in d.deaths if x in knew and x not in d.ally_died.get(i, ())]
        if deaths:
            lines.append("Starved: " + _cap([_name(x) for x in deaths])
                         + " (you had dealt with them).")
        if d.births or d.deaths:
            lines.append(f"In the whole community: {len(d.deaths)} starved, "
                         f"{len(d.births)} born.")
        if not lines:
            return [f"{label}: nothing that concerned you."]
        more = len(lines) - MAX_LINES
        lines = lines[:MAX_LINES] + ([f"... and {more} more"] if more > 0 else [])
        return [f"{label}:"] + ["- " + x for x in lines]

    def _offer(self, d: DayAccount, a: int, b: int, mine: bool) -> str:
        """What became of ``a``'s alliance proposal to ``b`` on day ``d``."""
        last = d.day + self.cfg.merge_window - 1  # the last day a reply forms an alliance
        formed = [e.day for e in self.days if d.day <= e.day <= last
                  and b in e.formed.get(a, ())]
        if formed:
            first = min(formed)
            return "alliance formed" + ("" if first == d.day else f" on day {first}")
        if last >= self.state.day + 1:
            if mine:
                return f"no alliance yet; it forms if {_name(b)} proposes to you by day {last}"
            return f"no alliance yet; it forms if you propose to {_name(a)} by day {last}"
        return "no alliance formed"
