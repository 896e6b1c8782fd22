"""Schwartz's ten basic values, value conditions, prompts, and assignment by prevalence.

A value condition is written ``baseline``, ``with:<value>`` or ``without:<value>``. It is
given to a seeded fraction (``prevalence``) of the residents; the rest are baseline. The
prompt of a condition appears in the briefing of each resident who holds it. Prompts are
versioned (``PROMPT_VERSION``): change the text, bump the version.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

PROMPT_VERSION = "values-v1"


class Value(enum.IntEnum):
    """Schwartz's ten basic human values (Schwartz 1992, 2012)."""

    SELF_DIRECTION = 0
    STIMULATION = 1
    HEDONISM = 2
    ACHIEVEMENT = 3
    POWER = 4
    SECURITY = 5
    CONFORMITY = 6
    TRADITION = 7
    BENEVOLENCE = 8
    UNIVERSALISM = 9

    @property
    def label(self) -> str:
        """The value's name as users write it (``self-direction``)."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, name: str) -> Value:
        """``"power"``, ``"Self-Direction"`` or ``"self_direction"`` -> Value."""
        key = str(name).strip().upper().replace("-", "_").replace(" ", "_")
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(v.label for v in cls)
            raise ValueError(f"unknown value {name!r}; known values: {names}") from None


DEFINITIONS: dict[Value, str] = {
    Value.SELF_DIRECTION: "independent thought and action: choosing, creating, exploring",
    Value.STIMULATION: "excitement, novelty and challenge in life",
    Value.HEDONISM: "pleasure and sensuous gratification for oneself",
    Value.ACHIEVEMENT: "personal success through demonstrating competence",
    Value.POWER: "social status and prestige, control or dominance over people and resources",
    Value.SECURITY: "safety, harmony and stability of society, of relationships and of self",
    Value.CONFORMITY: "restraint of actions likely to upset or harm others or break norms",
    Value.TRADITION: "respect for and commitment to the customs of one's culture or community",
    Value.BENEVOLENCE: ("preserving and enhancing the welfare of those one is in frequent "
                        "contact with"),
    Value.UNIVERSALISM: "understanding, tolerance and protection for the welfare of all people",
}

# What holding (or rejecting) the value means in this world, in the project's own words.
_WITH_HINTS: dict[Value, str] = {
    Value.SELF_DIRECTION: "You decide for yourself, try your own paths and explore what others ignore.",
    Value.STIMULATION: "You seek novelty and risk; a dull routine is worse to you than danger.",
    Value.HEDONISM: "You want comfort and enjoyment now; rest when you can.",
    Value.ACHIEVEMENT: "You want to be the most capable and productive resident, and be seen as such.",
    Value.POWER: "You want wealth and control over others; being on top matters more than being liked.",
    Value.SECURITY: "You want to be safe and keep reserves; avoid risks and keep the peace.",
    Value.CONFORMITY: "You follow what the community expects and avoid upsetting anyone.",
    Value.TRADITION: "You keep to proven customs: work where you always worked and respect the elders.",
    Value.BENEVOLENCE: "You care for the residents around you and help them when they are in need.",
    Value.UNIVERSALISM: "You care for the welfare of every resident, including strangers, and for fairness.",
}
_WITHOUT_HINTS: dict[Value, str] = {
    Value.SELF_DIRECTION: "Independence means nothing to you; you are content to copy others.",
    Value.STIMULATION: "Novelty and excitement mean nothing to you.",
    Value.HEDONISM: "Comfort and pleasure mean nothing to you; you never rest for its own sake.",
    Value.ACHIEVEMENT: "Being competent or successful means nothing to you.",
    Value.POWER: "Status, control and wealth beyond your needs mean nothing to you.",
    Value.SECURITY: "Safety and stability mean nothing to you; you take risks freely.",
    Value.CONFORMITY: "Norms and others' expectations mean nothing to you; you do not mind harming others.",
    Value.TRADITION: "Customs mean nothing to you; you change your ways whenever it pays.",
    Value.BENEVOLENCE: "The welfare of the residents around you means nothing to you.",
    Value.UNIVERSALISM: "Fairness and the welfare of others in general mean nothing to you.",
}


class Direction(enum.IntEnum):
    """How a resident relates to its condition's value."""

    BASELINE = 0
    WITH = 1
    WITHOUT = 2


@dataclass(frozen=True)
class ValueCondition:
    """A parsed condition: ``direction`` and ``value`` (None for baseline)."""

    direction: Direction
    value: Value | None = None

    @classmethod
    def parse(cls, text: str | ValueCondition) -> ValueCondition:
        """Parse ``baseline``, ``with:<value>`` or ``without:<value>`` (a clear error otherwise)."""
        if isinstance(text, ValueCondition):
            return text
        if not isinstance(text, str):
            raise ValueError(f"value condition must be a string, got {type(text).__name__}")
        raw = text.strip().lower()
        if raw == "baseline":
            return cls(Direction.BASELINE)
        head, sep, tail = raw.partition(":")
        if not sep or head not in ("with", "without"):
            raise ValueError(
                f"unknown value condition {text!r}; write 'baseline', 'with:<value>' or "
                "'without:<value>' (e.g. 'without:benevolence')")
        return cls(Direction.WITH if head == "with" else Direction.WITHOUT, Value.parse(tail))

    def __str__(self) -> str:
        if self.direction == Direction.BASELINE:
            return "baseline"
        return f"{self.direction.name.lower()}:{self.value.label}"

    @property
    def code(self) -> int:
        """Compact integer code: 0 baseline, 1 + value for with, 11 + value for without."""
        if self.direction == Direction.BASELINE:
            return 0
        return (1 if self.direction == Direction.WITH else 11) + int(self.value)

    @classmethod
    def from_code(cls, code: int) -> ValueCondition:
        """Inverse of ``code``."""
        code = int(code)
        if code == 0:
            return cls(Direction.BASELINE)
        if 1 <= code <= 10:
            return cls(Direction.WITH, Value(code - 1))
        if 11 <= code <= 20:
            return cls(Direction.WITHOUT, Value(code - 11))
        raise ValueError(f"invalid value condition code {code}")

    def prompt(self) -> str:
        """The value prompt shown to residents holding this condition ('' for baseline)."""
        return prompt_for(self.code)


N_CONDITION_CODES = 1 + 2 * len(Value)


def direction_of(codes: np.ndarray) -> np.ndarray:
    """Direction (0 baseline, 1 with, 2 without) of each condition code: same shape, int64."""
    codes = np.asarray(codes, dtype=np.int64)
    return np.where(codes == 0, 0, np.where(codes <= len(Value), 1, 2))


def value_of(codes: np.ndarray) -> np.ndarray:
    """Value index (0..9) of each condition code, -1 for baseline: same shape, int64."""
    codes = np.asarray(codes, dtype=np.int64)
    return np.where(codes == 0, -1, (codes - 1) % len(Value))


def code_of(direction: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Inverse of ``direction_of``/``value_of`` (value ignored for baseline): int64."""
    direction = np.asarray(direction, dtype=np.int64)
    value = np.asarray(value, dtype=np.int64)
    return np.where(direction == 0, 0, np.where(direction == 1, 1, 1 + len(Value)) + value)


def prompt_for(code: int) -> str:
    """Prompt text for a condition code ('' for baseline)."""
    return _PROMPTS[code]


def _build_prompts() -> list[str]:
    prompts = [""]
    for value in Value:
        prompts.append(
            f"Your guiding value is {value.label} ({DEFINITIONS[value]}). "
            f"It matters more to you than anything else. {_WITH_HINTS[value]}")
    for value in Value:
        prompts.append(
            f"You do not care about {value.label} ({DEFINITIONS[value]}). "
            f"{_WITHOUT_HINTS[value]}")
    return prompts


_PROMPTS = _build_prompts()


def all_conditions() -> list[str]:
    """Every condition string: baseline, then with: and without: for each value."""
    return ["baseline"] + [f"{d}:{v.label}" for d in ("with", "without") for v in Value]


def holder_count(prevalence: float, n: int) -> int:
    """How many of ``n`` founders hold the condition: ``floor(prevalence * n + 0.5)`` (half-way
    cases round up: 0.5 x 25 -> 13)."""
    # Rounded to 9 decimals first, so that float error (0.7 x 45 = 31.499999...) cannot
    # turn a half-way case down.
    return int(np.floor(round(prevalence * n, 9) + 0.5))


def assign_conditions(condition: ValueCondition, prevalence: float, n: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Condition codes for ``n`` founders, drawn from the value stream ``rng``.

    ``rng`` gives a seeded order of the founders, drawn the same way whatever the condition
    and prevalence; the first ``holder_count(prevalence, n)`` of that order hold the
    condition. Holder sets are therefore nested: those who hold a condition at prevalence p
    also hold it at every p' > p, and prevalence 0 is the baseline world.

    Returns:
        int8 array (n,): the condition's code for the holders, 0 (baseline) for others.
    """
    order = rng.permutation(n)
    codes = np.zeros(n, dtype=np.int8)
    k = holders_of(condition, prevalence, n)
    if k > 0:
        codes[order[:k]] = condition.code
    return codes


def holders_of(condition: ValueCondition, prevalence: float, n: int) -> int:
    """How many of ``n`` founders hold ``condition``: ``holder_count`` (none in the baseline
    world)."""
    return holder_count(prevalence, n) if condition.direction != Direction.BASELINE else 0
