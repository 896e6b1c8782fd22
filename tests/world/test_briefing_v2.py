"""Briefing v2 (``civa_env.world.briefing``) on hand-built days: after each dealing the next
briefing of the residents concerned names the other party and the outcome; the view list is
shuffled by seed; the horizon is hidden by default; v1 is kept byte for byte; the length
stays within ``max_text_chars`` at 25 and 200 residents on a busy day."""

from __future__ import annotations

import re

import numpy as np
import pytest

from civa_env.world.briefing import MAX_NAMES, DayAccounts
from civa_env.world.config import Config
from civa_env.world.day import reset, step
from civa_env.world.kinds import ATTACK_ON_ALLY, K
from civa_env.world.perception import Briefer, legal
from civa_env.world.rules import production

# The (25, "scripted", 1, "text") episode digest of tests/envs/test_speed_invariance.py as
# recorded with briefing v1, before v2 became the default.


def make_world(n: int = 6, seed: int = 0, **kw):
    # Strength = skill (no wealth term): a resident with skill 0 never wins and always
    # loses, so attacks have known outcomes.
    kw.setdefault("attack_wealth_weight", 0.0)
    return reset(Config(n_agents=n, **kw), seed)


def play(world, actions: dict[int, dict] | None = None):
    """Step one day: residents ``actions`` name act, every other living resident idles."""
    acts = {f"resident_{i}": {"primary": "idle"} for i in world.living.tolist()}
    acts.update({f"resident_{i}": a for i, a in (actions or {}).items()})
    return step(world, acts)[1]


def brief(world, i: int) -> str:
    return world.observe(np.array([i]), text=True).texts[0]


def attack(j: int) -> dict:
    return {"primary": "idle", "secondary": "attack", "target": f"resident_{j}"}


def gift(j: int, amount: float) -> dict:
    return {"primary": "idle", "secondary": "gift", "target": f"resident_{j}", "amount": amount}


def merge(j: int) -> dict:
    return {"primary": "idle", "secondary": "merge", "target": f"resident_{j}"}


def allied(world, a: int, b: int) -> None:
    """Make ``a`` and ``b`` allies through mutual proposals (one day)."""
    play(world, {a: merge(b), b: merge(a)})
    assert world.state.ally_matrix()[a, b]


def yesterday(text: str) -> str:
    """The lines of yesterday's account."""
    part = re.split(r" \(yesterday\):[\n ]", text, maxsplit=1)[1]
    return part.split("\nDay ", 1)[0].split("\nMessages for you:", 1)[0]


# ---- the account of the last days -----------------------------------------------------------

def test_a_successful_attack_names_the_attacker_and_the_loot():
    w = make_world()
    w.state.skill[1] = 0.0  # resident_1 cannot resist
    w.state.wealth[1] = 10.0
    play(w, {0: attack(1)})
    assert "Attacked you: resident_0 (won, took 5.0); each fight cost you 1." in yesterday(
        brief(w, 1))
    assert "You attacked resident_1: you won and took 5.0, the fight cost you 1." in yesterday(
        brief(w, 0))
    assert "resident_0" not in yesterday(brief(w, 2))


def test_a_failed_attack_names_both_sides_and_the_cost():
    w = make_world()
    w.state.skill[0] = 0.0  # resident_0 cannot win
    play(w, {0: attack(1)})
    assert "Attacked you: resident_0 (failed)" in yesterday(brief(w, 1))
    assert "You attacked resident_1: you failed, the fight cost you 2." in yesterday(brief(w, 0))


def test_gifts_name_the_giver_and_the_amount():
    w = make_world()
    play(w, {0: gift(2, 1.5), 3: gift(2, 0.5)})
    assert "Gave to you: resident_0 (1.5), resident_3 (0.5)." in yesterday(brief(w, 2))
    assert "You gave resident_2 1.5." in yesterday(brief(w, 0))


def test_a_proposal_then_an_alliance_then_its_breaking():
    w = make_world()
    play(w, {0: merge(1)})  # day 1: a proposal
    text = brief(w, 1)
    assert ("Proposed an alliance to you: resident_0 (no alliance yet; it forms if you "
            "propose to resident_0 by day 2).") in yesterday(text)
    assert ("You proposed an alliance to resident_1: no alliance yet; it forms if resident_1 "
            "proposes to you by day 2.") in yesterday(brief(w, 0))
    play(w, {1: merge(0)})  # day 2: the answer forms the alliance
    text = brief(w, 1)
    assert "- You proposed an alliance to resident_0: alliance formed." in yesterday(text)
    assert "- Alliance formed with: resident_0." in yesterday(text)
    assert "Proposed an alliance to you: resident_0 (alliance formed on day 2)." in text
    assert re.search(r"resident_0 \([a-z ]+, ally\)", text)
    assert "- Alliance formed with: resident_1." in yesterday(brief(w, 0))
    play(w, {0: attack(1)})  # day 3: attacking an ally breaks the alliance
    assert "Alliance broken: resident_0 attacked you." in yesterday(brief(w, 1))
    assert "Alliance broken: you attacked resident_1." in yesterday(brief(w, 0))
    assert "ally)" not in brief(w, 1)


def test_a_lapsed_proposal_says_no_alliance_formed():
    w = make_world()
    play(w, {0: merge(1)})
    play(w)
    play(w)
    text = brief(w, 1)
    assert "Day 1:\n- Proposed an alliance to you: resident_0 (no alliance formed)." in text


def test_allies_who_defend_are_named_and_an_attacking_ally_is_not():
    w = make_world(n=6)
    allied(w, 1, 2)
    allied(w, 1, 3)
    play(w, {0: attack(1), 2: attack(1)})  # resident_2 attacks its own ally
    text = yesterday(brief(w, 1))
    assert "Your ally resident_3 helped defend you." in text
    assert "Alliance broken: resident_2 attacked you." in text
    assert "resident_0 (" in text and "resident_2 (" in text  # both attacks, each with outcome
    assert "its allies resident_3 defended it" in yesterday(brief(w, 0))
    assert "You helped defend: your ally resident_1 against resident_0 (it" in yesterday(
        brief(w, 3))


def test_allies_busy_elsewhere_still_defend():
    w = make_world(n=6)
    allied(w, 1, 2)
    allied(w, 1, 3)
    play(w, {0: attack(1), 2: attack(4)})  # resident_2 attacks someone else: it still counts
    assert "Your allies resident_2, resident_3 helped defend you." in yesterday(brief(w, 1))


def test_a_dead_ally_ends_the_alliance_and_deaths_are_counted():
    w = make_world()
    allied(w, 0, 1)
    w.state.wealth[1] = 0.1  # its upkeep starves it
    day = play(w)
    assert day.died.tolist() == [1]
    text = yesterday(brief(w, 0))
    assert "Your ally resident_1 starved; the alliance ended." in text
    assert "In the whole community: 1 starved, 0 born." in text
    assert "You have no allies." in brief(w, 0)


def test_births_and_deaths_among_those_it_knows():
    w = make_world(n=6, birth_prob=1.0)
    play(w, {3: gift(4, 0.1)})  # resident_4 dealt with resident_3
    w.state.wealth[3] = 0.1  # resident_3 starves tomorrow
    w.state.wealth[2] = 50.0  # resident_2 has a newcomer
    day = play(w)
    assert day.died.tolist() == [3] and day.born.tolist() == [6]
    assert "Starved: resident_3 (you had dealt with them)." in yesterday(brief(w, 4))
    assert "Starved:" not in brief(w, 5)
    assert "Born: resident_6 (to resident_2)." in yesterday(brief(w, 5))
    assert "Born: resident_6 (your newcomer)." in yesterday(brief(w, 2))
    assert "In the whole community: 1 starved, 1 born." in yesterday(brief(w, 5))


def test_the_alliance_replay_agrees_with_the_world():
    """The alliances after each day's merges, less the day's broken alliances and dead,
    are the world's alliances at the end of the day (random merges and attacks)."""
    w = make_world(n=12, seed=3)
    rng = np.random.default_rng(0)
    ends = {}
    for _ in range(8):
        alive = w.living.tolist()
        acts = {}
        for i in alive:
            j = int(rng.choice([x for x in alive if x != i]))
            acts[i] = merge(j) if rng.random() < 0.6 else attack(j)
        day = play(w, acts)
        ends[day.number] = {tuple(p) for p in w.state.allies.tolist()}
        if w.done:
            break
    chunks = w.log.day_columns()
    accounts = DayAccounts()
    accounts.update(chunks, w.state.died_day)
    after = {day: accounts.after[k] for k, (day, _) in enumerate(chunks)}
    for day, cols in chunks:
        on_ally = (cols["kind"] == K.ATTACK) & ((cols["flag"] & ATTACK_ON_ALLY) > 0)
        pairs = zip(cols["actor"][on_ally].tolist(), cols["target"][on_ally].tolist(),
                    strict=True)
        broken = {(min(a, b), max(a, b)) for a, b in pairs}
        dead = set(cols["actor"][cols["kind"] == K.DEATH].tolist())
        left = {p for p in after[day] - broken if not dead & set(p)}
        assert left == ends[day], day
    assert any(ends.values())


def test_the_first_day_and_quiet_days():
    w = make_world()
    assert "Nothing has happened yet: this is the first day." in brief(w, 0)
    play(w)
    assert "Day 1 (yesterday): nothing that concerned you." in brief(w, 0)


# ---- the view list, the horizon, v1 -----------------------------------------------------------

def seen_order(text: str) -> list[int]:
    line = next(x for x in text.splitlines() if x.startswith("Residents you see"))
    return [int(x) for x in re.findall(r"resident_(\d+) \(", line)]


def test_the_view_is_one_shuffled_list_deterministic_by_seed():
    w, again = make_world(n=25, seed=4), make_world(n=25, seed=4)
    rows = w.living
    first = w.observe(rows, text=True).texts
    assert first == again.observe(rows, text=True).texts
    orders = [seen_order(t) for t in first]
    for i, order in zip(rows.tolist(), orders, strict=True):
        assert sorted(order) == sorted(j for j in w.view[i].tolist() if j >= 0)
    assert sum(order != sorted(order) for order in orders) > 20  # not name order
    common = [[j for j in order if j not in (0, 1)] for order in orders[:2]]
    assert common[0] != common[1]  # residents 0 and 1 see the others in different orders
    text = first[0]
    assert "Your allies:" not in text and text.count("Residents you see") == 1
    play(w)
    play(again)
    assert seen_order(brief(w, 0)) != orders[0]  # another day, another order
    assert brief(w, 0) == brief(again, 0)


def test_another_seed_gives_another_order():
    a, b = make_world(n=25, seed=4), make_world(n=25, seed=5)
    b.view[:] = a.view  # the same view slots: only the shuffle's seed differs
    assert seen_order(brief(a, 0)) != seen_order(brief(b, 0))


def test_the_horizon_is_hidden_by_default():
    w = make_world()
    assert "You are resident_0. Day 1. 6 residents are alive." in brief(w, 0)
    assert " of 30" not in brief(w, 0)
    shown = make_world(show_horizon=True)
    assert "You are resident_0. Day 1 of 30. 6 residents are alive." in brief(shown, 0)


def test_no_value_prompt_in_v2_and_the_condition_in_the_legal_facts():
    w = make_world(condition="with:power", prevalence=1.0)
    prompt = w.cfg.value_condition.prompt()
    assert prompt and prompt not in brief(w, 0)
    assert legal(w.state, w.view, w.cfg, 0)["condition"] == "with:power"
    v1 = reset(w.cfg.replace(briefing="v1"), 0)
    assert prompt in brief(v1, 0)
    assert w.observe(np.array([0])).legal[0]["condition"] == "with:power"


def test_the_rules_card_takes_its_numbers_from_the_config():
    w = make_world(upgrade_cost=4.5, loot_fraction=0.25, birth_threshold=33.0,
                   explore_reveal_prob=0.15, ally_defence=0.75, attack_wealth_weight=0.07)
    text = brief(w, 0)
    for piece in ("costs 4.5", "takes 0.25 of the defender's wealth", "at wealth >= 33",
                  "p 0.15 to find a factory", "adds 0.75 x its S",
                  "skill + 0.07 x min(wealth, 40)"):
        assert piece in text, piece
    m = int(np.flatnonzero(w.state.known[0])[0])
    table = production(w.state.capacity[m], np.arange(1, 7), w.cfg)
    assert f"output {', '.join(f'{y:.1f}' for y in table)}" in text


def test_v1_is_selectable_and_unchanged():
    w = make_world(n=10, briefing="v1", condition="with:power", prevalence=0.5)
    play(w, {0: attack(1), 2: gift(3, 1.0)})
    rows = w.living
    texts = w.observe(rows, text=True).texts
    old = Briefer(w.state, w.view, w.cfg)
    assert texts == [old.brief(i) for i in rows.tolist()]
    assert texts[0].startswith("You are resident_0. Day 2 of 30.")


def test_the_briefing_field_is_checked():
    with pytest.raises(ValueError, match=r"briefing must be one of \('v1', 'v2'\), got 'v3'"):
        Config(briefing="v3")
    with pytest.raises(ValueError, match="show_horizon must be true or false"):
        Config(show_horizon="yes")


# ---- bounded length ---------------------------------------------------------------------------

def busy_day(world, rng) -> None:
    """Everyone attacks, gives or proposes, half of the attacks on resident_0, and sends
    two messages as long as allowed."""
    alive = world.living.tolist()
    long_text = "x" * world.cfg.max_message_chars
    acts = {}
    for i in alive:
        others = [x for x in alive if x != i]
        j = 0 if i != 0 and rng.random() < 0.5 else int(rng.choice(others))
        kind = rng.integers(3)
        acts[i] = attack(j) if kind == 0 or j == 0 else gift(j, 0.5) if kind == 1 else merge(j)
        acts[i]["messages"] = [{"to": "everyone", "text": long_text},
                               {"to": f"resident_{rng.choice(others)}", "text": long_text}]
    play(world, acts)


@pytest.mark.parametrize("n", [25, 200])
@pytest.mark.parametrize("max_text_chars", [4000, 1500])
def test_a_busy_briefing_stays_within_its_bound(n, max_text_chars):
    w = make_world(n=n, seed=1, max_text_chars=max_text_chars, attack_wealth_weight=0.05)
    w.state.skill[0] = 100.0  # the many attacks on resident_0 fail
    rng = np.random.default_rng(n)
    for _ in range(3):
        w.state.wealth[w.state.alive] = 15.0  # nobody starves: every day stays busy
        w.state.wealth[0] = 1000.0  # resident_0 pays for every fight and lives to read them
        busy_day(w, rng)
    texts = w.observe(w.living, text=True).texts
    assert max(len(t) for t in texts) <= max_text_chars
    assert all(re.search(r"You are resident_\d+\. Day 4\.", t) for t in texts)
    victim = texts[0]
    assert victim.startswith("(The rules card is left out for length.)\nYou are resident_0."
                             if max_text_chars < 4000 else "Rules:")
    assert "Attacked you:" in victim and re.search(r"and \d+ more; each fight", victim)
    names = re.search(r"Attacked you: (.*)", victim).group(1)
    assert len(re.findall(r"resident_\d+ \(", names)) == MAX_NAMES
    assert "more messages not shown" in victim or max_text_chars < 4000
