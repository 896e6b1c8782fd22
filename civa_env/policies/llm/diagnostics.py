"""LLM behaviour diagnostics: does a run's language model act, or only answer validly?

A schema-valid answer can still be degenerate: a small model may copy the instructions into
its reflection, send the same message all run, always work at the first factory listed, or
attack the first name listed. ``Diagnostics`` is fed answer by answer by the LLM policy and
summarises a run against a **random valid resident** on the same legal facts:

    diagnostics = Diagnostics(seed=0)
    diagnostics.add(prompt, fields, legal)      # once per accepted answer
    summary = diagnostics.summary()             # JSON-ready dict
    for line in warnings(summary):
        print("warning:", line)

The figures (``summary()``):

* ``answers``: answers added; ``decisions``: those that chose an action (a ``primary`` or
  ``secondary`` field); ``messages``: messages in all answers.
* ``echo_rate``: share of the ``answers_with_text`` (answers with a reflection, plan,
  memory or message text) in which some text copies ``ECHO_WORDS`` (8) or more consecutive
  words of the prompt verbatim (words: lowercased runs of letters, digits and apostrophes;
  checked with sets of word 8-grams). A text the prompt itself shows (yesterday's memory
  kept word for word, a received message repeated) counts too. None without such answers.
* ``duplicate_message_rate``: 1 - distinct message texts / messages over the run (texts
  compared lowercased, spaces collapsed). None without messages.
* ``first_option_rate``: share of the ``option_choices`` that take the first option listed.
  The factory of ``work``/``upgrade_factory`` is one choice (first: ``legal["factories"][0]``:
  the lowest-numbered known factory, or the largest where the factory slots rank them),
  the target of ``gift``/``attack``/``merge`` another (first: ``legal["targets"][0]``; for
  ``merge``, which may not name an ally, the first listed resident who is not one). Message
  recipients are not counted. None without choices.
* ``chance_rate``: mean of 1 / (number of options) over the same choices: the first-option
  rate of a resident who picks uniformly among the options of the kind it chose.
* ``action_entropy``: Shannon entropy in bits of the decisions' ``primary`` kinds,
  ``secondary`` kinds and (primary, secondary) pairs (``primary``, ``secondary``, ``pair``).
  None without decisions. ``primary_shares``, ``secondary_shares``: each kind's share.
* ``reference``: the same action figures for a random valid resident (``random_answer``),
  drawn once per decision on the same legal facts with the generator seeded by the
  constructor; its ``echo_rate`` and ``duplicate_message_rate`` are None (a random resident
  writes no text).

``warnings(summary)`` returns plain sentences when a run looks degenerate; each needs at
least ``MIN_SAMPLES`` (10) of what it measures:

* one primary kind in more than ``DOMINANT_SHARE`` (90%) of the decisions;
* a first-option rate above ``FIRST_OPTION_FACTOR`` (2) times the chance rate and above
  ``FIRST_OPTION_RATE`` (0.5);
* a duplicate message rate above ``DUPLICATE_RATE`` (0.5);
* an echo rate above ``ECHO_RATE`` (0.3).

Only counters are kept (plus the set of distinct message texts), so a long run costs little
memory; each ``add`` costs one pass over the prompt's words.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

# An answer echoes the prompt when one of its texts shares this many consecutive words with it.
ECHO_WORDS = 8
# Warnings need at least this many decisions, choices, messages or answers with text.
MIN_SAMPLES = 10
DOMINANT_SHARE = 0.9
FIRST_OPTION_FACTOR = 2.0
FIRST_OPTION_RATE = 0.5
DUPLICATE_RATE = 0.5
ECHO_RATE = 0.3

TEXT_FIELDS = ("reflection", "plan", "memory")
FACTORY_KINDS = ("work", "upgrade_factory")
TARGET_KINDS = ("gift", "attack", "merge")

_WORD_RE = re.compile(r"[a-z0-9']+")
_SPACE_RE = re.compile(r"\s+")


def words(text: str) -> list[str]:
    """Lowercased words of ``text`` (runs of letters, digits and apostrophes)."""
    return _WORD_RE.findall(text.lower())


def ngrams(tokens: list[str], n: int = ECHO_WORDS) -> set[tuple[str, ...]]:
    """Every run of ``n`` consecutive tokens."""
    return {tuple(tokens[k:k + n]) for k in range(len(tokens) - n + 1)}


def entropy_bits(counts: Iterable[int]) -> float:
    """Shannon entropy in bits of a distribution given by counts (0.0 for none)."""
    c = np.array([x for x in counts if x > 0], np.float64)
    if not len(c):
        return 0.0
    p = c / c.sum()
    return float(max(-(p * np.log2(p)).sum(), 0.0)) + 0.0  # + 0.0: no "-0.0" in JSON


def _options(kind: str, legal: Mapping[str, Any]) -> list[Any]:
    """The factories or targets a kind may name, in the order listed to the model."""
    if kind in FACTORY_KINDS:
        return [int(m) for m in legal.get("factories", [])]
    targets = list(legal.get("targets", []))
    if kind == "merge":
        allies = set(legal.get("allies", []))
        return [t for t in targets if t not in allies]
    return targets


def random_answer(legal: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A uniformly random valid choice on ``legal``, in ``check_answer``'s form.

    The primary kind is uniform among the legal ones (``explore`` and ``idle`` always,
    ``work`` with a known factory, ``upgrade_self`` with ``can_upgrade``, ``upgrade_factory``
    with both), then the factory uniform among the known ones. The secondary kind is uniform
    among ``none`` and, with someone in view, ``attack``, ``gift`` (with at least 1 wealth;
    an integer amount uniform in 1..floor(wealth)) and ``merge`` (with someone in view who is
    not an ally), then the target uniform among those the kind may name.
    """
    factories = _options("work", legal)
    can_upgrade = bool(legal.get("can_upgrade"))
    primaries = ["explore", "idle"] + (["upgrade_self"] if can_upgrade else [])
    if factories:
        primaries += ["work"] + (["upgrade_factory"] if can_upgrade else [])
    out: dict[str, Any] = {"primary": primaries[int(rng.integers(len(primaries)))]}
    if out["primary"] in FACTORY_KINDS:
        out["factory"] = factories[int(rng.integers(len(factories)))]
    top = math.floor(max(float(legal.get("wealth", 0.0)), 0.0))
    secondaries = ["none"]
    if legal.get("targets"):
        secondaries += ["attack"] + (["gift"] if top >= 1 else [])
        if _options("merge", legal):
            secondaries.append("merge")
    out["secondary"] = secondaries[int(rng.integers(len(secondaries)))]
    if out["secondary"] != "none":
        targets = _options(out["secondary"], legal)
        out["target"] = targets[int(rng.integers(len(targets)))]
    if out["secondary"] == "gift":
        out["amount"] = float(rng.integers(1, top + 1))
    return out


class _Choices:
    """Counters of the action choices of a resident (the model's or the random one)."""

    def __init__(self) -> None:
        self.primary: Counter[str] = Counter()
        self.secondary: Counter[str] = Counter()
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.decisions = 0
        self.choices = 0
        self.first = 0
        self.chance = 0.0

    def add(self, fields: Mapping[str, Any], legal: Mapping[str, Any]) -> None:
        primary, secondary = fields.get("primary"), fields.get("secondary")
        if primary is None and secondary is None:
            return
        self.decisions += 1
        if primary is not None:
            self.primary[primary] += 1
        if secondary is not None:
            self.secondary[secondary] += 1
        if primary is not None and secondary is not None:
            self.pairs[(primary, secondary)] += 1
        for kind, key in ((primary, "factory"), (secondary, "target")):
            if kind not in (*FACTORY_KINDS, *TARGET_KINDS) or key not in fields:
                continue
            options = _options(kind, legal)
            if not options:
                continue
            self.choices += 1
            self.first += int(fields[key] == options[0])
            self.chance += 1.0 / len(options)

    def figures(self) -> dict[str, Any]:
        n = self.decisions
        return {
            "decisions": n,
            "first_option_rate": self.first / self.choices if self.choices else None,
            "chance_rate": self.chance / self.choices if self.choices else None,
            "option_choices": self.choices,
            "action_entropy": {"primary": entropy_bits(self.primary.values()),
                               "secondary": entropy_bits(self.secondary.values()),
                               "pair": entropy_bits(self.pairs.values())} if n else None,
            "primary_shares": _shares(self.primary),
            "secondary_shares": _shares(self.secondary),
        }


def _shares(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: c / total for k, c in sorted(counts.items())} if total else {}


class Diagnostics:
    """Per-run LLM behaviour diagnostics (see the module docstring).

    Args:
        seed: seed of the random valid resident drawn as the reference.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.clear()

    def clear(self) -> None:
        """Forget every answer and restart the reference's generator from the seed."""
        self.rng = np.random.default_rng(self.seed)
        self.model = _Choices()
        self.reference = _Choices()
        self.answers = 0
        self.with_text = 0
        self.echoes = 0
        self.messages = 0
        self.distinct: set[str] = set()

    def add(self, prompt: str, fields: Mapping[str, Any], legal: Mapping[str, Any]) -> None:
        """Count one accepted answer.

        Args:
            prompt: the full prompt text the model saw (system and user messages joined).
            fields: the checked answer fields (``schema.check_answer``'s form).
            legal: the resident's legal facts (``factories`` and ``targets`` in the order
                listed to the model, ``allies``, ``wealth``, ``can_upgrade``).
        """
        self.answers += 1
        messages = [m["text"] for m in fields.get("messages", []) or []]
        texts = [fields[k] for k in TEXT_FIELDS if fields.get(k)] + [t for t in messages if t]
        if texts:
            self.with_text += 1
            self.echoes += int(self._echoes(prompt, texts))
        self.messages += len(messages)
        self.distinct.update(_SPACE_RE.sub(" ", t.strip().lower()) for t in messages)
        self.model.add(fields, legal)
        if "primary" in fields or "secondary" in fields:
            self.reference.add(random_answer(legal, self.rng), legal)

    @staticmethod
    def _echoes(prompt: str, texts: list[str]) -> bool:
        spans = set().union(*(ngrams(words(t)) for t in texts))
        if not spans:
            return False
        # Only prompt positions that start some span of the answer are looked at.
        starts = {span[0] for span in spans}
        tokens = words(prompt)
        return any(tokens[k] in starts and tuple(tokens[k:k + ECHO_WORDS]) in spans
                   for k in range(len(tokens) - ECHO_WORDS + 1))

    def summary(self) -> dict[str, Any]:
        """The run's figures and the random reference's, JSON-ready (module docstring)."""
        model = self.model.figures()
        return {
            "answers": self.answers,
            "decisions": model.pop("decisions"),
            "messages": self.messages,
            "echo_rate": self.echoes / self.with_text if self.with_text else None,
            "answers_with_text": self.with_text,
            "duplicate_message_rate": (1.0 - len(self.distinct) / self.messages
                                       if self.messages else None),
            **model,
            "reference": {"echo_rate": None, "duplicate_message_rate": None,
                          **self.reference.figures()},
        }


def warnings(summary: Mapping[str, Any]) -> list[str]:
    """Plain sentences on what looks degenerate in a ``Diagnostics.summary()`` (thresholds in
    the module docstring); empty when nothing does."""
    out = []
    decisions = summary.get("decisions") or 0
    shares = summary.get("primary_shares") or {}
    if decisions >= MIN_SAMPLES and shares:
        kind, share = max(shares.items(), key=lambda kv: kv[1])
        if share > DOMINANT_SHARE:
            out.append(f"{share:.0%} of {decisions} decisions were {kind} (more than "
                       f"{DOMINANT_SHARE:.0%}): the model hardly varies its action.")
    rate, chance = summary.get("first_option_rate"), summary.get("chance_rate")
    if ((summary.get("option_choices") or 0) >= MIN_SAMPLES and rate is not None
            and chance is not None and rate > FIRST_OPTION_FACTOR * chance
            and rate > FIRST_OPTION_RATE):
        out.append(f"{rate:.0%} of factory and target choices took the first option listed "
                   f"(chance: {chance:.0%}): the model may follow the order of the list.")
    duplicate = summary.get("duplicate_message_rate")
    if (summary.get("messages") or 0) >= MIN_SAMPLES and duplicate is not None \
            and duplicate > DUPLICATE_RATE:
        out.append(f"{duplicate:.0%} of {summary['messages']} messages repeat an earlier "
                   f"text (more than {DUPLICATE_RATE:.0%}).")
    echo = summary.get("echo_rate")
    if (summary.get("answers_with_text") or 0) >= MIN_SAMPLES and echo is not None \
            and echo > ECHO_RATE:
        out.append(f"{echo:.0%} of answers copy {ECHO_WORDS} or more consecutive words of "
                   f"their prompt (more than {ECHO_RATE:.0%}): the model may be echoing its "
                   f"instructions.")
    return out
