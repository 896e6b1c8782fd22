"""LLM behaviour diagnostics on hand-made answers, against known answers and a random resident."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from civa_env.policies.llm import schema as sch
from civa_env.policies.llm.diagnostics import (
    Diagnostics,
    entropy_bits,
    random_answer,
    warnings,
)

PROMPT = ("You are a resident of a small community. Each day you may work at a factory you "
          "know, explore to find a new one, or rest. Answer with one JSON object and nothing "
          "else. Day 4. You see resident_2, resident_5 and resident_9.")
LEGAL = {"factories": [3, 1, 4], "targets": ["resident_2", "resident_5", "resident_9"],
         "allies": [], "wealth": 12.0, "can_upgrade": True, "max_messages": 2,
         "max_message_chars": 160}
LIMITS = {"reflection_chars": 200, "plan_chars": 160, "memory_chars": 300, "message_chars": 160}
KEYS = ["reflection", "messages", "primary", "secondary", "memory"]


def answer(primary: str = "idle", secondary: str = "none", **extra) -> dict:
    out = {"primary": primary, "secondary": secondary}
    out.update(extra)
    return out


def test_echo_is_a_copied_span_not_original_text():
    diag = Diagnostics()
    copied = "I think: answer with one JSON object and nothing else, as told."
    diag.add(PROMPT, answer(reflection=copied), LEGAL)
    assert diag.summary()["echo_rate"] == 1.0
    fresh = Diagnostics()
    fresh.add(PROMPT, answer(reflection="Resident 5 looks poor; I will share some food with "
                             "them tomorrow if the factory pays well."), LEGAL)
    fresh.add(PROMPT, answer(memory="work factory you know"), LEGAL)  # 4 words: too short
    assert fresh.summary()["echo_rate"] == 0.0
    # A message text counts as free text; case and punctuation do not hide a copy.
    msg = Diagnostics()
    msg.add(PROMPT, answer(messages=[{"to": "everyone", "text": "EACH DAY you may work, at a "
                                      "factory you know!"}]), LEGAL)
    assert msg.summary()["echo_rate"] == 1.0
    # Answers without free text are not counted either way.
    none = Diagnostics()
    none.add(PROMPT, answer(), LEGAL)
    assert none.summary()["echo_rate"] is None and none.summary()["answers_with_text"] == 0


def test_duplicate_message_rate():
    diag = Diagnostics()
    assert diag.summary()["duplicate_message_rate"] is None
    texts = ["Hello all", "hello   ALL", "Let us work together", "Hello all"]
    for t in texts:
        diag.add(PROMPT, answer(messages=[{"to": "everyone", "text": t}]), LEGAL)
    diag.add(PROMPT, answer(messages=[]), LEGAL)
    s = diag.summary()
    assert s["messages"] == 4
    assert s["duplicate_message_rate"] == pytest.approx(1 - 2 / 4)  # 2 distinct of 4


def test_first_option_rate_against_chance():
    diag = Diagnostics()
    legal2 = dict(LEGAL, factories=[7, 2])
    seq = [(answer("work", factory=3), LEGAL),                        # first of 3 factories
           (answer("work", factory=4), LEGAL),                        # not first
           (answer("upgrade_factory", factory=2), legal2),            # not first of 2
           (answer("explore", "attack", target="resident_2"), LEGAL),  # first of 3 targets
           (answer("idle"), LEGAL)]                                   # no option choice
    for fields, legal in seq:
        diag.add(PROMPT, fields, legal)
    s = diag.summary()
    assert s["option_choices"] == 4
    assert s["first_option_rate"] == pytest.approx(2 / 4)
    assert s["chance_rate"] == pytest.approx((1 / 3 + 1 / 3 + 1 / 2 + 1 / 3) / 4)
    # merge cannot name an ally: the first option is the first listed stranger.
    allied = dict(LEGAL, allies=["resident_2"])
    merge = Diagnostics()
    merge.add(PROMPT, answer("idle", "merge", target="resident_5"), allied)
    assert merge.summary()["first_option_rate"] == 1.0
    assert merge.summary()["chance_rate"] == pytest.approx(1 / 2)


def test_entropy_of_uniform_and_constant_sequences():
    assert entropy_bits([5, 5, 5, 5]) == pytest.approx(2.0)
    assert entropy_bits([9]) == 0.0 and entropy_bits([]) == 0.0
    uniform = Diagnostics()
    for kind, factory in (("work", 3), ("explore", None), ("idle", None), ("upgrade_self", None)):
        fields = answer(kind, factory=factory) if factory else answer(kind)
        uniform.add(PROMPT, fields, LEGAL)
    entropy = uniform.summary()["action_entropy"]
    assert entropy["primary"] == pytest.approx(2.0)
    assert entropy["secondary"] == 0.0 and entropy["pair"] == pytest.approx(2.0)
    constant = Diagnostics()
    for _ in range(5):
        constant.add(PROMPT, answer("work", factory=1), LEGAL)
    assert constant.summary()["action_entropy"] == {"primary": 0.0, "secondary": 0.0,
                                                    "pair": 0.0}
    assert constant.summary()["primary_shares"] == {"work": 1.0}
    assert Diagnostics().summary()["action_entropy"] is None


def test_random_answers_are_valid_and_follow_the_legal_facts():
    rng = np.random.default_rng(0)
    allies = {"resident_9"}
    legal = dict(LEGAL, allies=sorted(allies))
    seen = set()
    for _ in range(300):
        a = random_answer(legal, rng)
        seen.add((a["primary"], a["secondary"]))
        wire = {"primary": {"kind": a["primary"], **({"factory": a["factory"]}
                                                     if "factory" in a else {})},
                "secondary": {"kind": a["secondary"],
                              **{k: (int(a[k]) if k == "amount" else a[k])
                                 for k in ("target", "amount") if k in a}}}
        checked = sch.check_answer(wire, ["primary", "secondary"], legal, allies, LIMITS)
        assert checked == a
    assert {p for p, _ in seen} == {"work", "explore", "idle", "upgrade_self", "upgrade_factory"}
    assert {s for _, s in seen} == {"none", "gift", "attack", "merge"}
    poor = {"factories": [], "targets": [], "allies": [], "wealth": 0.4, "can_upgrade": False}
    kinds = {random_answer(poor, rng)["primary"] for _ in range(50)}
    assert kinds == {"explore", "idle"}
    assert all(random_answer(poor, rng)["secondary"] == "none" for _ in range(20))


def test_reference_first_option_rate_is_close_to_its_chance_rate():
    diag = Diagnostics(seed=7)
    legal_many = dict(LEGAL, factories=list(range(6)),
                      targets=[f"resident_{k}" for k in range(1, 9)])
    for k in range(3000):
        diag.add(PROMPT, answer("work", factory=0), LEGAL if k % 2 else legal_many)
    ref = diag.summary()["reference"]
    assert ref["echo_rate"] is None and ref["duplicate_message_rate"] is None
    assert ref["decisions"] == 3000 and ref["option_choices"] > 1000
    assert ref["first_option_rate"] == pytest.approx(ref["chance_rate"], abs=0.03)
    # Seeded: the same answers give the same reference; clear() replays it.
    again = Diagnostics(seed=7)
    for k in range(3000):
        again.add(PROMPT, answer("work", factory=0), LEGAL if k % 2 else legal_many)
    assert again.summary() == diag.summary()
    again.clear()
    assert again.summary()["answers"] == 0


def degenerate_run() -> Diagnostics:
    diag = Diagnostics()
    for _ in range(40):
        diag.add(PROMPT, answer("work", "attack", factory=3, target="resident_2",
                                reflection="Each day you may work at a factory you know.",
                                messages=[{"to": "everyone", "text": "Hello everyone"}]),
                 LEGAL)
    return diag


def varied_run() -> Diagnostics:
    diag = Diagnostics()
    rng = np.random.default_rng(3)
    for k in range(40):
        fields = random_answer(LEGAL, rng)
        fields["reflection"] = f"Day {k}: resident {k % 7} was kind, I keep {k * 3} coins."
        fields["messages"] = [{"to": "everyone", "text": f"Trade offer number {k}"}]
        diag.add(PROMPT, fields, LEGAL)
    return diag


def test_warnings_fire_on_a_degenerate_run_and_not_on_a_varied_one():
    summary = degenerate_run().summary()
    lines = warnings(summary)
    assert len(lines) == 4
    text = " ".join(lines)
    assert "were work" in text and "first option" in text
    assert "repeat an earlier text" in text and "echoing" in text
    assert warnings(varied_run().summary()) == []
    # Too few decisions to judge: no warning.
    small = Diagnostics()
    small.add(PROMPT, answer("work", factory=3), LEGAL)
    assert warnings(small.summary()) == []
    assert warnings(small.summary()["reference"]) == []


def test_summary_is_json_serialisable_plain_values():
    for diag in (degenerate_run(), varied_run(), Diagnostics()):
        s = diag.summary()
        assert json.loads(json.dumps(s, allow_nan=False)) == s

        def plain(v):
            if isinstance(v, dict):
                return all(isinstance(k, str) and plain(x) for k, x in v.items())
            return v is None or type(v) in (int, float, str, bool) and (
                not isinstance(v, float) or math.isfinite(v))
        assert plain(s)
