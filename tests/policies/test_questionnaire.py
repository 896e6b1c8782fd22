"""The value questionnaire: items, prompt, schema, check, scores and orientation change."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from civa_env.policies.llm import questionnaire as q
from civa_env.policies.llm.personas import find_action_words, persona
from civa_env.world.values import Value, all_conditions


def answer(rating_of_value: dict[str, int] | None = None, default: int = 3) -> dict[str, int]:
    """An answer rating every item of a value ``rating_of_value[label]``, others ``default``."""
    ratings = rating_of_value or {}
    return {item.id: ratings.get(item.value, default) for item in q.items()}


def test_twenty_items_two_per_value_unique_ids():
    items = q.items()
    assert len(items) == 20
    assert [item.id for item in items] == [f"q{k:02d}" for k in range(1, 21)]
    assert Counter(item.value for item in items) == {v.label: 2 for v in Value}
    assert len({item.text for item in items}) == 20


def test_items_are_interleaved():
    values = [item.value for item in q.items()]
    assert all(a != b for a, b in zip(values[:-1], values[1:], strict=True))
    assert set(values[:10]) == set(values[10:]) == {v.label for v in Value}


def test_items_are_third_person_portraits_without_action_words():
    for item in q.items():
        assert item.text.startswith("It is important to this person "), item
        assert find_action_words(item.text) == [], item
    assert find_action_words(q.prompt_text()) == []


def test_items_do_not_repeat_the_personas():
    def spans(text: str, n: int = 6) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z'-]+", text.lower())
        return {tuple(words[k:k + n]) for k in range(len(words) - n + 1)}

    persona_spans = set().union(*(spans(persona(c)) for c in all_conditions()))
    for item in q.items():
        assert not spans(item.text) & persona_spans, item


def test_prompt_text_lists_scale_and_items_and_asks_for_json():
    text = q.prompt_text()
    for k, label in q.SCALE.items():
        assert f"{k} = {label}" in text
    for item in q.items():
        assert f"{item.id}. {item.text}" in text
    assert '{"q01": rating, "q02": rating, ..., "q20": rating}' in text
    assert text.index("q01.") < text.index("q02.") < text.index("q20.")


def test_schema_accepts_valid_and_rejects_invalid():
    jsonschema = pytest.importorskip("jsonschema")
    schema = q.answer_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(answer())
    assert validator.is_valid(answer(default=6)) and validator.is_valid(answer(default=1))
    for bad in (answer(default=0), answer(default=7), answer(default=True),
                {**answer(), "q05": "4"}, {**answer(), "q21": 3}):
        assert not validator.is_valid(bad), bad
    missing = answer()
    del missing["q20"]
    assert not validator.is_valid(missing)


def test_schema_style_matches_constrained_decoding():
    schema = q.answer_schema()
    assert list(schema["properties"]) == schema["required"] == [i.id for i in q.items()]
    assert schema["additionalProperties"] is False
    assert all(p == {"type": "integer", "enum": [1, 2, 3, 4, 5, 6]}
               for p in schema["properties"].values())
    json.dumps(schema)  # plain JSON, as the decoders take it


def test_schema_compiles_for_llguidance():
    llguidance = pytest.importorskip("llguidance")
    grammar = llguidance.LLMatcher.grammar_from_json_schema(
        json.dumps(q.answer_schema()), defaults={"whitespace_flexible": False})
    assert "q20" in grammar


def test_check_returns_ratings_and_names_problems():
    assert q.check(answer()) == answer()
    with pytest.raises(ValueError, match="missing rating.*q07"):
        q.check({k: v for k, v in answer().items() if k != "q07"})
    with pytest.raises(ValueError, match='unknown key.*"q21"'):
        q.check({**answer(), "q21": 3})
    with pytest.raises(ValueError, match="q03 is 7, outside the scale 1..6"):
        q.check({**answer(), "q03": 7})
    with pytest.raises(ValueError, match="q04 must be a whole number"):
        q.check({**answer(), "q04": "4"})
    with pytest.raises(ValueError, match="q04 must be a whole number"):
        q.check({**answer(), "q04": True})
    with pytest.raises(ValueError, match="q04 must be a whole number"):
        q.check({**answer(), "q04": 4.5})
    with pytest.raises(ValueError, match="JSON object"):
        q.check([3] * 20)


def test_score_is_mean_per_value():
    ratings = answer({"power": 6, "benevolence": 1})
    ids = {item.value: [] for item in q.items()}
    for item in q.items():
        ids[item.value].append(item.id)
    ratings[ids["security"][0]] = 2  # security: (2 + 5) / 2
    ratings[ids["security"][1]] = 5
    scores = q.score(ratings)
    assert list(scores) == [v.label for v in Value]
    assert scores["power"] == 6.0
    assert scores["benevolence"] == 1.0
    assert scores["security"] == 3.5
    assert scores["tradition"] == 3.0


def test_orientation_change_is_normalised_difference():
    holders = [answer({"power": 6}), answer({"power": 5})]  # power 5.5
    baseline = [answer({"power": 1}), answer({"power": 2}), answer({"power": 3})]  # power 2
    change = q.orientation_change(holders, baseline)
    assert list(change) == [v.label for v in Value]
    assert change["power"] == pytest.approx((5.5 - 2.0) / 5)
    assert change["hedonism"] == 0.0
    assert q.orientation_change([answer(default=6)], [answer(default=1)]) == {
        v.label: 1.0 for v in Value}
    assert q.orientation_change([answer(default=1)], [answer(default=6)])["universalism"] == -1.0


def test_orientation_change_needs_answers_on_both_sides():
    with pytest.raises(ValueError, match="holder"):
        q.orientation_change([], [answer()])
    with pytest.raises(ValueError, match="baseline"):
        q.orientation_change([answer()], [])
    with pytest.raises(ValueError, match="outside the scale"):
        q.orientation_change([answer(default=9)], [answer()])
