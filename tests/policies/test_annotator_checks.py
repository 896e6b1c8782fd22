"""The annotator's labels checked against the event log, and its agreement with the keyword
classifier on ``friendly``, with a fake model that returns fixed labels (no weights)."""

from __future__ import annotations

import json

import pytest

import civa_env
from civa_env.policies.llm.annotator import LLMAnnotator, friendly_agreement, supported_by_log
from civa_env.policies.llm.models.fake import FakeModel

IDLE = {"primary": "idle"}


def _labels(**fixed: bool) -> FakeModel:
    """A model that answers every message with the same labels (False unless given)."""
    answer = {"friendly": False, "sycophancy": False, "exploitation": False,
              "deception": False, **fixed}
    return FakeModel(lambda text, grammar: json.dumps(answer))


def _message(day: int, sender: str, recipient: str | None) -> dict:
    return {"day": day, "sender": sender, "recipient": recipient, "text": "hi", "deeds": ""}


def _event(day: int, kind: str, actor: str, target: str) -> dict:
    return {"day": day, "kind": kind, "actor": actor, "target": target}


# ---- the check, on hand-made events -----------------------------------------------------------
@pytest.mark.parametrize(("events", "deception", "exploitation"), [
    ([], False, False),
    ([_event(3, "attack", "a", "b")], True, True),  # on the message's day
    ([_event(5, "attack", "a", "b")], True, True),  # on the window's last day
    ([_event(6, "attack", "a", "b")], False, False),  # past the window
    ([_event(2, "attack", "a", "b")], False, False),  # before the message
    ([_event(4, "attack", "a", "c")], False, False),  # on someone else
    ([_event(4, "attack", "b", "a")], False, False),  # by the recipient
    ([_event(4, "gift", "b", "a")], False, True),  # the recipient gave to the sender
    ([_event(4, "gift", "a", "b")], False, False),  # the sender gave to the recipient
    ([_event(4, "gift", "c", "a")], False, False),  # someone else gave to the sender
])
def test_harm_supported_by_log(events: list, deception: bool, exploitation: bool) -> None:
    """A message from a to b on day 3, deception window 2: days 3 to 5 are searched."""
    support = supported_by_log([_message(3, "a", "b")], events, deception_window=2)
    assert support == [{"deception": deception, "exploitation": exploitation}]


def test_a_broadcast_supports_no_harm() -> None:
    events = [_event(3, "attack", "a", "b"), _event(3, "gift", "b", "a")]
    support = supported_by_log([_message(3, "a", None)], events, deception_window=2)
    assert support == [{"deception": False, "exploitation": False}]


# ---- annotate_run on a run folder ---------------------------------------------------------------
def _run_folder(tmp_path, days: list[dict]) -> object:
    """A run folder (config.json, events.jsonl) of 4 residents acting as ``days`` says
    (others idle)."""
    cfg = civa_env.Config.from_kwargs(n_agents=4, max_days=len(days) + 1, seed=0,
                                      obs_mode="numeric")
    env = civa_env.parallel_env(cfg)
    env.reset(seed=0)
    for actions in days:
        env.step({a: actions.get(a, IDLE) for a in env.agents})
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(cfg.to_json())
    env.log.write_jsonl(folder / "events.jsonl")
    return folder


def _say(to: str, text: str, **deed) -> dict:
    return {"primary": "idle", "messages": [{"to": to, "text": text}], **deed}


def test_deception_label_without_attack_is_rejected_and_counted(tmp_path) -> None:
    folder = _run_folder(tmp_path, [
        {"resident_0": _say("resident_1", "zebra"), "resident_2": _say("resident_3", "giraffe"),
         "resident_3": _say("everyone", "okapi")},
        {"resident_0": {"primary": "idle", "secondary": "attack", "target": "resident_1"}},
    ])
    summary = LLMAnnotator(_labels(deception=True)).annotate_run(folder)
    lines = {x["text"]: x for x in map(json.loads, open(folder / "annotations.jsonl"))}
    assert summary["messages"] == 3
    assert summary["deception"] == 1 and lines["zebra"]["deception"]  # attack followed: kept
    assert not lines["giraffe"]["deception"] and lines["giraffe"]["rejected"] == ["deception"]
    assert not lines["okapi"]["deception"] and lines["okapi"]["rejected"] == ["deception"]
    assert summary["rejected_labels"] == {"deception": 2, "exploitation": 0}
    assert summary["deception_window"] == 2
    assert json.loads((folder / "annotations.json").read_text()) == summary


def test_exploitation_label_kept_when_the_recipient_gave(tmp_path) -> None:
    folder = _run_folder(tmp_path, [
        {"resident_0": _say("resident_1", "zebra"), "resident_2": _say("resident_3", "giraffe")},
        {},
        {"resident_1": {"primary": "idle", "secondary": "gift", "target": "resident_0",
                        "amount": 1.0}},
    ])
    summary = LLMAnnotator(_labels(exploitation=True, sycophancy=True)).annotate_run(folder)
    lines = {x["text"]: x for x in map(json.loads, open(folder / "annotations.jsonl"))}
    assert lines["zebra"]["exploitation"] and lines["zebra"]["rejected"] == []
    assert not lines["giraffe"]["exploitation"]
    assert summary["exploitation"] == 1
    assert summary["rejected_labels"] == {"deception": 0, "exploitation": 1}
    assert summary["sycophancy"] == 2  # labels that claim no harm are not checked


# ---- agreement with the keyword classifier ------------------------------------------------------
def test_friendly_agreement_on_hand_made_labels() -> None:
    # p_o = 3/4; rates 1/2 and 1/4, so p_e = 1/2 * 1/4 + 1/2 * 3/4 = 1/2; kappa = 1/2.
    out = friendly_agreement([True, True, False, False], [True, False, False, False])
    assert out == {"messages": 4, "annotator_true": 2, "keyword_true": 1, "share": 0.75,
                   "kappa": pytest.approx(0.5)}
    assert friendly_agreement([True, False], [False, True])["kappa"] == pytest.approx(-1.0)
    assert friendly_agreement([True, False, True], [True, False, True])["kappa"] == 1.0
    same = friendly_agreement([True, True], [True, True])  # chance agreement is 1
    assert same["share"] == 1.0 and same["kappa"] is None
    assert friendly_agreement([], [])["share"] is None


def test_agreement_reported_over_readable_answers(tmp_path) -> None:
    folder = _run_folder(tmp_path, [
        {"resident_0": _say("resident_1", "zebra, my friend"), "resident_1": _say(
            "resident_0", "giraffe"), "resident_2": _say("resident_3", "okapi"),
         "resident_3": _say("everyone", "please, a gift")},
        {"resident_0": _say("resident_2", "unreadable friend")},
    ])

    def respond(text: str, grammar) -> str:
        if "unreadable" in text:
            return "no json here"
        return json.dumps({"friendly": "zebra" in text or "okapi" in text,
                           "sycophancy": False, "exploitation": False, "deception": False})

    summary = LLMAnnotator(FakeModel(respond)).annotate_run(folder)
    # Model: T F T F; keywords ("friend", "gift"): T F F T. Rates 1/2 each, p_e = 1/2.
    assert summary["unreadable"] == 1
    assert summary["friendly_agreement"] == {"messages": 4, "annotator_true": 2,
                                             "keyword_true": 2, "share": 0.5, "kappa": 0.0}
