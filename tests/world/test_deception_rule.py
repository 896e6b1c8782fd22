"""The deception rule on hand-built logs: an attack is deceptive when the attacker sent the
victim a friendly message addressed to it (recipient == the victim) on the attack's day or in
the ``deception_window`` days before; a friendly broadcast, or a friendly message to someone
else, does not count. Both ``detect`` and ``DailyCounts`` are checked."""

from __future__ import annotations

import numpy as np
import pytest

from civa_env.world import behaviours
from civa_env.world.events import DayEvents, EventLog
from civa_env.world.kinds import K

FRIENDLY = "Hello friend, I trust you and will not attack you."
NEUTRAL = "Factory 2 pays well today."
EVERYONE = -1
N = 4  # residents 0..3


def _log(days: list[list[tuple]], n_days: int) -> EventLog:
    """A log of ``n_days`` days; ``days[d]`` lists (kind, actor, target, text) of day d."""
    log = EventLog()
    for d in range(n_days):
        events = DayEvents(d)
        for kind, actor, target, text in (days[d] if d < len(days) else []):
            events.add(kind, [actor], target, wealth=10.0, target_wealth=10.0,
                       texts=None if text is None else [text])
        log.append(events, {"day": d, "wealth_median_start": 10.0, "wealth_mean_start": 10.0})
    return log


def _deceptions(log: EventLog, deception_window: int = 2) -> tuple[int, int]:
    """Deceptive attacks by ``detect`` over the log, and by ``DailyCounts`` day by day."""
    cols, texts = log.columns()
    masks = behaviours.detect(cols, texts, log.census, deception_window=deception_window,
                              episode=False)
    daily = behaviours.DailyCounts(recent_days=3, deception_window=deception_window)
    total = 0
    for census in log.census:
        rows = np.flatnonzero(cols["day"] == census["day"])  # the log's rows are in day order
        day_cols = {k: v[rows] for k, v in cols.items()}
        day_texts = {int(r - rows[0]): texts[int(r)] for r in rows if int(r) in texts}
        total += daily.day(day_cols, day_texts, census, np.zeros(N, bool))["deception"]
    return int(masks["deception"].sum()), total


def _message(sender: int, recipient: int, text: str = FRIENDLY) -> tuple:
    return (K.MESSAGE, sender, recipient, text)


def _attack(attacker: int, victim: int) -> tuple:
    return (K.ATTACK, attacker, victim, None)


@pytest.mark.parametrize(("case", "days", "expected"), [
    ("broadcast, then attack", [[_message(0, EVERYONE)], [_attack(0, 1)]], 0),
    ("direct to the victim, then attack", [[_message(0, 1)], [_attack(0, 1)]], 1),
    ("direct to someone else, then attack", [[_message(0, 2)], [_attack(0, 1)]], 0),
    ("neutral direct message, then attack", [[_message(0, 1, NEUTRAL)], [_attack(0, 1)]], 0),
    ("direct from someone else, then attack", [[_message(2, 1)], [_attack(0, 1)]], 0),
    ("the victim wrote to the attacker", [[_message(1, 0)], [_attack(0, 1)]], 0),
    ("broadcast and direct, one attack", [[_message(0, EVERYONE), _message(0, 1)],
                                          [_attack(0, 1)]], 1),
    ("broadcast, attacks on two residents", [[_message(0, EVERYONE)],
                                             [_attack(0, 1), _attack(0, 2)]], 0),
    ("direct to one, attacks on two", [[_message(0, 1)], [_attack(0, 1), _attack(0, 2)]], 1),
    ("same day", [[_message(0, 1), _attack(0, 1)]], 1),
    ("attack before the message", [[_attack(0, 1)], [_message(0, 1)]], 0),
])
def test_deception_needs_a_friendly_message_to_the_victim(case: str, days: list,
                                                           expected: int) -> None:
    assert _deceptions(_log(days, 4)) == (expected, expected), case


@pytest.mark.parametrize("window", [0, 1, 2, 3])
def test_window_edges(window: int) -> None:
    """A message on day d - window counts for an attack on day d; one on d - window - 1 does
    not (a broadcast on the edge day does not either)."""
    on_edge = [[] for _ in range(window + 1)]
    on_edge[0] = [_message(0, 1), _message(2, EVERYONE)]
    on_edge[window].append(_attack(0, 1))
    on_edge[window].append(_attack(2, 1))
    assert _deceptions(_log(on_edge, window + 2), window) == (1, 1)
    past_edge = [[] for _ in range(window + 2)]
    past_edge[0] = [_message(0, 1)]
    past_edge[window + 1].append(_attack(0, 1))
    assert _deceptions(_log(past_edge, window + 3), window) == (0, 0)


def test_broadcasts_are_not_classified() -> None:
    """Only direct messages reach the intent classifier (an LLM classifier costs a call a
    message), in ``detect`` and in ``DailyCounts``."""
    seen: list[str] = []

    class Spy:
        def friendly(self, texts):
            seen.extend(texts)
            return np.ones(len(texts), bool)

    log = _log([[_message(0, EVERYONE, "to all"), _message(0, 1, "to one")],
                [_attack(0, 1)]], 2)
    cols, texts = log.columns()
    assert behaviours.detect(cols, texts, log.census, classifier=Spy())["deception"].sum() == 1
    assert seen == ["to one"]
    seen.clear()
    daily = behaviours.DailyCounts(3, 2, classifier=Spy())
    day0 = {k: v[:2] for k, v in cols.items()}
    daily.day(day0, {0: "to all", 1: "to one"}, log.census[0], np.zeros(N, bool))
    assert seen == ["to one"]
