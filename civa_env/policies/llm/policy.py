"""The LLM policy: residents driven by a language model through the study's daily cycle.

Each ``act`` serves every resident given (from one or several environments) with batched
calls, one per phase:

* ``mode="combined"`` (default, fastest): one call a day; each answer holds a reflection,
  messages, the primary and secondary action and the rewritten memory.
* ``mode="full"``: the study's cycle as four calls a day: perception (reflection and plan
  from the briefing and memory), communication (messages), action, and a memory update that
  rewrites a short summary.

A ``Batch`` gives each resident's briefing (``batch.texts``: the environment must render text),
what it may do now (``batch.legal(r)``) and the day. Prompts are versioned files
(``prompts.load_prompts``); the value prompt arrives inside the briefing. With
``constrained=True`` (default) each answer is decoded against the resident's own JSON schema
(``schema.answer_schema``). Every answer is parsed and checked (``schema.check_answer``);
failures get one batched retry with the error, then a safe default (idle, no messages),
reported in ``batch.results[key]`` and counted in ``self.stats``; the runner adds each
resident's decision outcome to ``metrics.json`` and ``residents.json``. The run folder gets
the transcript of every prompt and answer and the stats (``transcript.RunFiles``).

Options and their ``key=value`` coercion are in ``options``; the model layer (backends,
cache, fakes) in ``models``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civa_env.policies.base import Policy
from civa_env.policies.batch import Batch
from civa_env.policies.llm import schema as sch
from civa_env.policies.llm import transcript
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
    "perception": ["reflection", "plan"],
    "communication": ["messages"],
    "action": ["primary", "secondary"],
    "memory": ["memory"],
}
CYCLES = {"combined": ["combined"], "full": ["perception", "communication", "action", "memory"]}
DECISION_PHASES = ("combined", "action")
ACTION_KEYS = ("primary", "factory", "secondary", "target", "amount")


@dataclass
class ResidentTurn:
    """One resident's day in ``act``: what it was told and may do, and what it answered.

    ``fields`` gathers the checked answer fields of every phase so far (later phases see
    the earlier ones in their prompts), ``outcomes`` the outcome of each phase, ``errors``
    why a phase fell back.
    """

    key: Hashable
    briefing: str
    legal: Mapping[str, Any]
    allies: set[str]
    memory: str
    day: int
    fields: dict[str, Any] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class LLMPolicy(Policy):
    """Residents driven by a language model (see the module docstring).

    Args:
        model: hub id, local folder, or a ``LanguageModel``.
        backend: ``hf`` (transformers) or ``vllm``.
        mode: ``combined`` (one call a day) or ``full`` (four phases).
        temperature: 0 = greedy (cached, reproducible).
        seed: base sampling seed (``reset(seed=...)`` overrides it).
        max_new_tokens: tokens per answer; None = the schema's longest answer (a bound that
            lets constrained answers always finish), capped by ``max_new_tokens_cap``.
        constrained: decode against each resident's JSON schema.
        retry: one batched retry of failed answers with the error.
        cache: sqlite path of the answer cache, ``default`` or ``off``.
        reflection_chars, plan_chars, memory_chars, message_chars: text lengths.
        prompt_version: folder under ``prompts/``.
        **backend_options: passed to the backend (``device``, ``dtype``, ``max_batch_size``...).
    """

    name = "llm"

    def __init__(self, model: str | LanguageModel, backend: str = "hf", *,
                 mode: str = "combined", temperature: float = 0.0, seed: int = 0,
                 max_new_tokens: int | None = None, max_new_tokens_cap: int = 1024,
                 constrained: bool = True, retry: bool = True, cache: str | None = "default",
                 cache_sampled: bool = False, reflection_chars: int = 200, plan_chars: int = 160,
                 memory_chars: int = 300, message_chars: int = 160, prompt_version: str = "v1",
                 **backend_options: Any) -> None:
        if mode not in CYCLES:
            raise ValueError(f"llm mode must be one of {', '.join(CYCLES)}, got {mode!r}")
        self.mode, self.temperature, self.base_seed = mode, float(temperature), int(seed)
        self.max_new_tokens, self.max_new_tokens_cap = max_new_tokens, max_new_tokens_cap
        self.constrained, self.retry = bool(constrained), bool(retry)
        self.limits = {"reflection_chars": reflection_chars, "plan_chars": plan_chars,
                       "memory_chars": memory_chars, "message_chars": message_chars}
        self.prompt_version = prompt_version
        self.prompts = load_prompts(prompt_version)
        self.model_name = model if isinstance(model, str) else model.identity
        self.backend_name = backend
        self.backend = load_model(model, backend, **backend_options)
        self.counter = CountingModel(self.backend)
        self.model: LanguageModel = self.counter
        self.cache_path = cache_path(cache)
        if self.cache_path is not None:
            self.model = CachedModel(self.counter, self.cache_path, cache_sampled=cache_sampled)
        self.memory: dict[Hashable, str] = {}
        self.stats = self._empty_stats()
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
        """Forget memories and counters of the last episode."""
        if seed is not None:
            self.base_seed = int(seed)
        self.memory.clear()
        self.stats = self._empty_stats()
        self.day = 0

    def open_run(self, run_dir: Path | None) -> None:
        """Write ``transcript.jsonl``, ``llm_prompts.json`` and ``llm_stats.json`` into
        ``run_dir`` from now on (None: write nothing).

        The transcript starts fresh: an earlier run's transcript in ``run_dir`` is replaced.
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
                "prompt_version": self.prompt_version, **self.limits}

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
        turns = []
        for r, key in enumerate(batch.keys):
            legal = batch.legal(r)
            turns.append(ResidentTurn(key=key, briefing=batch.texts[r], legal=legal,
                                      allies=set(legal["allies"]),
                                      memory=self.memory.get(key, ""), day=int(batch.day[r])))
        for phase in CYCLES[self.mode]:
            if turns:
                self._run_phase(phase, turns)
        actions: dict[Hashable, Any] = {}
        for turn in turns:
            f = turn.fields
            actions[turn.key] = {k: f[k] for k in (*ACTION_KEYS, "messages") if k in f}
            if "memory" in f:
                self.memory[turn.key] = f["memory"]
            worst = max(turn.outcomes.values(), key=LLM_OUTCOMES.index)
            decision = next(turn.outcomes[p] for p in DECISION_PHASES if p in turn.outcomes)
            info: dict[str, Any] = {"outcome": worst, "decision": decision,
                                    "phases": turn.outcomes}
            if turn.errors:
                info["errors"] = turn.errors
            batch.results[turn.key] = info
        self.stats["days"] += 1
        self.files.write_stats(self.stats, model=self.model_name, mode=self.mode,
                               constrained=self.constrained)
        return actions

    def _prompt(self, phase: str, turn: ResidentTurn) -> list[dict[str, str]]:
        legal, f = turn.legal, turn.fields
        sent = "; ".join(f"to {m['to']}: {m['text']}" for m in f.get("messages", [])) or "none"
        action = f"{f.get('primary', 'idle')}" + (
            f" at factory {f['factory']}" if "factory" in f else "") + (
            f", {f['secondary']} {f.get('target', '')}" if f.get("secondary", "none") != "none"
            else "")
        user = self.prompts[phase].safe_substitute(
            briefing=turn.briefing, memory=turn.memory or "nothing yet",
            reflection=f.get("reflection") or "none", plan=f.get("plan") or "none",
            sent=sent, action=action, max_messages=legal.get("max_messages", 2),
            factories=", ".join(str(m) for m in legal.get("factories", [])) or "none",
            targets=", ".join(legal.get("targets", [])) or "nobody",
            **{**self.limits, "message_chars": min(
                self.limits["message_chars"], int(legal.get("max_message_chars", 10**6)))})
        return [{"role": "system", "content": self.prompts["system"].template.strip()},
                {"role": "user", "content": user}]

    def _generate(self, prompts: list[list[dict[str, str]]], schemas: list[Any],
                  turns: list[ResidentTurn], phase: str, attempt: int) -> list[Generation]:
        if self.max_new_tokens is not None:
            budget = self.max_new_tokens
        else:
            budget = min(self.max_new_tokens_cap,
                         max(sch.max_json_chars(s) for s in schemas) + 2)
        seed = (self.base_seed * 1_000_003 + self.day * 101 + attempt * 7
                + list(PHASE_KEYS).index(phase)) % 2**31
        try:
            gens = self.model.generate(prompts, max_new_tokens=budget,
                                       temperature=self.temperature, seed=seed,
                                       grammars=schemas if self.constrained else None)
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
        prompts = [self._prompt(phase, turn) for turn in turns]
        schemas = [sch.answer_schema(keys, turn.legal, turn.allies, self.limits)
                   for turn in turns]
        gens = self._generate(prompts, schemas, turns, phase, 1)
        results = [self._check(phase, turn, g) for turn, g in zip(turns, gens, strict=True)]
        ok_records = []
        failed = [k for k, (fields, _) in enumerate(results) if fields is None]
        for k, turn in enumerate(turns):
            if results[k][0] is not None:
                self._accept(phase, turn, results[k][0], "valid")
                ok_records.append(self._record(phase, turn, prompts[k], gens[k], 1, "valid",
                                               None))
        self.files.write(ok_records)
        if not failed:
            self._count(phase, len(turns), 0)
            return
        second: dict[int, tuple[Generation, tuple[dict | None, str | None]]] = {}
        retry_prompts: dict[int, list[dict[str, str]]] = {}
        if self.retry:
            for k in failed:
                retry_prompts[k] = prompts[k] + [
                    {"role": "assistant", "content": gens[k].text},
                    {"role": "user", "content": self.prompts["retry"].safe_substitute(
                        error=results[k][1])}]
            sub_turns = [turns[k] for k in failed]
            gens2 = self._generate([retry_prompts[k] for k in failed],
                                   [schemas[k] for k in failed], sub_turns, phase, 2)
            for k, g in zip(failed, gens2, strict=True):
                second[k] = (g, self._check(phase, turns[k], g))
        records = []
        for k in failed:
            turn = turns[k]
            fields = second[k][1][0] if k in second else None
            outcome = "retried" if fields is not None else "fallback"
            if fields is None:
                fields = self._fallback(phase, turn)
                error = second[k][1][1] if k in second else results[k][1]
                turn.errors.append(f"{phase}: {error}")
            self._accept(phase, turn, fields, outcome)
            records.append(self._record(phase, turn, prompts[k], gens[k], 1, outcome,
                                        results[k][1]))
            if k in second:
                records.append(self._record(phase, turn, retry_prompts[k], second[k][0], 2,
                                            outcome, second[k][1][1]))
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

    @staticmethod
    def _accept(phase: str, turn: ResidentTurn, fields: dict[str, Any], outcome: str) -> None:
        turn.fields.update(fields)
        turn.outcomes[phase] = outcome

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
    def _record(phase: str, turn: ResidentTurn, prompt: list[dict[str, str]],
                gen: Generation, attempt: int, outcome: str, error: str | None) -> dict[str, Any]:
        action = None
        if phase in DECISION_PHASES:
            action = {k: turn.fields[k] for k in ACTION_KEYS if k in turn.fields}
        return transcript.record(turn.key, turn.day, phase, attempt, prompt, gen, outcome,
                                 error, action)
