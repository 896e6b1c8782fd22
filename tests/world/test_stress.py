"""Stressors as rules (``Config.stress_upkeep``, ``stress_outage``, ``stress_day``,
``shock_day``, ``shock_upkeep``): upkeep and the outage probability change from the stress
day on, a shock raises upkeep for one day, the draws stay in step (paired worlds), and the
residents are told today's numbers in both briefings and in the features."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import build_world, idle_batch

from civa_env.world import rules
from civa_env.world.config import Config
from civa_env.world.day import reset, step
from civa_env.world.events import DayEvents, agent_name
from civa_env.world.features import FeatureLayout
from civa_env.world.kinds import Primary

STRESS = {"stress_upkeep": 1.5, "stress_day": 5}


def upkeep_paid(cfg: Config, day: int, seed: int = 0) -> np.ndarray:
    """What residents 0-3 pay on ``day`` (1-based): 0 and 1 idle, 2 and 3 work."""
    state = build_world(cfg, day=day - 1)  # the state's day: days completed
    batch = idle_batch(cfg)
    batch.primary[2:4] = Primary.WORK
    batch.factory[2:4] = 0
    return rules.apply_upkeep(state, batch, np.random.default_rng(seed), cfg)[:4]


# ---- the factors -----------------------------------------------------------------------------


def test_the_defaults_apply_no_stress():
    cfg = Config()
    for day in (1, 2, 30, 1000):
        assert rules.upkeep_factor(cfg, day) == 1.0
        assert rules.outage_prob(cfg, day) == cfg.outage_prob


def test_upkeep_after_the_stress_day_is_mu_times_before(exact_cfg):
    cfg = exact_cfg(n_agents=4, upkeep=2.0, **STRESS)
    before = [upkeep_paid(cfg, day) for day in (1, 4)]
    after = [upkeep_paid(cfg, day) for day in (5, 6, 30)]
    for cost in before:
        np.testing.assert_allclose(cost, [1.4, 1.4, 2.0, 2.0])  # idlers pay 0.7 of it
    for cost in after:
        np.testing.assert_allclose(cost, 1.5 * before[0])


def test_stressed_upkeep_keeps_its_noise_draws(exact_cfg):
    """The same noise is drawn with and without the stress: the cost is just mu times."""
    cfg = exact_cfg(n_agents=4, upkeep_noise=0.1)
    plain = upkeep_paid(cfg, 7, seed=3)
    stressed = upkeep_paid(cfg.replace(**STRESS), 7, seed=3)
    assert len(set(plain[2:].tolist())) == 2  # noisy
    np.testing.assert_allclose(stressed, 1.5 * plain, rtol=1e-12)


def test_a_whole_world_pays_the_stressed_upkeep_from_the_stress_day(exact_cfg):
    """Everyone idles: wealth falls by 0.7 a day, then 0.7 x 1.5 from day 5 (Day.number)."""
    cfg = exact_cfg(n_agents=3, upkeep=1.0, **STRESS)
    w = reset(cfg, 0)
    idle = w.catalogue.encode(Primary.IDLE)
    for number in range(1, 9):
        w, day = step(w, {agent_name(i): idle for i in w.living.tolist()})
        assert day.number == number
        paid = day.before.wealth[:3] - day.after.wealth[:3]
        np.testing.assert_allclose(paid, 0.7 * (1.5 if number >= 5 else 1.0))


def test_the_outage_probability_is_multiplied_and_capped(exact_cfg):
    cfg = exact_cfg(outage_prob=0.1, stress_outage=3.0, stress_day=5)
    assert [rules.outage_prob(cfg, d) for d in (1, 4)] == [0.1, 0.1]
    assert rules.outage_prob(cfg, 5) == pytest.approx(0.3)
    assert rules.outage_prob(cfg.replace(stress_outage=20.0), 9) == 1.0
    assert rules.outage_prob(cfg.replace(stress_outage=0.0), 9) == 0.0


def test_outages_compare_the_same_draws_with_the_raised_threshold(exact_cfg):
    """``produce`` draws one uniform per factory whatever the probability: stressed outages
    are the factories whose draw is below the raised threshold."""
    cfg = exact_cfg(n_factories=400, known_at_start=0, outage_prob=0.1, stress_outage=4.0,
                    stress_day=5)
    draws = np.random.default_rng(11).random(cfg.n_factories)
    for day, p in ((4, 0.1), (5, 0.4)):
        state = build_world(cfg, day=day - 1)
        rules.produce(state, idle_batch(cfg), np.random.default_rng(11), cfg, DayEvents(day),
                      state.wealth.copy())
        np.testing.assert_array_equal(state.outage, draws < p)
    assert 0.3 < (draws < 0.4).mean() < 0.5


def test_raised_outages_over_many_days_and_the_stream_stays_in_step(exact_cfg):
    """Two idle communities, one with outages x3 from day 5: the same outages before, a
    superset after (the same draws), at about 0.1 and 0.3 of the factory-days."""
    cfg = exact_cfg(n_agents=3, n_factories=50, known_at_start=0, upkeep=0.0,
                    outage_prob=0.1, max_days=60)
    runs = {}
    for name, c in (("plain", cfg), ("stressed", cfg.replace(stress_outage=3.0, stress_day=5))):
        w = reset(c, 4)
        idle = w.catalogue.encode(Primary.IDLE)
        outages = []
        while not w.done:
            w, day = step(w, {agent_name(i): idle for i in w.living.tolist()})
            outages.append(day.after.outage.copy())
        runs[name] = np.array(outages)  # (days, M)
    plain, stressed = runs["plain"], runs["stressed"]
    np.testing.assert_array_equal(plain[:4], stressed[:4])
    assert (stressed[4:] >= plain[4:]).all() and (stressed[4:] > plain[4:]).any()
    assert plain.mean() == pytest.approx(0.1, abs=0.03)
    assert stressed[4:].mean() == pytest.approx(0.3, abs=0.04)


def test_a_shock_raises_upkeep_on_its_day_only(exact_cfg):
    cfg = exact_cfg(n_agents=4, upkeep=1.0, shock_day=6, shock_upkeep=3.0)
    paid = {day: upkeep_paid(cfg, day) for day in (5, 6, 7)}
    np.testing.assert_allclose(paid[5], [0.7, 0.7, 1.0, 1.0])
    np.testing.assert_allclose(paid[6], 3.0 * paid[5])
    np.testing.assert_allclose(paid[7], paid[5])
    # On top of a stress.
    both = cfg.replace(**STRESS)
    assert [rules.upkeep_factor(both, d) for d in (4, 5, 6, 7)] == [1.0, 1.5, 4.5, 1.5]
    # shock_day 0 is none (days are 1-based).
    assert all(rules.upkeep_factor(cfg.replace(shock_day=0), d) == 1.0 for d in range(1, 31))


@pytest.mark.parametrize("field,value,words", [
    ("stress_upkeep", -0.5, ">= 0"),
    ("stress_upkeep", float("inf"), "finite"),
    ("stress_upkeep", "2", "a number"),
    ("stress_outage", -1.0, ">= 0"),
    ("stress_outage", float("nan"), "finite"),
    ("shock_upkeep", -2.0, ">= 0"),
    ("stress_day", -1, ">= 0"),
    ("stress_day", 2.5, "an int"),
    ("stress_day", True, "an int"),
    ("shock_day", -3, ">= 0"),
    ("shock_day", "4", "an int"),
])
def test_bad_stress_fields_name_the_field(field, value, words):
    with pytest.raises(ValueError, match=f"invalid config: {field} must be") as err:
        Config(**{field: value})
    assert words in str(err.value)


def test_stress_fields_are_not_shape_fields():
    """A stressed world takes the same policies and checkpoints as an unstressed one."""
    from civa_env.world.config import SHAPE_FIELDS
    from civa_env.world.day import shape_signature

    assert not {"stress_upkeep", "stress_outage", "stress_day", "shock_day",
                "shock_upkeep"} & set(SHAPE_FIELDS)
    stressed = Config(stress_upkeep=2.0, stress_outage=2.0, stress_day=3, shock_day=4,
                      shock_upkeep=2.0)
    assert shape_signature(stressed) == shape_signature(Config())
    assert Config.from_dict(stressed.to_dict()) == stressed


# ---- paired worlds ------------------------------------------------------------------------------


def log_jsonl(w) -> str:
    """A world's event log as JSONL, day by day."""
    buf = io.StringIO()
    for d in range(w.log.n_days):
        w.log.write_day(buf, d)
    return buf.getvalue()


def lockstep(cfgs: list[Config], seed: int, days: int):
    """Play the worlds of ``cfgs`` with the same random valid actions (chosen from the first
    world's masks); yield each day's observations, days and worlds, one each per config."""
    worlds = [reset(c, seed) for c in cfgs]
    rng = np.random.default_rng([seed, 7])
    for _ in range(days):
        seen = [w.observe(w.living, text=True) for w in worlds]
        scores = np.where(seen[0].masks > 0, rng.random(seen[0].masks.shape), -1.0)
        ids = scores.argmax(axis=1)
        actions = {agent_name(i): int(a) for i, a in zip(seen[0].rows.tolist(), ids.tolist(),
                                                         strict=True)}
        stepped = [step(w, actions) for w in worlds]
        worlds = [w for w, _ in stepped]
        yield seen, [d for _, d in stepped], worlds


@pytest.mark.parametrize("seed", range(3))
def test_stress_fields_change_nothing_before_the_stress_day(seed):
    """Two configs that differ only in the stress fields, the same actions: the same world,
    observations and event log on every day before ``stress_day``."""
    base = Config(n_agents=12, max_days=12)
    stressed = base.replace(stress_upkeep=2.5, stress_outage=3.0, stress_day=7,
                            shock_day=9, shock_upkeep=2.0)
    played = 0
    for number, (seen, (a, b), worlds) in enumerate(lockstep([base, stressed], seed, 7), 1):
        played = number
        if number < 7:
            for name in ("wealth", "alive", "skill", "capacity", "known", "outage", "allies"):
                assert getattr(a.after, name).tobytes() == getattr(b.after, name).tobytes()
            assert seen[0].texts == seen[1].texts
            np.testing.assert_array_equal(seen[0].features, seen[1].features)
            np.testing.assert_array_equal(seen[0].masks, seen[1].masks)
            assert log_jsonl(worlds[0]) == log_jsonl(worlds[1])
            assert a.census == b.census
        else:  # day 7: the same state to start from, a dearer day
            assert a.before.wealth.tobytes() == b.before.wealth.tobytes()
            assert not np.array_equal(a.after.wealth, b.after.wealth)
    assert played == 7 and log_jsonl(worlds[0])


# ---- what residents are told ----------------------------------------------------------------


def observe_on(cfg: Config, number: int):
    """The observation of residents 0 and 1 before day ``number`` (everyone idles)."""
    w = reset(cfg, 0)
    idle = w.catalogue.encode(Primary.IDLE)
    for _ in range(number - 1):
        w, _ = step(w, {agent_name(i): idle for i in w.living.tolist()})
    seen = w.observe(np.array([0, 1]), text=True)
    assert seen.day == number
    return seen


STRESSED = dict(n_agents=4, max_days=12, stress_upkeep=1.5, stress_outage=2.0, stress_day=4,
                shock_day=6, shock_upkeep=2.0)


@pytest.mark.parametrize("number,upkeep,outage", [
    (1, 1.0, 0.1), (3, 1.0, 0.1), (4, 1.5, 0.2), (5, 1.5, 0.2), (6, 3.0, 0.2), (7, 1.5, 0.2)])
def test_features_show_todays_upkeep_and_outage_probability(number, upkeep, outage):
    cfg = Config(**STRESSED)
    seen = observe_on(cfg, number)
    layout = FeatureLayout.of(cfg)
    np.testing.assert_allclose(layout.read(seen.features, "upkeep"), upkeep, rtol=1e-6)
    np.testing.assert_allclose(layout.read(seen.features, "outage_prob"), outage, rtol=1e-6)


@pytest.mark.parametrize("number,upkeep_line,outage_line", [
    (3, "- Upkeep: about 1 a day, 0.7 of it when idle;", "p 0.1 a day."),
    (4, "- Upkeep: about 1.5 a day (raised x1.5 since day 4), 0.7 of it when idle;",
     "p 0.2 a day (raised x2 since day 4)."),
    (6, "- Upkeep: about 3 a day (raised x1.5 since day 4; x2 today only: a one-day shock), "
        "0.7 of it when idle;", "p 0.2 a day (raised x2 since day 4)."),
    (7, "- Upkeep: about 1.5 a day (raised x1.5 since day 4), 0.7 of it when idle;",
     "p 0.2 a day (raised x2 since day 4)."),
])
def test_briefing_v2_shows_todays_upkeep_and_when_the_stress_began(number, upkeep_line,
                                                                   outage_line):
    seen = observe_on(Config(**STRESSED), number)
    for text in seen.texts:
        assert upkeep_line in text
        assert "a factory has an outage (no output) with " + outage_line in text


def test_briefing_v2_says_lowered_for_a_relief():
    seen = observe_on(Config(n_agents=4, stress_upkeep=0.5, stress_day=1), 1)
    assert "- Upkeep: about 0.5 a day (lowered x0.5 since day 1)," in seen.texts[0]


def test_briefing_v2_at_the_defaults_is_unchanged_by_the_stress_day():
    """Without stress the card is the same every day (prompts share a prefix)."""
    first, later = observe_on(Config(n_agents=4), 1), observe_on(Config(n_agents=4), 5)
    card = first.texts[0].split("\n\n")[0]
    assert card == later.texts[0].split("\n\n")[0]
    assert "- Upkeep: about 1 a day, 0.7 of it when idle;" in card
    assert "raised" not in card


@pytest.mark.parametrize("number,upkeep", [(3, "1"), (4, "1.5"), (6, "3")])
def test_briefing_v1_shows_todays_upkeep(number, upkeep):
    seen = observe_on(Config(**STRESSED, briefing="v1"), number)
    assert f"Upkeep is about {upkeep} a day (0.7 of it when idle)" in seen.texts[0]
