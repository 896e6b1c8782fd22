"""The LLM policy: residents driven by a language model through the study's daily cycle.

Each ``act`` serves every resident given (from one or several environments) with batched
calls, one per phase. The day's order follows the study: perception, communication and
action, then the world resolves the day, then memory is written from the day's outcome.
Since the outcome reaches a resident in its next briefing (its wealth after the day and a
labelled account of who did what to it), the memory of day d is written at the start of
day d+1, in the same conversation as that day's decisions:

* ``mode="combined"`` (default, fastest): one call a day. The answer holds a reflection,
  messages, the primary and secondary action and the rewritten memory; the prompt carries
  yesterday's plan, messages and action, and the briefing what came of them, so the memory
  written in it records yesterday's outcome (folded into the next day's call: one call a
  day instead of two, and the reflection on yesterday is the same text as today's plan).
* ``mode="full"``: one multi-turn conversation per resident-day, so the briefing is sent
  once and every later call reuses the prefix (vLLM's prefix caching): the memory update
  for yesterday (from the second day on), perception (reflection and plan), communication
  (messages) and action, each a batched call whose prompt is the conversation so far.

With ``reasoning=True`` every answer is preceded by a free-text turn ("think it through",
at most ``reasoning_words`` words, unconstrained), then the JSON answer is decoded under the
resident's schema.

The value condition is an in-context instruction in the system prompt: a persona
(``personas.persona``; ``values="v2"``, the default, or the v1 texts for ablation), and a
neutral placebo of similar length for baseline residents. With ``Config.briefing="v1"`` the
v1 value text is already in the briefing and ``values`` must be ``"v1"`` (the persona is
then left out). A manipulation check (``questionnaire``) asks each resident the value
questionnaire in context on its first day (before it acts: "day 0"), on the last day (after
its decision, in that day's conversation) and, with ``questionnaire_every=k``, every k days;
answers go to ``questionnaire.jsonl`` in the run folder.

A ``Batch`` gives each resident's briefing (``batch.texts``: the environment must render
text), what it may do now (``batch.legal(r)``, including its ``condition``) and the day.
Factories and targets are listed in the order the briefing shows them: the world's seeded,
shuffled order per resident and day (small models favour the first option listed). With
``constrained=True`` (default) each answer is decoded against the resident's own JSON
schema (``schema.answer_schema``). Every answer is parsed and checked
(``schema.check_answer``); failures get one batched retry with the error, then a safe
default (idle, no messages), reported in ``batch.results[key]`` and counted in
``self.stats``. ``self.diagnostics`` measures whether the decisions make sense (echoes,
duplicate messages, first-option rate, action entropy, against a random valid resident).
The run folder gets the transcript of every prompt and answer and the stats
(``transcript.RunFiles``), with the run's tokens and their estimated cost; a token budget
(``max_tokens_total``) stops the run cleanly with ``budget.BudgetExhausted``.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civa_env.policies.base import Policy
from civa_env.policies.batch import Batch
from civa_env.policies.llm import personas, transcript
from civa_env.policies.llm import questionnaire as quest
from civa_env.policies.llm import schema as sch
from civa_env.policies.llm.budget import Budget, BudgetExhausted
from civa_env.policies.llm.diagnostics import Diagnostics
from civa_env.policies.llm.models import load_model
from civa_env.policies.llm.models.base import Generation, LanguageModel, PromptTooLongError
from civa_env.policies.llm.models.cache import CachedModel
from civa_env.policies.llm.models.fake import CountingModel
from civa_env.policies.llm.options import cache_path
from civa_env.policies.llm.prompts import load_prompts
from civa_env.world.config import Config
from civa_env.world.kinds import LLM_OUTCOMES

PHASE_KEYS = {
    "combined": ["reflection", "messages", "primary", "secondary", "memory"],
    "memory": ["memory"],
    "perception": ["reflection", "plan"],
    "communication": ["messages"],
    "action": ["primary", "secondary"],
}
# The phases of a day in order; "memory" (yesterday's outcome) only from the second day.
CYCLES = {"combined": ["combined"], "full": ["memory", "perception", "communication", "action"]}
DECISION_PHASES = ("combined", "action")
ACTION_KEYS = ("primary", "factory", "secondary", "target", "amount")
QUESTIONNAIRE = "questionnaire"
Chat = list[dict[str, str]]


@dataclass
class ResidentTurn:
    """One resident's day in ``act``: what it was told and may do, and what it answered.

    ``chat`` is the day's conversation so far (system prompt, the briefing with the first
    ask, then each accepted answer and the next ask); ``listed`` the factories and targets
    in the order its prompts list them. ``fields`` gathers the checked answer fields of
    every phase, ``outcomes`` the outcome of each phase, ``errors`` why a phase fell back.
    """

    key: Hashable
    briefing: str
    legal: Mapping[str, Any]
    allies: set[str]
    memory: str
    day: int
    condition: str
    listed: dict[str, list]
    yesterday: dict[str, Any] | None
    chat: Chat = field(default_factory=list)
    context: str = ""  # what the model was told today (see ``LLMPolicy._ask``)
    fields: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class LLMPolicy(Policy):
    """Residents driven by a language model (see the module docstring).

    Args:
        model: hub id, local folder, or a ``LanguageModel``.
        backend: ``hf`` (transformers), ``vllm`` or ``openai`` (an OpenAI-compatible server).
        mode: ``combined`` (one call a day) or ``full`` (memory, perception, communication
            and action as one conversation).
        temperature: 0 = greedy (cached, reproducible).
        seed: base sampling seed (``reset(seed=...)`` overrides it).
        max_new_tokens: tokens per answer; None = the schema's longest answer (a bound that
            lets constrained answers always finish), capped by ``max_new_tokens_cap``.
        constrained: decode against each resident's JSON schema.
        retry: one batched retry of failed answers with the error.
        cache: sqlite path of the answer cache, ``default`` or ``off``.
        reflection_chars, plan_chars, memory_chars, message_chars: text lengths.
        prompt_version: folder under ``prompts/`` of the phase prompts (``v2``).
        values: the value prompts, ``v2`` (personas and a placebo) or ``v1`` (0.1's texts).
        reasoning: free-text reasoning (at most ``reasoning_words`` words) before each answer.
        questionnaire: ask the value questionnaire (first and last day, every
            ``questionnaire_every`` days if > 0).
        max_tokens_total: stop the run (``BudgetExhausted``) once its prompt and completion
            tokens reach this many (None: no limit); see ``budget``.
        price_per_mtok_in, price_per_mtok_out: USD per million prompt / completion tokens,
            for the cost estimate ``cost_usd`` (None: no estimate).
        **backend_options: passed to the backend (``device``, ``dtype``, ``max_batch_size``...).
    """

    name = "llm"
    # The questionnaire's last day and the place of the value text come from the config.
    same_across_communities = ("max_days", "briefing")

    def __init__(self, model: str | LanguageModel, backend: str = "hf", *,
                 mode: str = "combined", temperature: float = 0.0, seed: int = 0,
                 max_new_tokens: int | None = None, max_new_tokens_cap: int = 1024,
                 constrained: bool = True, retry: bool = True, cache: str | None = "default",
                 cache_sampled: bool = False, reflection_chars: int = 200, plan_chars: int = 160,
                 memory_chars: int = 300, message_chars: int = 160, prompt_version: str = "v2",
                 values: str = "v2", reasoning: bool = False, reasoning_words: int = 80,
                 questionnaire: bool = True, questionnaire_every: int = 0,
                 max_tokens_total: int | None = None, price_per_mtok_in: float | None = None,
                 price_per_mtok_out: float | None = None, **backend_options: Any) -> None:
        if mode not in CYCLES:
            raise ValueError(f"llm mode must be one of {', '.join(CYCLES)}, got {mode!r}")
        if values not in personas.VALUE_PROMPT_VERSIONS:
            raise ValueError(f"llm option values must be one of "
                             f"{', '.join(personas.VALUE_PROMPT_VERSIONS)}, got {values!r}")
        if questionnaire_every < 0:
            raise ValueError(f"llm option questionnaire_every must be >= 0, got "
                             f"{questionnaire_every}")
        if reasoning_words < 1:
            raise ValueError(f"llm option reasoning_words must be >= 1, got {reasoning_words}")
        self.mode, self.temperature, self.base_seed = mode, float(temperature), int(seed)
        self.max_new_tokens, self.max_new_tokens_cap = max_new_tokens, max_new_tokens_cap
        self.constrained, self.retry = bool(constrained), bool(retry)
        self.limits = {"reflection_chars": reflection_chars, "plan_chars": plan_chars,
                       "memory_chars": memory_chars, "message_chars": message_chars}
        self.prompt_version, self.values = prompt_version, values
        self.reasoning, self.reasoning_words = bool(reasoning), int(reasoning_words)
        self.questionnaire, self.questionnaire_every = bool(questionnaire), questionnaire_every
        self.budget = Budget(max_tokens_total, price_per_mtok_in, price_per_mtok_out)
        self.prompts = load_prompts(prompt_version)
        missing = sorted({"system", "context", "yesterday", "retry", "reasoning", "answer",
                          "questionnaire", *PHASE_KEYS} - set(self.prompts))
        if missing:
            raise ValueError(f"prompt version {prompt_version!r} lacks the daily cycle's "
                             f"prompts {', '.join(missing)} (0.1's v1 phase prompts were "
                             f"retired; use prompt_version='v2')")
        self.model_name = model if isinstance(model, str) else model.identity
        self.backend_name = backend
        self.backend = load_model(model, backend, **backend_options)
        self.counter = CountingModel(self.backend)
        self.model: LanguageModel = self.counter
        self.cache_path = cache_path(cache)
        if self.cache_path is not None:
            self.model = CachedModel(self.counter, self.cache_path, cache_sampled=cache_sampled)
        self.cfg: Config | None = None
        self.memory: dict[Hashable, str] = {}
        self.yesterday: dict[Hashable, dict[str, Any]] = {}
        self.asked: set[Hashable] = set()  # residents who answered the day-0 questionnaire
        self.stats = self._empty_stats()
        self.diagnostics = Diagnostics(seed=self.base_seed)
        self.day = 0  # acts so far this episode (part of the sampling seed)
        self.files = transcript.RunFiles()

    # ---- lifecycle ------------------------------------------------------------------------
    @staticmethod
    def _empty_stats() -> dict[str, Any]:
        return {"days": 0, "calls": 0, "decisions": 0,
                **{o: 0 for o in LLM_OUTCOMES}, "by_phase": {},
                "prompt_tokens": 0, "completion_tokens": 0, "generation_s": 0.0,
                "cache_hits": 0, "cache_misses": 0}

    def reset(self, cfg: Config, seed: int | None = None) -> None:
        """Forget memories and counters of the last episode.

        Raises:
            ValueError: ``cfg.briefing="v1"`` (whose text carries the v1 value prompts)
                with ``values`` other than ``"v1"``.
        """
        if cfg.briefing == "v1" and self.values != "v1":
            raise ValueError(f"briefing v1 carries the v1 value prompts in its text; with "
                             f"values={self.values!r} a resident would get two. Use "
                             f"Config(briefing='v2') or the llm option values=v1.")
        if seed is not None:
            self.base_seed = int(seed)
        self.cfg = cfg
        self.memory.clear()
        self.yesterday.clear()
        self.asked.clear()
        self.stats = self._empty_stats()
        self.diagnostics = Diagnostics(seed=self.base_seed)
        self.day = 0

    def open_run(self, run_dir: Path | None) -> None:
        """Write ``transcript.jsonl``, ``questionnaire.jsonl``, ``llm_prompts.json`` and
        ``llm_stats.json`` into ``run_dir`` from now on (None: write nothing).

        The files start fresh: an earlier run's in ``run_dir`` are replaced.
        """
        self.files.open(run_dir, self.prompt_version, self.prompts)

    def close(self) -> None:
        """Close the transcript and the model."""
        self.files.close()
        self.model.close()

    def describe(self) -> dict[str, Any]:
        """Model, backend and settings for config.json."""
        return {"name": self.name, "model": self.model_name, "model_identity":
                self.backend.identity, "backend": self.backend_name, "mode": self.mode,
                "temperature": self.temperature, "seed": self.base_seed,
                "constrained": self.constrained, "retry": self.retry,
                "prompt_version": self.prompt_version, "values": self.values,
                "value_prompts": personas.VERSION_NAMES[self.values],
                "reasoning": self.reasoning, "reasoning_words": self.reasoning_words,
                "questionnaire": self.questionnaire,
                "questionnaire_version": quest.QUESTIONNAIRE_VERSION,
                "questionnaire_every": self.questionnaire_every, **self.limits,
                "max_tokens_total": self.budget.max_tokens_total,
                "price_per_mtok_in": self.budget.price_per_mtok_in,
                "price_per_mtok_out": self.budget.price_per_mtok_out}

    def usage(self) -> dict[str, Any]:
        """The run's tokens so far (cached answers included) and their estimated cost
        (None without prices), for llm_stats.json and metrics.json."""
        prompt, completion = self.stats["prompt_tokens"], self.stats["completion_tokens"]
        return {"prompt_tokens": prompt, "completion_tokens": completion,
                "tokens": prompt + completion,
                "cost_usd": self.budget.cost_usd(prompt, completion),
                "max_tokens_total": self.budget.max_tokens_total}

    # ---- acting ---------------------------------------------------------------------------
    def act(self, batch: Batch) -> dict[Hashable, Any]:
        """One structured action per key; one batched model call per phase.

        Each resident's decision is reported in ``batch.results[key]``: ``decision`` (the
        outcome of the phase that chose the action, counted in stats and by the runner),
        ``outcome`` (the worst of all phases: a dropped message counts there too),
        ``phases`` (each phase's outcome) and ``errors`` (why a phase fell back), if any.

        Raises:
            ValueError: the batch has no briefings (the environment needs obs_mode='text').
        """
        self.day += 1
        if len(batch) and batch.texts is None:
            raise ValueError(f"the LLM policy needs text observations; {batch.keys[0]!r} has "
                             f"none: build the environment with obs_mode='text'")
        turns = [self._turn(batch, r) for r in range(len(batch))]
        if self.questionnaire:
            first = [t for t in turns if t.key not in self.asked]
            if first:
                self._ask_questionnaire(first, in_day=False)
                self.asked.update(t.key for t in first)
        for phase in CYCLES[self.mode]:
            todo = [t for t in turns if phase != "memory" or t.yesterday is not None]
            if todo:
                self._run_phase(phase, todo)
        if self.questionnaire:
            due = [t for t in turns if self._questionnaire_due(t.day)]
            if due:
                self._ask_questionnaire(due, in_day=True)
        actions = {turn.key: self._finish(turn, batch) for turn in turns}
        self.stats["days"] += 1
        self._write_stats()
        return actions

    def _write_stats(self, **extra: Any) -> None:
        usage = self.usage()
        self.files.write_stats(dict(self.stats, diagnostics=self.diagnostics.summary()),
                               model=self.model_name, mode=self.mode,
                               constrained=self.constrained, tokens=usage["tokens"],
                               cost_usd=usage["cost_usd"],
                               max_tokens_total=self.budget.max_tokens_total,
                               price_per_mtok_in=self.budget.price_per_mtok_in,
                               price_per_mtok_out=self.budget.price_per_mtok_out, **extra)

    def _check_budget(self, phase: str, turns: list[ResidentTurn]) -> None:
        """Raise ``BudgetExhausted`` (after writing llm_stats.json with the reason) when
        the run's tokens have reached ``max_tokens_total``."""
        tokens = self.stats["prompt_tokens"] + self.stats["completion_tokens"]
        if not self.budget.spent(tokens):
            return
        day = min(t.day for t in turns)
        reason = (f"the token budget is spent: {tokens} tokens used, max_tokens_total="
                  f"{self.budget.max_tokens_total}; the run stopped before the {phase} call "
                  f"of day {day} after {self.stats['days']} finished day(s)")
        self._write_stats(status="stopped", stopped=reason)
        raise BudgetExhausted(reason)

    def _turn(self, batch: Batch, r: int) -> ResidentTurn:
        key, legal = batch.keys[r], batch.legal(r)
        day = int(batch.day[r])
        turn = ResidentTurn(key=key, briefing=batch.texts[r], legal=legal,
                            allies=set(legal["allies"]), memory=self.memory.get(key, ""),
                            day=day, condition=str(legal["condition"]),
                            listed=self._listed(legal),
                            yesterday=self.yesterday.get(key))
        turn.chat = [{"role": "system", "content": self._system(turn.condition)}]
        return turn

    @staticmethod
    def _listed(legal: Mapping[str, Any]) -> dict[str, list]:
        """Factories and targets in the order the briefing shows them (the world's seeded
        order per resident and day, ``shown_*`` of the legal facts; the legal order when a
        batch has none)."""
        return {name: list(legal.get(f"shown_{name}", legal.get(name, [])))
                for name in ("factories", "targets")}

    def _system(self, condition: str) -> str:
        persona = "" if self.cfg is not None and self.cfg.briefing == "v1" else (
            personas.persona(condition, self.values))
        text = self.prompts["system"].safe_substitute(persona=persona)
        return text.strip()

    def _questionnaire_due(self, day: int) -> bool:
        last = self.cfg is not None and day >= self.cfg.max_days
        every = self.questionnaire_every and day % self.questionnaire_every == 0
        return bool(last or every)

    def _finish(self, turn: ResidentTurn, batch: Batch) -> dict[str, Any]:
        """The env action of a finished turn; keeps its memory and yesterday's record."""
        f = turn.fields
        if "memory" in f:
            self.memory[turn.key] = f["memory"]
        self.yesterday[turn.key] = {"day": turn.day, "plan": f.get("plan") or f.get(
            "reflection") or "nothing", "sent": _said(f), "action": _chose(f)}
        worst = max(turn.outcomes.values(), key=LLM_OUTCOMES.index)
        decision = next(turn.outcomes[p] for p in DECISION_PHASES if p in turn.outcomes)
        info: dict[str, Any] = {"outcome": worst, "decision": decision,
                                "phases": turn.outcomes}
        if turn.errors:
            info["errors"] = turn.errors
        batch.results[turn.key] = info
        return {k: f[k] for k in (*ACTION_KEYS, "messages") if k in f}

    # ---- prompts --------------------------------------------------------------------------
    def _ask(self, phase: str, turn: ResidentTurn) -> str:
        """The user message that asks for ``phase`` (the first of the day carries the
        briefing, the memory and yesterday's record)."""
        legal = turn.legal
        ask = self.prompts[phase].safe_substitute(
            max_messages=legal.get("max_messages", 2),
            factories=", ".join(str(m) for m in turn.listed["factories"]) or "none",
            targets=", ".join(turn.listed["targets"]) or "nobody",
            **{**self.limits, "message_chars": min(
                self.limits["message_chars"], int(legal.get("max_message_chars", 10**6)))})
        # What the model was told (the diagnostics' echo reference): the system prompt, the
        # briefing without its messages, and every ask, but not its own memory, plan or
        # the messages others sent, which an answer may rightly repeat.
        if not turn.context:
            turn.context = turn.chat[0]["content"] + "\n" + turn.briefing.split(
                "\nMessages for you:", 1)[0]
        turn.context += "\n" + ask
        if len(turn.chat) > 1:
            return ask
        y = turn.yesterday
        yesterday = "" if y is None else self.prompts["yesterday"].safe_substitute(
            day=y["day"], plan=y["plan"], sent=y["sent"], action=y["action"])
        context = self.prompts["context"].safe_substitute(
            briefing=turn.briefing, memory=turn.memory or "nothing yet", yesterday=yesterday)
        return context.rstrip() + "\n\n" + ask

    def _generate(self, prompts: list[Chat], schemas: list[Any] | None,
                  turns: list[ResidentTurn], phase: str, attempt: int,
                  budget: int | None = None) -> list[Generation]:
        if budget is None and self.max_new_tokens is not None:
            budget = self.max_new_tokens
        elif budget is None:
            budget = min(self.max_new_tokens_cap,
                         max(sch.max_json_chars(s) for s in schemas) + 2)
        phases = [*PHASE_KEYS, QUESTIONNAIRE, "reasoning"]
        seed = (self.base_seed * 1_000_003 + self.day * 101 + attempt * 7
                + phases.index(phase)) % 2**31
        grammars = schemas if self.constrained and schemas is not None else None
        if attempt == 1:  # a retry finishes its phase, so every call made is recorded
            self._check_budget(phase, turns)
        try:
            gens = self.model.generate(prompts, max_new_tokens=budget,
                                       temperature=self.temperature, seed=seed,
                                       grammars=grammars)
        except PromptTooLongError as err:
            turn = turns[err.index]
            raise ValueError(
                f"LLM prompt of {turn.key!r} ({phase}, day {turn.day}) has "
                f"{err.prompt_tokens} tokens; with max_new_tokens={err.max_new_tokens} it "
                f"exceeds the model's context of {err.limit} tokens. Shorten the briefing "
                f"(Config.max_text_chars), memory_chars or max_new_tokens, or use a model "
                f"with a longer context.") from err
        self.stats["calls"] += 1
        for g in gens:
            self.stats["prompt_tokens"] += g.prompt_tokens
            self.stats["completion_tokens"] += g.completion_tokens
            self.stats["cache_hits" if g.cached else "cache_misses"] += 1
        self.stats["generation_s"] += max((g.latency for g in gens), default=0.0)
        return gens

    def _think(self, phase: str, turns: list[ResidentTurn], asks: list[str]) -> list[str]:
        """With ``reasoning``: a free-text turn per resident before its answer; returns
        the ask that then requests the answer (the same ask without reasoning)."""
        if not self.reasoning:
            return asks
        prompts = [t.chat + [{"role": "user", "content": ask + "\n\n" + self.prompts[
            "reasoning"].safe_substitute(reasoning_words=self.reasoning_words)}]
            for t, ask in zip(turns, asks, strict=True)]
        gens = self._generate(prompts, None, turns, "reasoning", 1,
                              budget=min(self.max_new_tokens_cap, 2 * self.reasoning_words))
        records = []
        for turn, prompt, gen in zip(turns, prompts, gens, strict=True):
            turn.chat = prompt + [{"role": "assistant", "content": gen.text.strip()}]
            records.append(transcript.record(turn.key, self._record_day(phase, turn),
                                             f"{phase}.reasoning", 1, turn.chat[:-1], gen,
                                             "valid", None))
        self.files.write(records)
        return [self.prompts["answer"].template.strip()] * len(turns)

    # ---- one phase ------------------------------------------------------------------------
    def _check(self, phase: str, turn: ResidentTurn,
               gen: Generation) -> tuple[dict | None, str | None]:
        keys = PHASE_KEYS[phase]
        try:
            answer = sch.parse_json(gen.text)
            return sch.check_answer(answer, keys, turn.legal, turn.allies, self.limits), None
        except ValueError as err:
            message = str(err)
            if gen.finish == "length":
                message += " (the answer was cut off: keep it shorter)"
            return None, message

    def _run_phase(self, phase: str, turns: list[ResidentTurn]) -> None:
        keys = PHASE_KEYS[phase]
        asks = self._think(phase, turns, [self._ask(phase, t) for t in turns])
        prompts = [t.chat + [{"role": "user", "content": a}]
                   for t, a in zip(turns, asks, strict=True)]
        schemas = [sch.answer_schema(keys, turn.legal, turn.allies, self.limits)
                   for turn in turns]
        gens = self._generate(prompts, schemas, turns, phase, 1)
        results = [self._check(phase, turn, g) for turn, g in zip(turns, gens, strict=True)]
        failed = [k for k, (fields, _) in enumerate(results) if fields is None]
        second: dict[int, tuple[Generation, tuple[dict | None, str | None]]] = {}
        retry_prompts: dict[int, Chat] = {}
        if self.retry and failed:
            for k in failed:
                retry_prompts[k] = prompts[k] + [
                    {"role": "assistant", "content": gens[k].text},
                    {"role": "user", "content": self.prompts["retry"].safe_substitute(
                        error=results[k][1])}]
            gens2 = self._generate([retry_prompts[k] for k in failed],
                                   [schemas[k] for k in failed], [turns[k] for k in failed],
                                   phase, 2)
            for k, g in zip(failed, gens2, strict=True):
                second[k] = (g, self._check(phase, turns[k], g))
        records = []
        for k, turn in enumerate(turns):
            fields, error = results[k]
            outcome, answer, chat = "valid", gens[k].text, prompts[k]
            if fields is None:
                fields = second[k][1][0] if k in second else None
                outcome = "retried" if fields is not None else "fallback"
                if fields is None:
                    fields = self._fallback(phase, turn)
                    turn.errors.append(f"{phase}: {second[k][1][1] if k in second else error}")
                    answer = json.dumps(_answer_json(phase, fields))
                else:
                    answer, chat = second[k][0].text, retry_prompts[k]
            turn.fields.update(fields)
            turn.outcomes[phase] = outcome
            turn.chat = chat + [{"role": "assistant", "content": answer.strip()}]
            records.append(self._record(phase, turn, prompts[k], gens[k], 1, outcome, error))
            if k in second:
                records.append(self._record(phase, turn, retry_prompts[k], second[k][0], 2,
                                            outcome, second[k][1][1]))
            if phase in DECISION_PHASES and outcome != "fallback":
                # Measured against what the model was told, not against its own earlier
                # answers of the day (in full mode they are part of the conversation).
                self.diagnostics.add(turn.context, turn.fields, {**turn.legal, **turn.listed})
        self.files.write(records)
        self._count(phase, len(turns) - len(failed), len(failed),
                    sum(1 for k in failed if turns[k].outcomes[phase] == "retried"))

    def _fallback(self, phase: str, turn: ResidentTurn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in PHASE_KEYS[phase]:
            if key == "primary":
                out["primary"] = "idle"
            elif key == "secondary":
                out["secondary"] = "none"
            elif key == "messages":
                out["messages"] = []
            elif key == "memory":
                out["memory"] = turn.memory
            else:
                out[key] = ""
        return out

    def _count(self, phase: str, valid: int, failed: int, retried: int = 0) -> None:
        counts = {"valid": valid, "retried": retried, "fallback": failed - retried}
        by_phase = self.stats["by_phase"].setdefault(phase, dict.fromkeys(LLM_OUTCOMES, 0))
        for outcome, n in counts.items():
            by_phase[outcome] += n
            if phase in DECISION_PHASES:
                self.stats[outcome] += n
        if phase in DECISION_PHASES:
            self.stats["decisions"] += valid + failed

    @staticmethod
    def _record_day(phase: str, turn: ResidentTurn) -> int:
        """The day a record belongs to: the memory phase writes down yesterday's outcome
        and is recorded under that day; every other phase under the day it decides."""
        return turn.yesterday["day"] if phase == "memory" and turn.yesterday else turn.day

    def _record(self, phase: str, turn: ResidentTurn, prompt: Chat, gen: Generation,
                attempt: int, outcome: str, error: str | None) -> dict[str, Any]:
        action = None
        if phase in DECISION_PHASES:
            action = {k: turn.fields[k] for k in ACTION_KEYS if k in turn.fields}
        out = transcript.record(turn.key, self._record_day(phase, turn), phase, attempt,
                                prompt, gen, outcome, error, action)
        if phase == "memory":
            out["asked_on_day"] = turn.day
        return out

    # ---- manipulation check ---------------------------------------------------------------
    def _ask_questionnaire(self, turns: list[ResidentTurn], in_day: bool) -> None:
        """The value questionnaire for ``turns``, with one batched retry of unusable answers.

        ``in_day``: at the end of the day's conversation, recorded under that day. Otherwise
        before the resident's first action, after the system prompt alone (with briefing v1,
        whose briefing carries the value text, after that text), recorded under the day
        before its first day: 0 for founders, the birth day for newcomers. Answers go to
        questionnaire.jsonl and are counted in ``stats["by_phase"]["questionnaire"]``.
        """
        text = self.prompts["questionnaire"].safe_substitute(items=quest.prompt_text())
        prompts = [(t.chat if in_day else t.chat[:1])
                   + [{"role": "user", "content": self._before_first_day(t) + text}]
                   for t in turns]
        schema = quest.answer_schema()
        gens = self._generate(prompts, [schema] * len(turns), turns, QUESTIONNAIRE, 1)
        checked = [self._check_questionnaire(g) for g in gens]
        failed = [k for k, (answers, _) in enumerate(checked) if answers is None]
        second: dict[int, tuple[Generation, Chat, tuple[dict | None, str | None]]] = {}
        if self.retry and failed:
            retry = {k: prompts[k] + [
                {"role": "assistant", "content": gens[k].text},
                {"role": "user", "content": self.prompts["retry"].safe_substitute(
                    error=checked[k][1])}] for k in failed}
            gens2 = self._generate([retry[k] for k in failed], [schema] * len(failed),
                                   [turns[k] for k in failed], QUESTIONNAIRE, 2)
            for k, g in zip(failed, gens2, strict=True):
                second[k] = (g, retry[k], self._check_questionnaire(g))
        rows, records = [], []
        for k, turn in enumerate(turns):
            env, agent = _split_key(turn.key)
            day = turn.day if in_day else turn.day - 1
            answers, error = checked[k]
            outcome = "valid"
            if answers is None:
                answers, error = second[k][2] if k in second else (None, error)
                outcome = "retried" if answers is not None else "fallback"
            row: dict[str, Any] = {"day": day, "agent": agent, "condition": turn.condition,
                                   "version": quest.QUESTIONNAIRE_VERSION,
                                   "first": not in_day, "outcome": outcome}
            if env is not None:
                row["env"] = env
            if answers is not None:
                row.update(answers=answers, scores=quest.score(answers))
            else:
                row["error"] = error
            rows.append(row)
            records.append(transcript.record(turn.key, day, QUESTIONNAIRE, 1, prompts[k],
                                             gens[k], outcome, checked[k][1]))
            if k in second:
                records.append(transcript.record(turn.key, day, QUESTIONNAIRE, 2, second[k][1],
                                                 second[k][0], outcome, second[k][2][1]))
        self.files.write(records)
        self.files.write_questionnaire(rows)
        self._count(QUESTIONNAIRE, len(turns) - len(failed), len(failed),
                    sum(1 for r in rows if r["outcome"] == "retried"))

    def _before_first_day(self, turn: ResidentTurn) -> str:
        """What precedes the day-0 questionnaire in its user message: briefing v1's value
        text (v2 and ``values=v1`` with briefing v2 put it in the system prompt)."""
        if self.cfg is None or self.cfg.briefing != "v1" or len(turn.chat) > 1:
            return ""
        text = personas.persona(turn.condition, "v1")
        return text + "\n\n" if text else ""

    @staticmethod
    def _check_questionnaire(gen: Generation) -> tuple[dict | None, str | None]:
        try:
            return quest.check(sch.parse_json(gen.text)), None
        except ValueError as err:
            return None, str(err)


def _said(fields: Mapping[str, Any]) -> str:
    msgs = fields.get("messages") or []
    return "; ".join(f"to {m['to']}: {m['text']}" for m in msgs) or "nothing"


def _chose(fields: Mapping[str, Any]) -> str:
    out = str(fields.get("primary", "idle"))
    if "factory" in fields:
        out += f" at factory {fields['factory']}"
    if fields.get("secondary", "none") != "none":
        out += f", {fields['secondary']} {fields.get('target', '')}".rstrip()
        if "amount" in fields:
            out += f" ({fields['amount']:g})"
    return out


def _answer_json(phase: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON answer a fallback stands for (kept in the conversation)."""
    out: dict[str, Any] = {}
    for key in PHASE_KEYS[phase]:
        if key == "primary":
            out[key] = {"kind": fields["primary"]}
        elif key == "secondary":
            out[key] = {"kind": fields["secondary"]}
        else:
            out[key] = fields[key]
    return out


def _split_key(key: Hashable) -> tuple[Any, str]:
    if isinstance(key, tuple) and len(key) >= 2:
        env = key[0] if isinstance(key[0], (int, str)) else str(key[0])
        return env, str(key[-1])
    return None, str(key)
