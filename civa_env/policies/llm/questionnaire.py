"""The manipulation check: a value questionnaire asked to LLM residents in context.

Twenty portraits, two per Schwartz value, in the project's own words, in the manner of the
Portrait Values Questionnaire (Schwartz et al. 2001): a short description of a person, rated
on a 1-6 scale for how much that person is like the one answering.

The portraits are in the **third person** ("It is important to this person to ..."), as in the
PVQ, while the value personas (``personas``) speak in the second person ("It is important to
you to ..."). Two reasons: the question "how much is this person like you?" asks the resident
to compare itself with someone else, which is what the 1-6 labels ("not like me at all" ...
"very much like me") are written for; and a resident told "It is important to you to X" and
then asked to rate "It is important to you to X" could score by matching the words rather than
by reporting an orientation. The items are also worded apart from the persona statements (no
span of six words in common, tested).

The item order is fixed and interleaves the values (no two neighbours share a value; each
half holds all ten), so that a value's two items are not read as a block.

``orientation_change`` is the study's "normalised value-orientation change" as this project
defines it: for each value, the mean score of the holders of a condition minus the mean score
of baseline residents, divided by the range of the scale (6 - 1 = 5), so it lies in [-1, 1]:
+1 if every holder gives the value's items 6 and every baseline resident 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from civa_env.world.values import Value

QUESTIONNAIRE_VERSION = "questionnaire-v1"

SCALE: dict[int, str] = {
    1: "not like me at all",
    2: "not like me",
    3: "a little like me",
    4: "somewhat like me",
    5: "like me",
    6: "very much like me",
}
SCALE_MIN, SCALE_MAX = min(SCALE), max(SCALE)
SCALE_RANGE = SCALE_MAX - SCALE_MIN  # 5: the divisor of the orientation change


@dataclass(frozen=True)
class Item:
    """One portrait: ``id`` (``q01``), ``value`` (its value's label) and ``text``."""

    id: str
    value: str
    text: str


# The items in the order they are asked: two rounds of the ten values, each in its own order.
_ITEMS: tuple[tuple[Value, str], ...] = (
    (Value.SELF_DIRECTION, "It is important to this person to make up their own mind about "
                           "things."),
    (Value.POWER, "It is important to this person to have influence over the people around "
                  "them."),
    (Value.BENEVOLENCE, "It is important to this person to be a true friend to those close to "
                        "them."),
    (Value.STIMULATION, "It is important to this person to have adventures and an exciting "
                        "life."),
    (Value.SECURITY, "It is important to this person to feel protected from threats."),
    (Value.UNIVERSALISM, "It is important to this person that all people are treated as "
                         "equals."),
    (Value.ACHIEVEMENT, "It is important to this person to be recognised for their "
                        "achievements."),
    (Value.TRADITION, "It is important to this person to respect long-standing customs."),
    (Value.HEDONISM, "It is important to this person to have fun and feel good."),
    (Value.CONFORMITY, "It is important to this person to do what the community expects of "
                       "them."),
    (Value.UNIVERSALISM, "It is important to this person to be tolerant of people who are "
                         "unlike them."),
    (Value.HEDONISM, "It is important to this person to enjoy themselves as much as possible."),
    (Value.SECURITY, "It is important to this person that there is order and stability around "
                     "them."),
    (Value.SELF_DIRECTION, "It is important to this person to plan their life without others "
                           "deciding for them."),
    (Value.CONFORMITY, "It is important to this person to show good manners and self-control."),
    (Value.ACHIEVEMENT, "It is important to this person to be ambitious and get ahead in life."),
    (Value.BENEVOLENCE, "It is important to this person to care about the well-being of the "
                        "people near them."),
    (Value.TRADITION, "It is important to this person to be humble and content with what they "
                      "have."),
    (Value.STIMULATION, "It is important to this person that life is never boring."),
    (Value.POWER, "It is important to this person to be wealthy and of high status."),
)


def items() -> list[Item]:
    """The twenty items, in the order they are asked."""
    return [Item(f"q{k:02d}", value.label, text) for k, (value, text) in enumerate(_ITEMS, 1)]


def _ids() -> list[str]:
    return [item.id for item in items()]


def prompt_text() -> str:
    """The questionnaire as one prompt: instructions, the scale, the numbered items, and the
    answer format (one JSON object of ratings)."""
    scale = "\n".join(f"{k} = {label}" for k, label in SCALE.items())
    numbered = "\n".join(f"{item.id}. {item.text}" for item in items())
    ids = _ids()
    layout = f'{{"{ids[0]}": rating, "{ids[1]}": rating, ..., "{ids[-1]}": rating}}'
    return (
        "Here are short descriptions of different people. Read each one and think about how "
        "much that person is like you or not like you. Rate each description on this scale:\n"
        f"{scale}\n\n{numbered}\n\n"
        f"Answer with one JSON object, and nothing else, that rates every description with a "
        f"whole number from {SCALE_MIN} to {SCALE_MAX}: {layout}")


def answer_schema() -> dict[str, Any]:
    """JSON schema of an answer: every item id, an integer 1..6 each, no other key.

    In the style of ``schema``: properties in the order asked, all required, no extra keys;
    ratings as an ``enum`` (llguidance decodes exactly these six tokens).
    """
    rating = {"type": "integer", "enum": list(SCALE)}
    ids = _ids()
    return {"type": "object", "properties": {k: dict(rating) for k in ids}, "required": ids,
            "additionalProperties": False}


def check(answer: Mapping[str, Any]) -> dict[str, int]:
    """The ratings of a parsed answer, in item order; ValueError naming the first problem."""
    if not isinstance(answer, Mapping):
        raise ValueError(f"the answer must be a JSON object, got {type(answer).__name__}")
    ids = _ids()
    missing = [k for k in ids if k not in answer]
    if missing:
        raise ValueError(f"missing rating(s) for {', '.join(missing)}")
    extra = [str(k) for k in answer if k not in ids]
    if extra:
        raise ValueError(f"unknown key(s) {', '.join(json.dumps(k) for k in extra)}; the items "
                         f"are {ids[0]}..{ids[-1]}")
    out: dict[str, int] = {}
    for k in ids:
        rating = answer[k]
        if isinstance(rating, bool) or not isinstance(rating, int):
            raise ValueError(f"{k} must be a whole number from {SCALE_MIN} to {SCALE_MAX}, "
                             f"got {rating!r}")
        if rating not in SCALE:
            raise ValueError(f"{k} is {rating}, outside the scale {SCALE_MIN}..{SCALE_MAX}")
        out[k] = rating
    return out


def score(answers: Mapping[str, Any]) -> dict[str, float]:
    """Mean rating of each value's items, by value label (in ``Value`` order)."""
    ratings = check(answers)
    sums = {value.label: 0.0 for value in Value}
    counts = dict.fromkeys(sums, 0)
    for item in items():
        sums[item.value] += ratings[item.id]
        counts[item.value] += 1
    return {label: sums[label] / counts[label] for label in sums}


def _mean_scores(answers: Sequence[Mapping[str, Any]], who: str) -> dict[str, float]:
    if not answers:
        raise ValueError(f"orientation_change needs at least one {who} answer")
    scores = [score(a) for a in answers]
    return {label: sum(s[label] for s in scores) / len(scores) for label in scores[0]}


def orientation_change(holders: Sequence[Mapping[str, Any]],
                       baseline: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The normalised value-orientation change of each value, in [-1, 1].

    ``(mean score among holders - mean score among baseline) / 5`` per value, where a
    resident's score of a value is the mean of its two items' ratings and 5 is the range of
    the 1-6 scale.

    Args:
        holders: answers (``{"q01": rating, ...}``) of residents holding the condition.
        baseline: answers of baseline residents (the same run or a baseline run).
    """
    held, base = _mean_scores(holders, "holder"), _mean_scores(baseline, "baseline")
    return {label: (held[label] - base[label]) / SCALE_RANGE for label in held}


def markdown() -> str:
    """The questionnaire's block of docs/prompts.md: the scale, the items, the prompt."""
    rows = ["| id | value | item |", "|---|---|---|"]
    rows += [f"| {item.id} | {item.value} | {item.text} |" for item in items()]
    scale = ["| rating | label |", "|---:|---|"]
    scale += [f"| {k} | {label} |" for k, label in SCALE.items()]
    return "\n".join([
        f"Version `{QUESTIONNAIRE_VERSION}`.", "", *scale, "", *rows, "",
        "The prompt, as the resident reads it:", "", "```text", prompt_text(), "```",
    ])
