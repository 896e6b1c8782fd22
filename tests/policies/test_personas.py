"""Value personas (v2) and the v1 prompts they replace; docs/prompts.md kept in step."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import pytest

from civa_env.policies.llm import personas
from civa_env.policies.llm.personas import (
    VALUE_PROMPT_VERSIONS,
    find_action_words,
    persona,
)
from civa_env.world.values import Value, ValueCondition, all_conditions, prompt_for

DOC = Path(__file__).resolve().parents[2] / "docs" / "prompts.md"
VALUE_CONDITIONS = [c for c in all_conditions() if c != "baseline"]


@pytest.mark.parametrize("word", ["gives", "working", "attacked", "upgrading", "explores",
                                  "merged", "idles", "rested", "Work", "gift", "gave", "given",
                                  "forgiving", "teamwork", "exploration", "helpful", "shared",
                                  "fought", "stealing", "ally", "allies", "alliance"])
def test_action_word_regex_catches_forms(word):
    assert find_action_words(f"They {word} today.") == [word]


@pytest.mark.parametrize("word", ["important", "all", "really", "world", "ideas", "interest",
                                  "worth", "finally", "forest"])
def test_action_word_regex_leaves_other_words(word):
    assert find_action_words(f"The {word} of it.") == []


def test_v2_texts_have_no_action_words():
    for condition in all_conditions():
        text = persona(condition)
        assert find_action_words(text) == [], (condition, text)


def test_every_condition_has_text():
    assert len(all_conditions()) == 21
    for condition in all_conditions():
        assert persona(condition).strip(), condition
    for condition in VALUE_CONDITIONS:
        assert persona(condition, "v1").strip(), condition


def test_with_and_without_are_symmetric():
    for value in Value:
        with_text = persona(f"with:{value.label}")
        without_text = persona(f"without:{value.label}")
        assert abs(len(with_text) - len(without_text)) <= 0.2 * max(len(with_text),
                                                                    len(without_text))
        assert "is very important to you." in with_text
        assert "is not important to you at all." in without_text
        assert with_text.count("It is important to you") == 3
        assert without_text.count("It is not important to you") == 3
        # The same statements, negated: removing the negations gives the with-text's body.
        body = without_text.replace(" not important to you at all.", " very important to you.")
        body = body.replace("It is not important", "It is important")
        assert body.rsplit(". ", 1)[0] == with_text.rsplit(". ", 1)[0]


def test_placebo_is_as_long_as_the_personas():
    others = mean(len(persona(c)) for c in VALUE_CONDITIONS)
    placebo = persona("baseline")
    assert placebo == personas.PLACEBO
    assert abs(len(placebo) - others) <= 0.2 * others
    for value in Value:
        assert value.label not in placebo.lower()


def test_v1_is_values_prompt_for():
    for condition in all_conditions():
        assert persona(condition, "v1") == prompt_for(ValueCondition.parse(condition).code)
    assert persona("baseline", "v1") == ""


def test_accepts_parsed_conditions():
    parsed = ValueCondition.parse("without:power")
    assert persona(parsed) == persona("without:power") == persona(" Without:Power ")


def test_unknown_version_and_condition_name_the_known_ones():
    with pytest.raises(ValueError, match="v1, v2"):
        persona("baseline", "v3")
    with pytest.raises(ValueError, match="with:<value>.*benevolence"):
        persona("with:kindness")
    with pytest.raises(ValueError, match="baseline"):
        persona("sometimes:power")
    assert VALUE_PROMPT_VERSIONS == ("v1", "v2")


def test_doc_holds_every_v2_persona_verbatim():
    doc = DOC.read_text(encoding="utf-8")
    for condition in all_conditions():
        assert persona(condition) in doc, condition


def test_doc_blocks_are_up_to_date():
    doc = DOC.read_text(encoding="utf-8")
    for name, content in personas.blocks().items():
        assert personas.block_in(doc, name) == content, (
            f"docs/prompts.md block {name!r} is stale: run "
            "python -m civa_env.policies.llm.personas --write docs/prompts.md")
    assert personas.rewrite(doc) == doc
    assert "## Phase prompts" in doc


def test_markdown_cli(capsys):
    assert personas.main(["--markdown"]) == 0
    out = capsys.readouterr().out
    assert persona("with:tradition") in out
    assert "<!-- generated: questionnaire" in out
