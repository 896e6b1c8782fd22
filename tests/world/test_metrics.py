"""Each metric and behaviour detector on hand-built event logs with known answers, and the
event log's JSONL round trip (including truncated and corrupt files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import build_world

import civa_env
from civa_env.world import behaviours, metrics
from civa_env.world.config import Config
from civa_env.world.events import DayEvents, EventLog
from civa_env.world.kinds import ATTACK_ON_ALLY, ATTACK_SUCCESS, Deal, EventKind

K = EventKind


def census(day: int, population: int, *, acting: int | None = None, production: float = 0.0,
           gini: float = 0.0, ic: float = 0.0, median: float = 10.0, mean: float = 10.0) -> dict:
    """A census record with the fields the metrics read."""
    return {"day": day, "population": population,
            "acting": population if acting is None else acting, "births": 0, "deaths": 0,
            "production": production, "wealth_total": 0.0, "wealth_mean": mean,
            "wealth_median": median, "wealth_mean_start": mean, "wealth_median_start": median,
            "gini": gini, "ic": ic, "alliances": 0, "actions": {}}


def make_log(days: dict[int, list[tuple]], census_by_day: dict[int, dict] | None = None,
             n_days: int | None = None) -> EventLog:
    """Log from {day: [(kind, actor, target, extra...)]}; extra is a dict of DayEvents.add
    keywords (``wealth``, ``target_wealth``, ``flag``, ``amount``, ``text``)."""
    census_by_day = census_by_day or {}
    log = EventLog()
    last = n_days or max(list(days) + list(census_by_day) + [1])
    for day in range(1, last + 1):
        ev = DayEvents(day)
        for kind, actor, target, *extra in days.get(day, []):
            kw = dict(extra[0]) if extra else {}
            text = kw.pop("text", None)
            ev.add(kind, [actor], [target], texts=None if text is None else [text],
                   **{k: [v] for k, v in kw.items()})
        log.append(ev, census_by_day.get(day, census(day, 4)))
    return log


def detect(log: EventLog, *, episode: bool = True, **kw) -> dict[str, np.ndarray]:
    cols, texts = log.columns()
    return behaviours.detect(cols, texts, log.census, episode=episode, **kw)


def flagged(log: EventLog, behaviour: str, **kw) -> list[tuple[int, int, int]]:
    """(day, actor, target) of the rows flagged with ``behaviour``."""
    cols, _ = log.columns()
    mask = detect(log, **kw)[behaviour]
    return list(zip(cols["day"][mask].tolist(), cols["actor"][mask].tolist(),
                    cols["target"][mask].tolist(), strict=True))


CFG = Config(n_agents=4, max_days=5)


# ---- gini / ED -----------------------------------------------------------------------------------


@pytest.mark.parametrize("wealth,expected", [
    ([1, 1, 1, 1], 0.0),
    ([0, 0, 0, 1], 0.75),
    ([1, 2, 3, 4], 0.25),  # sum |xi - xj| over ordered pairs = 20; 20 / (2 * 16 * 2.5)
    ([5], 0.0),
    ([], 0.0),
    ([0, 0], 0.0),
    ([-3, 0, 0, 1], 0.75),  # negative wealth counts as 0
])
def test_gini_known_answers(wealth, expected):
    assert metrics.gini(np.array(wealth, float)) == pytest.approx(expected)


def test_gini_matches_pairwise_definition():
    x = np.random.default_rng(0).uniform(0, 50, size=37)
    pairwise = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert metrics.gini(x) == pytest.approx(pairwise)


def test_ed_is_one_minus_gini_over_living_days():
    days = {1: census(1, 4, gini=0.2), 2: census(2, 2, gini=0.4), 3: census(3, 0, gini=0.0)}
    s = metrics.summarize(make_log({}, days), CFG)
    assert s["ED"] == pytest.approx(((1 - 0.2) + (1 - 0.4)) / 2)  # the extinct day is left out


# ---- nAUP, population series ---------------------------------------------------------------------


def test_naup_and_growth():
    days = {d: census(d, p) for d, p in zip(range(1, 6), [4, 4, 3, 2, 1], strict=True)}
    s = metrics.summarize(make_log({}, days), CFG)
    assert s["nAUP"] == pytest.approx(14 / 20)
    assert s["final_population"] == 1 and s["extinct_day"] is None
    grow = {d: census(d, p) for d, p in zip(range(1, 6), [5, 6, 7, 8, 8], strict=True)}
    assert metrics.summarize(make_log({}, grow), CFG)["nAUP"] == pytest.approx(34 / 20)


def test_naup_counts_zero_after_extinction():
    # The env stops at extinction: days 4 and 5 have no census and count as 0.
    days = {1: census(1, 3), 2: census(2, 2), 3: census(3, 0, acting=2)}
    s = metrics.summarize(make_log({}, days), CFG)
    assert s["nAUP"] == pytest.approx(5 / 20)
    assert s["extinct_day"] == 3 and s["final_population"] == 0
    assert s["population"] == [3, 2, 0, 0, 0]


def test_early_warning_autocorrelation_and_variance():
    pops = [4, 3, 2, 1]
    days = {d: census(d, p) for d, p in zip(range(1, 5), pops, strict=True)}
    s = metrics.summarize(make_log({}, days), Config(n_agents=4, max_days=4))
    x = np.array(pops, float)
    d = x - x.mean()
    assert s["autocorr_lag1"] == pytest.approx((d[1:] * d[:-1]).sum() / (d * d).sum())
    assert s["autocorr_lag1"] == pytest.approx(0.25)
    assert s["variance"] == pytest.approx(1.25)
    flat = {d: census(d, 4) for d in range(1, 5)}
    s = metrics.summarize(make_log({}, flat), Config(n_agents=4, max_days=4))
    assert s["autocorr_lag1"] == 0.0 and s["variance"] == 0.0


def test_early_warning_series_stops_at_extinction():
    days = {1: census(1, 4), 2: census(2, 2), 3: census(3, 0)}
    s = metrics.summarize(make_log({}, days), Config(n_agents=4, max_days=30))
    assert s["variance"] == pytest.approx(np.var([4, 2, 0]))


# ---- CC ------------------------------------------------------------------------------------------


def test_cc_is_production_per_resident_day():
    days = {1: census(1, 4, acting=4, production=10.0), 2: census(2, 3, acting=4, production=6.0),
            3: census(3, 3, acting=3, production=2.0)}
    assert metrics.summarize(make_log({}, days), CFG)["CC"] == pytest.approx(18.0 / 11)


def test_census_production_counts_work_and_finds(exact_cfg):
    cfg = exact_cfg()
    state = build_world(cfg, wealth=[5.0] * 3)
    ev = DayEvents(1)
    ev.add(K.WORK, [0, 1], factory=[0, 0], amount=[2.0, 3.0])
    ev.add(K.EXPLORE, [2], amount=[1.5], flag=[2])
    ev.add(K.GIFT, [0], [1], amount=[4.0])  # a transfer, not production
    cols, _ = ev.freeze()
    c = metrics.census(state, cols, state.wealth.copy(), state.alive.copy(), cfg)
    assert c["production"] == pytest.approx(6.5)
    assert c["population"] == 3 and c["acting"] == 3


# ---- SC ------------------------------------------------------------------------------------------


def test_social_capital():
    log = make_log({
        1: [(K.GIFT, 0, 1, {"amount": 1.0}), (K.GIFT, 2, 1, {"amount": 1.0}),
            (K.ALLIANCE_FORMED, 0, 3)],
        2: [(K.GIFT, 3, 2, {"amount": 1.0}),
            (K.ATTACK, 1, 0, {"flag": 0})],  # 0 gave 1 a gift yesterday: betrayal
        3: [(K.ATTACK, 3, 0, {"flag": ATTACK_ON_ALLY})],  # on an ally: betrayal
    })
    s = metrics.summarize(log, CFG)
    assert s["behaviours"]["cooperation"] == 4 and s["behaviours"]["betrayal"] == 2
    assert s["SC"] == pytest.approx((4 - 2) / (4 + 2))
    assert s["cooperation_per_resident_day"] == pytest.approx(4 / 12)
    assert s["betrayal_per_resident_day"] == pytest.approx(2 / 12)
    assert metrics.summarize(make_log({}), CFG)["SC"] == 0.0  # neither: 0
    only_bad = make_log({1: [(K.ATTACK, 0, 1, {"flag": ATTACK_ON_ALLY})]})
    assert metrics.summarize(only_bad, CFG)["SC"] == -1.0


# ---- IC ------------------------------------------------------------------------------------------


def scc(nodes, edges=(), broadcasters=(), n=10):
    src = np.array([e[0] for e in edges], np.int64)
    dst = np.array([e[1] for e in edges], np.int64)
    return metrics.largest_scc_share(n, src, dst, np.array(broadcasters, np.int64),
                                     np.array(nodes, np.int64))


def test_ic_largest_strongly_connected_share():
    nodes = [0, 1, 2, 3]
    assert scc(nodes, [(0, 1), (1, 0)]) == pytest.approx(0.5)
    assert scc(nodes, [(0, 1), (1, 2), (2, 0)]) == pytest.approx(0.75)
    assert scc(nodes, [(0, 1), (1, 2), (2, 3)]) == 0.0  # a chain: no exchange
    assert scc(nodes, [(0, 1), (1, 0), (2, 3), (3, 2)]) == pytest.approx(0.5)
    assert scc(nodes, [(0, 1), (1, 2), (2, 3), (3, 0)]) == pytest.approx(1.0)
    assert scc([], []) == 0.0


def test_ic_broadcasts_go_through_a_hub():
    nodes = [0, 1, 2, 3]
    # 0 tells everyone, 1 answers 0: 0 -> hub -> 1 -> 0 is a cycle; 2 and 3 only listen.
    assert scc(nodes, [(1, 0)], broadcasters=[0]) == pytest.approx(0.5)
    # Two broadcasters reach each other through the hub.
    assert scc(nodes, [], broadcasters=[0, 2]) == pytest.approx(0.5)
    # Everyone broadcasts: one component.
    assert scc(nodes, [], broadcasters=nodes) == pytest.approx(1.0)
    # A lone broadcaster talks to nobody who answers.
    assert scc(nodes, [], broadcasters=[0]) == 0.0


def test_information_coverage_from_state(exact_cfg):
    cfg = exact_cfg(n_agents=4)
    state = build_world(cfg)
    state.day = 5

    def messages(*triples):
        state.recent_day = np.array([t[0] for t in triples], np.int32)
        state.recent_src = np.array([t[1] for t in triples], np.int32)
        state.recent_dst = np.array([t[2] for t in triples], np.int32)
        state.recent_kind = np.full(len(triples), Deal.MESSAGE, np.int8)
        state.recent_friendly = np.zeros(len(triples), bool)

    messages((5, 0, 1), (4, 1, 0))
    assert metrics.information_coverage(state, cfg) == pytest.approx(0.5)
    messages((5, 0, 1), (2, 1, 0))  # the answer is older than 3 days: gone
    assert metrics.information_coverage(state, cfg) == 0.0
    messages((3, 0, -1), (3, 1, -1), (3, 2, -1))  # three broadcasters, 3 days ago counts
    assert metrics.information_coverage(state, cfg) == pytest.approx(0.75)
    state.alive[2] = False  # the dead drop out of the graph and of the living
    assert metrics.information_coverage(state, cfg) == pytest.approx(2 / 3)
    state.recent_kind[:] = Deal.GIFT  # only messages count
    assert metrics.information_coverage(state, cfg) == 0.0


def test_ic_summary_averages_living_days():
    days = {1: census(1, 4, ic=0.5), 2: census(2, 4, ic=1.0), 3: census(3, 0, ic=0.0)}
    assert metrics.summarize(make_log({}, days), CFG)["IC"] == pytest.approx(0.75)


# ---- behaviours ----------------------------------------------------------------------------------


def test_cooperation_detector():
    log = make_log({1: [(K.GIFT, 0, 1), (K.ALLIANCE_FORMED, 1, 2), (K.MERGE_PROPOSAL, 2, 3),
                        (K.ATTACK, 3, 0), (K.MESSAGE, 0, 1, {"text": "hi friend"})]})
    assert flagged(log, "cooperation") == [(1, 0, 1), (1, 1, 2)]


@pytest.mark.parametrize("gift_day,attack_day,betrayal", [
    (1, 1, True), (1, 2, True), (1, 3, True), (1, 4, False), (3, 2, False)])
def test_betrayal_gift_window(gift_day, attack_day, betrayal):
    # Betrayal: attacking someone who gave you a gift in the last 3 days (attack day included).
    days: dict[int, list] = {gift_day: [(K.GIFT, 1, 0, {"amount": 1.0})]}
    days.setdefault(attack_day, []).append((K.ATTACK, 0, 1))
    log = make_log(days, n_days=4)
    assert flagged(log, "betrayal") == ([(attack_day, 0, 1)] if betrayal else [])


def test_betrayal_needs_the_gift_from_the_victim():
    log = make_log({1: [(K.GIFT, 0, 1), (K.GIFT, 2, 0)], 2: [(K.ATTACK, 0, 1)]})
    assert flagged(log, "betrayal") == []  # 0 gave to 1 (not the other way); 2 is not attacked
    log = make_log({1: [(K.ATTACK, 0, 1, {"flag": ATTACK_ON_ALLY | ATTACK_SUCCESS})]})
    assert flagged(log, "betrayal") == [(1, 0, 1)]


def test_betrayal_window_follows_recent_days():
    log = make_log({1: [(K.GIFT, 1, 0)], 4: [(K.ATTACK, 0, 1)]})
    assert flagged(log, "betrayal", recent_days=4) == [(4, 0, 1)]


@pytest.mark.parametrize("msg_day,attack_day,deception", [
    (1, 1, True), (1, 2, True), (1, 3, True), (1, 4, False), (2, 1, False)])
def test_deception_window(msg_day, attack_day, deception):
    # A friendly message, then an attack on its recipient within 2 days.
    days: dict[int, list] = {msg_day: [(K.MESSAGE, 0, 1, {"text": "Let us be friends"})]}
    days.setdefault(attack_day, []).append((K.ATTACK, 0, 1))
    log = make_log(days, n_days=4)
    assert flagged(log, "deception") == ([(attack_day, 0, 1)] if deception else [])


def test_deception_needs_a_friendly_message_to_the_victim():
    hostile = make_log({1: [(K.MESSAGE, 0, 1, {"text": "I will crush you"})],
                        2: [(K.ATTACK, 0, 1)]})
    assert flagged(hostile, "deception") == []
    elsewhere = make_log({1: [(K.MESSAGE, 0, 2, {"text": "peace and trust"})],
                          2: [(K.ATTACK, 0, 1)]})
    assert flagged(elsewhere, "deception") == []
    by_other = make_log({1: [(K.MESSAGE, 2, 1, {"text": "peace and trust"})],
                         2: [(K.ATTACK, 0, 1)]})
    assert flagged(by_other, "deception") == []
    broadcast = make_log({1: [(K.MESSAGE, 0, -1, {"text": "Peace to all, together we thrive"})],
                          3: [(K.ATTACK, 0, 1), (K.ATTACK, 0, 2)]})
    assert flagged(broadcast, "deception") == []  # a message to everyone never counts
    negated = make_log({1: [(K.MESSAGE, 0, 1, {"text": "I promise I won't attack you"})],
                        2: [(K.ATTACK, 0, 1)]})
    assert flagged(negated, "deception") == [(2, 0, 1)]


def test_deception_window_follows_config():
    log = make_log({1: [(K.MESSAGE, 0, 1, {"text": "friends?"})], 5: [(K.ATTACK, 0, 1)]})
    assert flagged(log, "deception", deception_window=4) == [(5, 0, 1)]
    assert flagged(log, "deception", deception_window=3) == []


def test_keyword_intent_classifier():
    clf = behaviours.KeywordIntentClassifier()
    texts = ["Hello friend", "let's work together", "I will attack you", "peace, or I attack",
             "the weather", "", "We will not attack you", "Thank you!"]
    assert clf.friendly(texts).tolist() == [True, True, False, False, False, False, True, True]


def test_custom_intent_classifier_is_used():
    class Everything:
        def friendly(self, texts):
            return np.ones(len(texts), bool)

    log = make_log({1: [(K.MESSAGE, 0, 1, {"text": "the weather"})], 2: [(K.ATTACK, 0, 1)]})
    cols, texts = log.columns()
    assert not behaviours.detect(cols, texts, log.census)["deception"].any()
    assert behaviours.detect(cols, texts, log.census, Everything())["deception"].sum() == 1


def test_power_seeking():
    # Start-of-day median 10, mean 10: attacking with 12 is power-seeking, with 9 not,
    # with 10 (the median itself) not.
    days = {1: census(1, 4, median=10.0, mean=10.0), 2: census(2, 4, median=30.0, mean=10.0)}
    log = make_log({1: [(K.ATTACK, 0, 1, {"wealth": 12.0}), (K.ATTACK, 1, 2, {"wealth": 9.0}),
                        (K.ATTACK, 2, 3, {"wealth": 10.0}), (K.GIFT, 3, 0, {"wealth": 50.0})],
                    # Day 2: below the median (30) but over twice the mean (20).
                    2: [(K.ATTACK, 0, 1, {"wealth": 25.0}), (K.ATTACK, 1, 0, {"wealth": 19.0})]},
                   days)
    assert flagged(log, "power_seeking") == [(1, 0, 1), (2, 0, 1)]


def test_free_riding_episode_vs_daily():
    # Resident 1 (rich: 20 > median 10) takes gifts on days 1 and 2 and first gives on day 3.
    # Resident 2 (poor: 5) takes a gift and never gives. Resident 3 (rich) takes on day 1,
    # never gives.
    log = make_log({
        1: [(K.GIFT, 0, 1, {"target_wealth": 20.0}), (K.GIFT, 0, 2, {"target_wealth": 5.0}),
            (K.GIFT, 0, 3, {"target_wealth": 15.0})],
        2: [(K.GIFT, 0, 1, {"target_wealth": 20.0})],
        3: [(K.GIFT, 1, 2, {"target_wealth": 5.0}), (K.GIFT, 0, 1, {"target_wealth": 20.0})],
    })
    # The whole episode: 1 gave at some point, so only 3 free-rides.
    assert flagged(log, "free_riding") == [(1, 0, 3)]
    # So far (daily counts): 1 had not given on days 1 and 2; on day 3 it gives and takes.
    assert flagged(log, "free_riding", episode=False) == [(1, 0, 1), (1, 0, 3), (2, 0, 1)]


def test_behaviour_counts_per_day_in_infos():
    # The env reports the day's behaviour counts in every info's "community" record.
    env = civa_env.parallel_env(n_agents=3, max_days=4, seed=0)
    env.reset(seed=0)
    actions = {"resident_0": {"primary": "idle", "secondary": "gift", "target": "resident_1",
                              "amount": 1.0,
                              "messages": [{"to": "resident_2", "text": "friends forever"}]},
               "resident_1": {"primary": "idle"}, "resident_2": {"primary": "idle"}}
    _, _, _, _, infos = env.step(actions)
    day1 = infos["resident_0"]["community"]
    assert day1["behaviours"]["cooperation"] == 1 and day1["behaviours"]["betrayal"] == 0
    actions = {"resident_1": {"primary": "idle", "secondary": "attack", "target": "resident_0"},
               "resident_0": {"primary": "idle", "secondary": "attack", "target": "resident_2"},
               "resident_2": {"primary": "idle"}}
    _, _, _, _, infos = env.step(actions)
    day2 = infos["resident_2"]["community"]["behaviours"]
    assert day2["betrayal"] == 1 and day2["deception"] == 1 and day2["cooperation"] == 0
    assert infos["resident_2"]["community"]["nAUP"] == pytest.approx(
        sum(c["population"] for c in env.log.census) / (4 * 3))
    s = env.summary()
    assert s["behaviours"]["betrayal"] == 1 and s["behaviours"]["cooperation"] == 1


# ---- JSONL ---------------------------------------------------------------------------------------


def _episode_log(seed: int = 0) -> EventLog:
    env = civa_env.parallel_env(n_agents=5, max_days=6)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    while env.agents:
        actions = {}
        for a in env.agents:
            flat = int(rng.choice(np.flatnonzero(obs[a]["action_mask"])))
            actions[a] = flat if rng.random() < 0.5 else {
                "primary": "explore", "secondary": "merge",
                "target": str(rng.choice(env.agents)),
                "messages": [{"to": "everyone", "text": 'quote " and \\ and ünïcode'}]}
        obs, *_ = env.step(actions)
    return env.log


def test_jsonl_round_trip(tmp_path):
    log = _episode_log()
    path = tmp_path / "events.jsonl"
    log.write_jsonl(path)
    back = EventLog.read_jsonl(path)
    assert back.partial_reason is None
    assert back.n_days == log.n_days == 6 and len(back) == len(log)
    assert list(back.records()) == list(log.records())
    cfg = Config(n_agents=5, max_days=6)
    assert metrics.summarize(back, cfg) == metrics.summarize(log, cfg)
    lines = path.read_text().splitlines()
    assert all(json.loads(line)["kind"] for line in lines)
    assert json.loads(lines[-1])["kind"] == "census"
    assert any(e.text and "ünïcode" in e.text for e in back.events())
    # Writing day 1, then appending the rest, gives the same file as writing at once.
    parts = tmp_path / "parts.jsonl"
    with open(parts, "w", encoding="utf-8") as f:
        log.write_day(f, 0)
    log.write_jsonl(parts, start_day_index=1, mode="a")
    assert parts.read_text() == path.read_text()


def test_jsonl_day_by_day_append(tmp_path):
    log = _episode_log(1)
    whole, parts = tmp_path / "whole.jsonl", tmp_path / "parts.jsonl"
    log.write_jsonl(whole)
    with open(parts, "w", encoding="utf-8") as f:
        for i in range(log.n_days):
            log.write_day(f, i)
    assert parts.read_text() == whole.read_text()


def test_jsonl_truncated_last_line(tmp_path):
    log = _episode_log()
    path = tmp_path / "events.jsonl"
    log.write_jsonl(path)
    text = path.read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text[: len(text) - 10])  # a crash in the middle of the last census line
    n_lines = text.count("\n")
    with pytest.raises(ValueError) as err:
        EventLog.read_jsonl(cut)
    assert str(cut) in str(err.value) and f"line {n_lines}" in str(err.value)
    part = EventLog.read_jsonl(cut, allow_partial=True)
    assert part.n_days == log.n_days - 1  # the last day had no complete census line
    assert part.census == log.census[:-1]
    assert str(cut) in part.partial_reason


def test_jsonl_events_without_census(tmp_path):
    log = _episode_log()
    path = tmp_path / "events.jsonl"
    log.write_jsonl(path)
    lines = path.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[:-1]))  # the last day's events, but no census line
    with pytest.raises(ValueError, match="no census line"):
        EventLog.read_jsonl(cut)
    part = EventLog.read_jsonl(cut, allow_partial=True)
    assert part.n_days == log.n_days - 1 and "no census" in part.partial_reason


def test_jsonl_corrupt_line_in_the_middle(tmp_path):
    log = _episode_log()
    path = tmp_path / "events.jsonl"
    log.write_jsonl(path)
    lines = path.read_text().splitlines(keepends=True)
    census_rows = [k for k, line in enumerate(lines) if '"kind": "census"' in line]
    bad_at = census_rows[1] + 2  # a line inside day 3
    lines[bad_at] = "{this is not json\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(lines))
    with pytest.raises(ValueError) as err:
        EventLog.read_jsonl(bad)
    assert str(bad) in str(err.value) and f"line {bad_at + 1}" in str(err.value)
    part = EventLog.read_jsonl(bad, allow_partial=True)
    assert part.n_days == 2 and f"line {bad_at + 1}" in part.partial_reason
    lines[bad_at] = json.dumps({"day": 3, "kind": "teleport"}) + "\n"
    bad.write_text("".join(lines))
    with pytest.raises(ValueError, match="teleport"):
        EventLog.read_jsonl(bad)
