"""Each rule of README "Rules" on hand-built states (exact where the rule is, statistical over
many seeds where it draws)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import build_world, idle_batch

import civa_env
from civa_env.world import rules
from civa_env.world.actions import ActionBatch
from civa_env.world.events import DayEvents
from civa_env.world.kinds import ATTACK_ON_ALLY, ATTACK_SUCCESS, EventKind, Primary, Secondary
from civa_env.world.rules import step_day
from civa_env.world.values import ValueCondition


def kinds(ev: DayEvents) -> list[EventKind]:
    cols, _ = ev.freeze()
    return [EventKind(k) for k in cols["kind"].tolist()]


def rows_of(ev: DayEvents, kind: EventKind) -> dict[str, np.ndarray]:
    cols, _ = ev.freeze()
    sel = cols["kind"] == kind
    return {k: v[sel] for k, v in cols.items()}


def play(state, batch, cfg, seed=0):
    return step_day(state, batch, np.random.default_rng(seed), cfg)


def work(batch: ActionBatch, who, factory: int) -> None:
    batch.primary[who] = Primary.WORK
    batch.factory[who] = factory


def secondary(batch: ActionBatch, i: int, kind: Secondary, j: int, amount: float = 0.0) -> None:
    batch.secondary[i] = kind
    batch.target[i] = j
    batch.amount[i] = amount


# ---- production -----------------------------------------------------------------------------


def test_production_formula(exact_cfg):
    cfg = exact_cfg()
    capacity = np.array([10.0, 10.0, 10.0, 10.0, 8.0])
    workers = np.array([0, 1, 3, 50, 3])
    s = lambda n: 1 / (1 + math.exp(-(n - 3.0)))  # noqa: E731 - k = 1, n_half = 3
    expected = [c * (s(n) - s(0)) / (1 - s(0)) for c, n in zip(capacity, workers, strict=True)]
    np.testing.assert_allclose(rules.production(capacity, workers, cfg), expected)
    assert rules.production(capacity, workers, cfg)[0] == 0.0  # nobody, nothing
    assert rules.production(capacity, workers, cfg)[3] == pytest.approx(10.0, rel=1e-6)  # capped
    # Collaboration gains then diminishing returns: output per worker peaks at a few workers.
    per_worker = rules.production(np.full(8, 10.0), np.arange(1, 9), cfg) / np.arange(1, 9)
    assert per_worker.argmax() in (2, 3) and per_worker[0] < per_worker[3] > per_worker[7]


def test_production_shares_by_skill(exact_cfg):
    cfg = exact_cfg(n_agents=5, upkeep=0.0)
    skill = [1.0, 2.0, 3.0, 1.0, 1.0]
    state = build_world(cfg, skill=skill, known=np.ones((5, cfg.n_factories), bool),
                        wealth=[10.0] * 5)
    b = idle_batch(cfg)
    work(b, [0, 1, 2], 0)
    work(b, [3], 1)  # alone at factory 1
    new, ev = play(state, b, cfg)
    y = rules.production(state.capacity, np.array([3, 1, 0, 0, 0]), cfg)
    expected = np.array([y[0] * 1 / 6, y[0] * 2 / 6, y[0] * 3 / 6, y[1], 0.0])
    np.testing.assert_allclose(new.wealth[:5] - 10.0, expected)
    np.testing.assert_allclose(new.income[:5], expected)
    np.testing.assert_array_equal(new.workers, [3, 1, 0, 0, 0])
    np.testing.assert_allclose(new.output[:2], y[:2])
    w = rows_of(ev, EventKind.WORK)
    np.testing.assert_array_equal(w["actor"], [0, 1, 2, 3])
    np.testing.assert_allclose(w["amount"], expected[:4])
    np.testing.assert_array_equal(w["factory"], [0, 0, 0, 1])
    assert state.wealth[0] == 10.0  # step_day works on a copy


def test_outage_produces_nothing(exact_cfg):
    cfg = exact_cfg(upkeep=0.0, outage_prob=1.0)
    state = build_world(cfg, known=np.ones((3, cfg.n_factories), bool), wealth=[5.0] * 3)
    b = idle_batch(cfg)
    work(b, [0, 1, 2], 2)
    new, ev = play(state, b, cfg)
    np.testing.assert_array_equal(new.wealth[:3], [5.0, 5.0, 5.0])
    assert new.outage.all() and new.output.sum() == 0
    assert kinds(ev).count(EventKind.OUTAGE) == cfg.n_factories


def test_outage_rate_and_production_noise_statistics(exact_cfg):
    # 400 workers spread over 5 factories, 300 days: outages ~10% of factory-days, and each
    # worker's share times lognormal(0, 0.2).
    cfg = exact_cfg(n_agents=400, n_factories=5, upkeep=0.0, outage_prob=0.1,
                    production_noise=0.2)
    state = build_world(cfg, known=np.ones((400, 5), bool), skill=np.ones(400))
    b = idle_batch(cfg)
    work(b, np.arange(400), np.arange(400) % 5)
    rng = np.random.default_rng(7)
    outages, logs = 0, []
    exact = rules.production(state.capacity, np.full(5, 80), cfg) / 80
    for _ in range(300):
        ev = DayEvents(1)
        income = rules.produce(state.copy(), b, rng, cfg, ev, state.wealth.copy())
        w = rows_of(ev, EventKind.OUTAGE)
        outages += len(w["factory"])
        up = income[:400] > 0
        logs.append(np.log(income[:400][up] / exact[(np.arange(400) % 5)[up]]))
    logs = np.concatenate(logs)
    assert outages / 1500 == pytest.approx(0.1, abs=0.03)
    assert logs.mean() == pytest.approx(0.0, abs=0.005)
    assert logs.std() == pytest.approx(0.2, abs=0.005)


# ---- upkeep, starvation, idle ------------------------------------------------------------------


def test_upkeep_and_idle_discount(exact_cfg):
    cfg = exact_cfg(upkeep=2.0)
    state = build_world(cfg, wealth=[10.0, 10.0, 10.0], known=np.ones((3, 5), bool),
                        capacity=np.zeros(5))  # working earns nothing: only upkeep shows
    b = idle_batch(cfg)
    b.primary[1] = Primary.EXPLORE
    work(b, [2], 0)
    new, _ = play(state, b, cfg)
    np.testing.assert_allclose(new.wealth[:3], [10.0 - 0.7 * 2.0, 8.0, 8.0])


def test_upkeep_noise_is_lognormal():
    cfg = civa_env.Config(n_agents=5000, upkeep=1.0, upkeep_noise=0.1)
    state = build_world(cfg, wealth=np.full(5000, 100.0))
    b = ActionBatch.idle(cfg.max_agents)
    b.primary[:] = Primary.EXPLORE
    cost = rules.apply_upkeep(state, b, np.random.default_rng(0), cfg)
    logs = np.log(cost[:5000])
    assert logs.mean() == pytest.approx(0.0, abs=0.006)
    assert logs.std() == pytest.approx(0.1, abs=0.005)
    assert (cost[5000:] == 0).all()  # unused names pay nothing


def test_starvation_below_zero(exact_cfg):
    cfg = exact_cfg(upkeep=1.0)
    # 0.7 idles to exactly 0 (still alive); 0.5 idles to -0.2 (dies).
    state = build_world(cfg, wealth=[0.7, 0.5, 5.0])
    state.allies = np.array([[1, 2]], np.int32)
    new, ev = play(state, idle_batch(cfg), cfg)
    assert new.alive[:3].tolist() == [True, False, True]
    assert new.wealth[0] == pytest.approx(0.0)
    assert new.died_day[1] == 1 and new.died_day[0] == -1
    d = rows_of(ev, EventKind.DEATH)
    assert d["actor"].tolist() == [1] and d["amount"][0] == pytest.approx(-0.2)
    assert len(new.allies) == 0  # a dead resident's alliances end


def test_gift_saves_from_starvation(exact_cfg):
    # Deaths come after the day's transfers: a gift received today keeps a resident alive.
    cfg = exact_cfg(upkeep=1.0)
    state = build_world(cfg, wealth=[0.5, 5.0, 0.5])
    b = idle_batch(cfg)
    secondary(b, 1, Secondary.GIFT, 0, 1.0)
    new, _ = play(state, b, cfg)
    assert new.alive[:3].tolist() == [True, True, False]
    np.testing.assert_allclose(new.wealth[:2], [0.5 + 1.0 - 0.7, 5.0 - 1.0 - 0.7])


def test_loot_saves_from_starvation(exact_cfg):
    cfg = exact_cfg(upkeep=1.0)
    state = build_world(cfg, wealth=[0.5, 10.0, 5.0], skill=[1e9, 0.5, 1.0])
    b = idle_batch(cfg)
    secondary(b, 0, Secondary.ATTACK, 1)
    new, _ = play(state, b, cfg)
    assert new.alive[0]
    assert new.wealth[0] == pytest.approx(0.5 + 5.0 - 1.0 - 0.7)


def test_dead_residents_do_not_act(exact_cfg):
    cfg = exact_cfg(upkeep=0.0)
    state = build_world(cfg, wealth=[5.0, 5.0, 5.0], known=np.ones((3, 5), bool))
    state.alive[2] = False
    b = idle_batch(cfg)
    work(b, [0, 2], 0)
    secondary(b, 2, Secondary.GIFT, 0, 3.0)
    new, ev = play(state, b, cfg)
    assert new.wealth[2] == 5.0 and new.workers[0] == 1
    assert rows_of(ev, EventKind.GIFT)["actor"].tolist() == []


# ---- primary: explore, upgrade ----------------------------------------------------------------


def test_explore_probabilities():
    n = 6000
    cfg = civa_env.Config(n_agents=n, n_factories=5, known_at_start=0)
    known = np.zeros((n, 5), bool)
    known[: n // 2, :2] = True  # half know two factories
    known[n // 2:, :] = True  # half know all: nothing left to reveal
    state = build_world(cfg, known=known)
    b = ActionBatch.idle(cfg.max_agents)
    b.primary[:n] = Primary.EXPLORE
    ev = DayEvents(1)
    income = np.zeros(cfg.max_agents)
    before = state.known.copy()
    rules.explore(state, b, np.random.default_rng(3), cfg, ev, income, state.wealth.copy())
    e = rows_of(ev, EventKind.EXPLORE)
    first = e["actor"] < n // 2
    revealed = e["flag"] == 1
    found = e["flag"] == 2
    assert revealed[first].mean() == pytest.approx(0.3, abs=0.03)
    assert found[first].mean() == pytest.approx(0.7 * 0.3, abs=0.03)
    assert not revealed[~first].any()
    assert found[~first].mean() == pytest.approx(0.3, abs=0.03)
    amounts = e["amount"][found]
    assert amounts.min() >= 0 and amounts.max() <= 3.0
    assert amounts.mean() == pytest.approx(1.5, abs=0.1)
    assert (e["amount"][~found] == 0).all()
    # A reveal adds exactly one factory the resident did not know.
    gained = (state.known & ~before).sum(axis=1)
    np.testing.assert_array_equal(gained[e["actor"]], revealed.astype(int))
    np.testing.assert_allclose(income[e["actor"]], e["amount"])


def test_upgrades(exact_cfg):
    cfg = exact_cfg(upkeep=0.0, n_agents=4)
    state = build_world(cfg, wealth=[10.0] * 4, skill=[1.0] * 4, known=np.ones((4, 5), bool))
    b = idle_batch(cfg)
    b.primary[0] = Primary.UPGRADE_SELF
    b.primary[[1, 2]] = Primary.UPGRADE_FACTORY
    b.factory[[1, 2]] = 3
    new, ev = play(state, b, cfg)
    assert new.skill[0] == pytest.approx(1.1)
    np.testing.assert_allclose(new.wealth[:4], [7.0, 7.0, 7.0, 10.0])
    assert new.capacity[3] == pytest.approx(state.capacity[3] + 2.0)  # a public good, stacked
    np.testing.assert_allclose(np.delete(new.capacity, 3), np.delete(state.capacity, 3))


# ---- gifts --------------------------------------------------------------------------------------


def test_gift_cut_to_wealth_after_primary(exact_cfg):
    # Validated against the day's starting wealth (5 >= 5), then cut to what is left after
    # paying for the upgrade (2).
    cfg = exact_cfg(upkeep=0.0)
    state = build_world(cfg, wealth=[5.0, 1.0, 1.0])
    b = idle_batch(cfg)
    b.primary[0] = Primary.UPGRADE_SELF
    secondary(b, 0, Secondary.GIFT, 1, 5.0)
    new, ev = play(state, b, cfg)
    g = rows_of(ev, EventKind.GIFT)
    assert g["amount"].tolist() == [2.0]
    np.testing.assert_allclose(new.wealth[:2], [0.0, 3.0])
    assert new.given[0] == 2.0 and new.received[1] == 2.0


def test_gift_larger_than_wealth_is_cut_and_flagged(exact_cfg):
    env = civa_env.parallel_env(exact_cfg(upkeep=0.0))
    env.reset(seed=0)
    wealth = env.world.state.wealth[:3].copy()
    obs, rewards, _, _, infos = env.step({
        "resident_0": {"primary": "idle", "secondary": "gift", "target": "resident_1",
                       "amount": 1000.0},
        "resident_1": {"primary": "idle"}, "resident_2": {"primary": "idle"}})
    assert any("cut" in r for r in infos["resident_0"]["invalid"])
    assert env.world.state.wealth[0] == pytest.approx(0.0)
    assert env.world.state.wealth[1] == pytest.approx(wealth[1] + wealth[0])
    assert infos["resident_1"]["invalid"] == []


def test_gifts_to_one_resident_add_up(exact_cfg):
    cfg = exact_cfg(upkeep=0.0, n_agents=4)
    state = build_world(cfg, wealth=[4.0, 4.0, 4.0, 0.0])
    b = idle_batch(cfg)
    for i in range(3):
        secondary(b, i, Secondary.GIFT, 3, 1.0 + i)
    new, _ = play(state, b, cfg)
    np.testing.assert_allclose(new.wealth[:4], [3.0, 2.0, 1.0, 6.0])


# ---- attacks ------------------------------------------------------------------------------------


def _attack_trials(cfg, state, b, trials, attacker=0):
    """Run ``rules.attack`` on copies over many seeds: (flags of ``attacker``'s attack, states)."""
    flags, outs = [], []
    for seed in range(trials):
        s = state.copy()
        ev = DayEvents(1)
        rules.attack(s, b, np.random.default_rng(seed), cfg, ev, 1, state.wealth.copy())
        rows = rows_of(ev, EventKind.ATTACK)
        flags.append(int(rows["flag"][rows["actor"] == attacker][0]))
        outs.append(s)
    return np.array(flags), outs


@pytest.mark.parametrize("ally_attacks_too", [None, False, True])
def test_attack_odds_and_loot(exact_cfg, ally_attacks_too):
    # S_0 = 2 + 0.05 * 10 = 2.5; S_1 = 0.5 + 0.05 * 10 = 1.0. Resident 2 (S = 1 + 0.05 * 100
    # capped at 40 = 3.0) is 1's ally in two cases; it adds half its strength to 1's defence
    # unless it attacks 1 itself.
    cfg = exact_cfg()
    state = build_world(cfg, wealth=[10.0, 10.0, 100.0], skill=[2.0, 0.5, 1.0])
    b = idle_batch(cfg)
    secondary(b, 0, Secondary.ATTACK, 1)
    s_defence = 1.0
    if ally_attacks_too is not None:
        state.allies = np.array([[1, 2]], np.int32)
        if ally_attacks_too:
            secondary(b, 2, Secondary.ATTACK, 1)
        else:
            s_defence += 0.5 * 3.0
    p = 2.5 / (2.5 + s_defence)
    trials = 2000
    flags, outs = _attack_trials(cfg, state, b, trials)
    # When the ally attacks 1 too it never defends 1 (and after its own attack the alliance
    # is gone anyway): the odds are those without an ally, whichever attack goes first.
    success = flags & ATTACK_SUCCESS > 0
    sigma = math.sqrt(p * (1 - p) / len(success))
    assert abs(success.mean() - p) < 4 * sigma, (success.mean(), p)
    if ally_attacks_too is None:
        # Loot: success takes half the defender's wealth; both pay 1, a failed attacker 1 more.
        for ok, s in zip(success.tolist(), outs, strict=True):
            if ok:
                assert s.wealth[0] == pytest.approx(10.0 + 5.0 - 1.0)
                assert s.wealth[1] == pytest.approx(10.0 - 5.0 - 1.0)
                assert s.looted[0] == pytest.approx(5.0)
            else:
                assert s.wealth[0] == pytest.approx(10.0 - 2.0)
                assert s.wealth[1] == pytest.approx(10.0 - 1.0)
            assert s.attacked_by[1] == 1 and s.wealth[2] == 100.0


def test_attack_strength_uses_capped_and_floored_wealth(exact_cfg):
    cfg = exact_cfg()
    assert rules.strength(1.0, 100.0, cfg) == pytest.approx(3.0)
    assert rules.strength(1.0, -5.0, cfg) == pytest.approx(1.0)
    assert rules.strength(0.5, 10.0, cfg) == pytest.approx(1.0)


def test_attacks_resolve_one_by_one(exact_cfg):
    # Two overwhelming attackers on the same defender: the second loots what the first left.
    cfg = exact_cfg(upkeep=0.0)
    state = build_world(cfg, wealth=[1.0, 1.0, 20.0], skill=[1e9, 1e9, 1.0])
    b = idle_batch(cfg)
    secondary(b, 0, Secondary.ATTACK, 2)
    secondary(b, 1, Secondary.ATTACK, 2)
    new, ev = play(state, b, cfg, seed=5)
    a = rows_of(ev, EventKind.ATTACK)
    assert sorted(a["amount"].tolist()) == [4.5, 10.0]
    assert new.wealth[2] == pytest.approx(20.0 - 10.0 - 1.0 - 4.5 - 1.0)
    assert (a["flag"] & ATTACK_SUCCESS).all()
    # The order is the seeded permutation: both orders occur over seeds.
    firsts = set()
    for seed in range(20):
        _, ev = play(state, b, cfg, seed=seed)
        firsts.add(int(rows_of(ev, EventKind.ATTACK)["actor"][0]))
    assert firsts == {0, 1}


def test_hopeless_attack_costs_two(exact_cfg):
    cfg = exact_cfg(upkeep=0.0)
    state = build_world(cfg, wealth=[5.0, 5.0, 5.0], skill=[0.0, 1.0, 1.0])
    state.wealth[0] = 0.0  # strength exactly 0: never succeeds
    b = idle_batch(cfg)
    secondary(b, 0, Secondary.ATTACK, 1)
    flags, outs = _attack_trials(cfg, state, b, 50)
    assert not (flags & ATTACK_SUCCESS).any()
    assert all(s.wealth[0] == -2.0 and s.wealth[1] == 4.0 for s in outs)


# ---- alliances -----------------------------------------------------------------------------------


def _propose(cfg, pairs):
    b = idle_batch(cfg)
    for i, j in pairs:
        secondary(b, i, Secondary.MERGE, j)
    return b


@pytest.mark.parametrize("gap,forms", [(0, True), (1, True), (2, False)])
def test_alliance_needs_mutual_proposals_within_two_days(exact_cfg, gap, forms):
    cfg = exact_cfg(upkeep=0.0)
    state = build_world(cfg, wealth=[5.0] * 3)
    if gap == 0:
        state, ev = play(state, _propose(cfg, [(0, 1), (1, 0)]), cfg)
    else:
        state, ev = play(state, _propose(cfg, [(0, 1)]), cfg)
        for _ in range(gap - 1):
            state, ev = play(state, idle_batch(cfg), cfg)
        assert EventKind.ALLIANCE_FORMED not in kinds(ev)
        state, ev = play(state, _propose(cfg, [(1, 0)]), cfg)
    assert (EventKind.ALLIANCE_FORMED in kinds(ev)) == forms
    assert state.ally_matrix()[0, 1] == state.ally_matrix()[1, 0] == forms
    if forms:
        f = rows_of(ev, EventKind.ALLIANCE_FORMED)
        assert (f["actor"].tolist(), f["target"].tolist()) == ([0], [1])  # once, i < j


def test_one_sided_proposals_do_not_form(exact_cfg):
    cfg = exact_cfg(upkeep=0.0)
    state = build_world(cfg, wealth=[5.0] * 3)
    for _ in range(4):
        state, ev = play(state, _propose(cfg, [(0, 1), (1, 2), (2, 0)]), cfg)
        assert len(state.allies) == 0
        assert kinds(ev).count(EventKind.MERGE_PROPOSAL) == 3


def test_allies_share_known_factories(exact_cfg):
    cfg = exact_cfg(upkeep=0.0)
    known = np.zeros((3, 5), bool)
    known[0, 0] = known[1, 3] = known[2, 4] = True
    state = build_world(cfg, wealth=[5.0] * 3, known=known)
    state, _ = play(state, _propose(cfg, [(0, 1), (1, 0)]), cfg)
    assert state.known[0].tolist() == state.known[1].tolist() == [1, 0, 0, 1, 0]
    assert state.known[2].tolist() == [0, 0, 0, 0, 1]  # not an ally: learns nothing
    # Sharing goes on every day: a factory 0 learns later reaches 1 too.
    state.known[0, 2] = True
    state, _ = play(state, idle_batch(cfg), cfg)
    assert state.known[1, 2]


def test_attacking_an_ally_dissolves_the_alliance(exact_cfg):
    cfg = exact_cfg(upkeep=0.0)
    state = build_world(cfg, wealth=[5.0] * 3)
    state.allies = np.array([[0, 1], [1, 2]], np.int32)
    b = idle_batch(cfg)
    secondary(b, 1, Secondary.ATTACK, 0)
    new, ev = play(state, b, cfg)
    assert new.allies.tolist() == [[1, 2]]
    d = rows_of(ev, EventKind.ALLIANCE_DISSOLVED)
    assert (d["actor"].tolist(), d["target"].tolist()) == ([0], [1])
    assert rows_of(ev, EventKind.ATTACK)["flag"][0] & ATTACK_ON_ALLY
    # Attacking a non-ally leaves alliances alone.
    b = idle_batch(cfg)
    secondary(b, 0, Secondary.ATTACK, 2)
    newer, ev = play(new, b, cfg)
    assert newer.allies.tolist() == [[1, 2]]
    assert not rows_of(ev, EventKind.ATTACK)["flag"][0] & ATTACK_ON_ALLY


def test_ally_defends_then_stops_after_dissolution(exact_cfg):
    # Mutual attack between allies on the same day: the second attack is no longer on an ally.
    cfg = exact_cfg(upkeep=0.0)
    state = build_world(cfg, wealth=[5.0] * 3)
    state.allies = np.array([[0, 1]], np.int32)
    b = idle_batch(cfg)
    secondary(b, 0, Secondary.ATTACK, 1)
    secondary(b, 1, Secondary.ATTACK, 0)
    new, ev = play(state, b, cfg)
    flags = rows_of(ev, EventKind.ATTACK)["flag"]
    assert [bool(f & ATTACK_ON_ALLY) for f in flags] == [True, False]
    assert kinds(ev).count(EventKind.ALLIANCE_DISSOLVED) == 1
    assert len(new.allies) == 0


# ---- births, names -------------------------------------------------------------------------------


def test_birth_into_next_unused_name(exact_cfg):
    cfg = exact_cfg(upkeep=0.0, birth_prob=1.0, n_agents=3, max_agents=6,
                    condition="with:power", prevalence=1.0)
    known = np.zeros((3, 5), bool)
    known[1, [1, 4]] = True
    state = build_world(cfg, wealth=[5.0, 25.0, 5.0], skill=[1.0, 1.3, 1.0], known=known)
    state.condition[1] = ValueCondition.parse("without:benevolence").code  # not the config's
    new, ev = play(state, idle_batch(cfg), cfg)
    assert new.n_used == 4 and new.alive[3]
    assert new.wealth[1] == pytest.approx(15.0) and new.wealth[3] == pytest.approx(10.0)
    assert new.skill[3] == pytest.approx(1.3) and new.known[3].tolist() == known[1].tolist()
    assert new.condition[3] == state.condition[1]  # inherited from the parent
    assert new.parent[3] == 1 and new.born_day[3] == 1
    b = rows_of(ev, EventKind.BIRTH)
    assert (b["actor"].tolist(), b["target"].tolist()) == ([1], [3])


def test_births_stop_when_the_pool_is_full(exact_cfg):
    cfg = exact_cfg(upkeep=0.0, birth_prob=1.0, n_agents=3, max_agents=4)
    state = build_world(cfg, wealth=[30.0, 30.0, 30.0])
    new, ev = play(state, idle_batch(cfg), cfg)
    assert new.n_used == 4 and kinds(ev).count(EventKind.BIRTH) == 1
    newer, ev = play(new, idle_batch(cfg), cfg)
    assert newer.n_used == 4 and EventKind.BIRTH not in kinds(ev)


def test_birth_threshold_and_probability():
    n = 4000
    cfg = civa_env.Config(n_agents=n, max_agents=2 * n, upkeep=0.0, upkeep_noise=0.0)
    wealth = np.where(np.arange(n) % 2 == 0, 20.0, 19.99)  # half exactly at the threshold
    state = build_world(cfg, wealth=wealth)
    ev = DayEvents(1)
    kids = rules.give_birth(state, np.random.default_rng(0), cfg, ev, 1)
    parents = state.parent[kids]
    assert (parents % 2 == 0).all()
    assert len(kids) / (n / 2) == pytest.approx(0.3, abs=0.03)
    np.testing.assert_array_equal(kids, np.arange(n, n + len(kids)))


def test_newcomer_condition_redrawn_without_inheritance(exact_cfg):
    cfg = exact_cfg(upkeep=0.0, birth_prob=1.0, inherit_values=False, condition="with:power",
                    prevalence=0.0)
    state = build_world(cfg, wealth=[30.0, 1.0, 1.0])
    state.condition[0] = ValueCondition.parse("with:power").code
    new, _ = play(state, idle_batch(cfg), cfg)
    assert new.condition[3] == 0  # drawn again at prevalence 0: baseline


def test_dead_name_never_returns():
    # Starve residents fast (high upkeep) while the rich have many children: every newcomer
    # takes a fresh name, never a dead one.
    env = civa_env.parallel_env(n_agents=10, max_agents=40, max_days=30, birth_threshold=12.0,
                                birth_prob=1.0, upkeep=1.5, seed=4)
    obs, _ = env.reset()
    dead: set[str] = set()
    rng = np.random.default_rng(0)
    seen_order = list(env.agents)
    while env.agents:
        before = set(env.agents)
        obs, _, terms, _, _ = env.step(
            {a: int(rng.choice(np.flatnonzero(obs[a]["action_mask"]))) for a in env.agents})
        dead |= {a for a, t in terms.items() if t}
        assert not dead & set(env.agents)
        seen_order += [a for a in obs if a not in before]
    w = env.world.state
    assert dead and w.n_used > 10
    assert not w.alive[w.died_day >= 0].any()
    assert seen_order == env.possible_agents[: len(seen_order)]  # names in pool order


# ---- messages, purity ----------------------------------------------------------------------------


def test_messages_delivered_next_day(exact_cfg):
    from civa_env.world.state import Message

    cfg = exact_cfg(upkeep=0.0)
    state = build_world(cfg, wealth=[5.0] * 3)
    b = idle_batch(cfg)
    b.messages = [Message(1, 0, 1, "hello"), Message(1, 2, -1, "all")]
    new, ev = play(state, b, cfg)
    assert [m.text for m in new.inbox] == ["hello", "all"]
    assert kinds(ev).count(EventKind.MESSAGE) == 2
    newer, _ = play(new, idle_batch(cfg), cfg)
    assert newer.inbox == []


def test_step_day_leaves_its_input_alone(exact_cfg):
    cfg = exact_cfg(n_agents=3)
    state = build_world(cfg, wealth=[5.0, 25.0, 5.0], known=np.ones((3, 5), bool))
    snapshot = state.copy()
    b = idle_batch(cfg)
    work(b, [0], 1)
    secondary(b, 1, Secondary.ATTACK, 2)
    secondary(b, 2, Secondary.MERGE, 0)
    play(state, b, cfg)
    for name in ("wealth", "alive", "skill", "known", "capacity", "allies", "recent_day",
                 "recent_friendly"):
        np.testing.assert_array_equal(getattr(state, name), getattr(snapshot, name))
    assert state.day == snapshot.day and state.n_used == snapshot.n_used


def test_in_sorted_is_membership():
    from civa_env.world.arrays import in_sorted

    keys = np.array([2, 5, 9])
    query = np.array([[9, 1], [5, 10]])
    assert in_sorted(keys, query).tolist() == [[True, False], [True, False]]
    assert in_sorted(np.array([], np.int64), query).tolist() == [[False, False]] * 2


@pytest.mark.parametrize("kw", [{}, {"stress_upkeep": 1.3, "stress_day": 5},
                                {"shock_day": 3, "shock_upkeep": 2.0},
                                {"stress_outage": 3.0, "stress_day": 2}, {"outage_prob": 0.3}])
def test_a_batchs_daily_factors_are_each_days_own(kw):
    """upkeep_factor and outage_prob of an array of days (a batch's, one per community;
    without stress a shortcut) are, day by day, the lone day's figures."""
    from civa_env.world.config import Config
    from civa_env.world.rules import outage_prob, upkeep_factor

    cfg, days = Config(**kw), np.array([1, 2, 3, 4, 5, 6, 9, 1, 12])
    for fn in (upkeep_factor, outage_prob):
        got = fn(cfg, days)
        assert got.dtype == np.float64 and got.shape == days.shape
        np.testing.assert_array_equal(got, [fn(cfg, int(d)) for d in days])
