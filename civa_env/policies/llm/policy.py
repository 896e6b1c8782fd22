"""The LLM policy: residents driven by a language model through the study's daily cycle.

Each ``act`` serves every resident given (from one or several environments) with batched
calls, one per phase:

* ``mode="combined"`` (default, fastest): one call a day; each answer holds a reflection,
  messages, the primary and secondary action and the rewritten memory.
* ``mode="full"``: the study's cycle as four calls a day: perception (reflection and plan
  from the briefing and memory), communication (messages), action, and a memory update that
  rewrites a short summary.

Prompts are versioned files (``prompts/v1/*.txt``); the value prompt arrives inside the
briefing. With ``constrained=True`` (default) each answer is decoded against the resident's
own JSON schema (``schema.answer_schema``). Every answer is parsed and checked
(``schema.check_answer``); failures get one batched retry with the error, then a safe
default (idle, no messages), flagged in ``self.infos[key]["llm"]`` and counted in
``self.stats`` (written to ``llm_stats.json`` in the run folder after every day); the runner
adds each resident's decision outcomes to ``metrics.json`` and ``residents.json``. Every
prompt and answer goes to ``transcript.jsonl`` in the run folder (started fresh by
``open_run``), flushed after every call.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Hashable, Mapping
from pathlib import Path
from string import Template
from typing import Any

from civa_env.experiments.runfolder import atomic_open
from civa_env.policies.base import Policy
from civa_env.policies.llm import schema as sch
from civa_env.policies.llm.model import (
    CachedModel,
    CountingModel,
    Generation,
    LanguageModel,
    PromptTooLongError,
    load_model,
)
from civa_env.world.config import Config

PROMPT_DIR = Path(__file__).parent / "prompts"
PHASE_KEYS = {
    "combined": ["reflection", "messages", "primary", "secondary", "memory"],
    "perception": ["reflection", "plan"],
    "communication": ["messages"],
    "action": ["primary", "secondary"],
    "memory": ["memory"],
}
CYCLES = {"combined": ["combined"], "full": ["perception", "communication", "action", "memory"]}
DECISION_PHASES = ("combined", "action")
OUTCOMES = ("valid", "retried", "fallback")
_DAY_RE = re.compile(r"\bDay (\d+)\b")

# Policy options (the rest go to the backend), with their types for ``key=value`` strings.
OPTIONS: dict[str, type] = {
    "mode": str, "temperature": float, "seed": int, "max_new_tokens": int,
    "max_new_tokens_cap": int, "constrained": bool, "retry": bool, "cache": str,
    "cache_sampled": bool, "reflection_chars": int, "plan_chars": int, "memory_chars": int,
    "message_chars": int, "prompt_version": str,
}
BACKEND_OPTIONS: dict[str, type] = {
    "device": str, "dtype": str, "max_batch_size": int, "chat_template": str, "tokenizer": str,
    "attn_implementation": str, "compile": bool, "trust_remote_code": bool,
    "gpu_memory_utilization": float, "max_model_len": int, "tensor_parallel_size": int,
    "enable_prefix_caching": bool, "structured_backend": str,
}


def coerce(key: str, value: Any) -> Any:
    """Turn a ``--llm-option key=value`` string into the option's type."""
    kind = OPTIONS.get(key) or BACKEND_OPTIONS.get(key)
    if not isinstance(value, str) or kind in (None, str):
        return value
    if kind is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"llm option {key} must be true or false, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"llm option {key} must be a {kind.__name__}, got {value!r}") from None


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/civa_env/llm_cache.sqlite`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "civa_env" / "llm_cache.sqlite"


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
        self.prompts = self._load_prompts(prompt_version)
        self.model_name = model if isinstance(model, str) else model.identity
        self.backend_name = backend
        self.backend = load_model(model, backend, **backend_options)
        self.counter = CountingModel(self.backend)
        self.model: LanguageModel = self.counter
        self.cache_path: Path | None = None
        if cache not in (None, "", "off", "none", "false"):
            self.cache_path = default_cache_path() if cache == "default" else Path(cache)
            self.model = CachedModel(self.counter, self.cache_path, cache_sampled=cache_sampled)
        self.memory: dict[Hashable, str] = {}
        self.infos: dict[Hashable, dict[str, Any]] = {}
        self.stats = self._empty_stats()
        self.day = 0
        self.run_dir: Path | None = None
        self._transcript: Any = None

    # ---- lifecycle ------------------------------------------------------------------------
    @staticmethod
    def _load_prompts(version: str) -> dict[str, Template]:
        folder = PROMPT_DIR / version
        if not folder.is_dir():
            known = sorted(p.name for p in PROMPT_DIR.iterdir() if p.is_dir())
            raise ValueError(f"unknown prompt version {version!r}; known: {', '.join(known)}")
        return {p.stem: Template(p.read_text()) for p in folder.glob("*.txt")}

    @staticmethod
    def _empty_stats() -> dict[str, Any]:
        return {"days": 0, "calls": 0, "decisions": 0,
                **{o: 0 for o in OUTCOMES}, "by_phase": {},
                "prompt_tokens": 0, "completion_tokens": 0, "generation_s": 0.0,
                "cache_hits": 0, "cache_misses": 0}

    def reset(self, cfg: Config, seed: int | None = None) -> None:
        """Forget memories and counters of the last episode."""
        if seed is not None:
            self.base_seed = int(seed)
        self.memory.clear()
        self.infos.clear()
        self.stats = self._empty_stats()
        self.day = 0

    def open_run(self, run_dir: Path | None) -> None:
        """Write ``transcript.jsonl`` and ``llm_stats.json`` into ``run_dir`` from now on.

        The transcript starts fresh: an earlier run's transcript in ``run_dir`` is replaced.
        """
        self._close_transcript()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._transcript = open(self.run_dir / "transcript.jsonl", "w", encoding="utf-8")
            with atomic_open(self.run_dir / "llm_prompts.json") as f:
                f.write(json.dumps({"version": self.prompt_version, "prompts": {
                    k: t.template for k, t in self.prompts.items()}}, indent=1))

    def _close_transcript(self) -> None:
        if self._transcript is not None:
            self._transcript.close()
            self._transcript = None

    def close(self) -> None:
        """Close the transcript and the model."""
        self._close_transcript()
        self.model.close()

    def describe(self) -> dict[str, Any]:
        """Model, backend and settings for config.json."""
        return {"name": self.name, "model": self.model_name, "model_identity":
                self.backend.identity, "backend": self.backend_name, "mode": self.mode,
                "temperature": self.temperature, "seed": self.base_seed,
                "constrained": self.constrained, "retry": self.retry,
                "prompt_version": self.prompt_version, **self.limits}

    # ---- acting ---------------------------------------------------------------------------
    def act(self, observations: Mapping[Hashable, dict],
            infos: Mapping[Hashable, dict]) -> dict[Hashable, Any]:
        """One structured action per key; one batched model call per phase."""
        self.day += 1
        self.infos = {}
        rows: list[dict[str, Any]] = []
        actions: dict[Hashable, Any] = {}
        for key, obs in observations.items():
            legal = (infos.get(key) or {}).get("legal")
            text = obs.get("text", "") if isinstance(obs, Mapping) else ""
            if legal is None:
                if not text:
                    raise ValueError(f"the LLM policy needs text observations; {key!r} has "
                                     f"none: build the environment with obs_mode='text'")
                actions[key] = {"primary": "idle"}  # a dead resident's last observation
                continue
            match = _DAY_RE.search(text)
            rows.append({"key": key, "briefing": text, "legal": legal,
                         "allies": sch.allies_of(legal, text),
                         "memory": self.memory.get(key, ""),
                         "day": int(match.group(1)) if match else self.day,
                         "fields": {}, "outcomes": {}, "errors": []})
        for phase in CYCLES[self.mode]:
            if rows:
                self._run_phase(phase, rows)
        for row in rows:
            f = row["fields"]
            action = {k: f[k] for k in ("primary", "factory", "secondary", "target", "amount",
                                        "messages") if k in f}
            actions[row["key"]] = action
            if "memory" in f:
                self.memory[row["key"]] = f["memory"]
            worst = max(row["outcomes"].values(), key=OUTCOMES.index)
            decision = next(row["outcomes"][p] for p in DECISION_PHASES if p in row["outcomes"])
            # "decision" is the outcome counted in stats (and by the runner in metrics.json);
            # "outcome" is the worst of all phases (a dropped message counts there too).
            info = {"outcome": worst, "decision": decision, "phases": row["outcomes"]}
            if row["errors"]:
                info["errors"] = row["errors"]
            self.infos[row["key"]] = {"llm": info}
        self.stats["days"] += 1
        self._write_stats()
        return {key: actions[key] for key in observations}

    def _prompt(self, phase: str, row: dict[str, Any]) -> list[dict[str, str]]:
        legal, f = row["legal"], row["fields"]
        sent = "; ".join(f"to {m['to']}: {m['text']}" for m in f.get("messages", [])) or "none"
        action = f"{f.get('primary', 'idle')}" + (
            f" at factory {f['factory']}" if "factory" in f else "") + (
            f", {f['secondary']} {f.get('target', '')}" if f.get("secondary", "none") != "none"
            else "")
        user = self.prompts[phase].safe_substitute(
            briefing=row["briefing"], memory=row["memory"] or "nothing yet",
            reflection=f.get("reflection") or "none", plan=f.get("plan") or "none",
            sent=sent, action=action, max_messages=legal.get("max_messages", 2),
            factories=", ".join(str(m) for m in legal.get("factories", [])) or "none",
            targets=", ".join(legal.get("targets", [])) or "nobody",
            **{**self.limits, "message_chars": min(
                self.limits["message_chars"], int(legal.get("max_message_chars", 10**6)))})
        return [{"role": "system", "content": self.prompts["system"].template.strip()},
                {"role": "user", "content": user}]

    def _generate(self, prompts: list[list[dict[str, str]]], schemas: list[Any],
                  rows: list[dict[str, Any]], phase: str, attempt: int) -> list[Generation]:
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
            row = rows[err.index]
            raise ValueError(
                f"LLM prompt of {row['key']!r} ({phase}, day {row['day']}) has "
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

    def _check(self, phase: str, row: dict[str, Any], gen: Generation) -> tuple[dict | None,
                                                                               str | None]:
        keys = PHASE_KEYS[phase]
        try:
            answer = sch.parse_json(gen.text)
            return sch.check_answer(answer, keys, row["legal"], row["allies"], self.limits), None
        except ValueError as err:
            message = str(err)
            if gen.finish == "length":
                message += " (the answer was cut off: keep it shorter)"
            return None, message

    def _run_phase(self, phase: str, rows: list[dict[str, Any]]) -> None:
        keys = PHASE_KEYS[phase]
        prompts = [self._prompt(phase, row) for row in rows]
        schemas = [sch.answer_schema(keys, row["legal"], row["allies"], self.limits)
                   for row in rows]
        gens = self._generate(prompts, schemas, rows, phase, 1)
        results = [self._check(phase, row, g) for row, g in zip(rows, gens, strict=True)]
        ok_records = []
        failed = [k for k, (fields, _) in enumerate(results) if fields is None]
        for k, row in enumerate(rows):
            if results[k][0] is not None:
                self._accept(phase, row, results[k][0], "valid")
                ok_records.append(self._record(phase, row, prompts[k], gens[k], 1, "valid",
                                               None))
        self._write(ok_records)
        if not failed:
            self._count(phase, len(rows), 0)
            return
        second: dict[int, tuple[Generation, tuple[dict | None, str | None]]] = {}
        retry_prompts: dict[int, list[dict[str, str]]] = {}
        if self.retry:
            for k in failed:
                retry_prompts[k] = prompts[k] + [
                    {"role": "assistant", "content": gens[k].text},
                    {"role": "user", "content": self.prompts["retry"].safe_substitute(
                        error=results[k][1])}]
            sub_rows = [rows[k] for k in failed]
            gens2 = self._generate([retry_prompts[k] for k in failed],
                                   [schemas[k] for k in failed], sub_rows, phase, 2)
            for k, g in zip(failed, gens2, strict=True):
                second[k] = (g, self._check(phase, rows[k], g))
        records = []
        for k in failed:
            row = rows[k]
            fields = second[k][1][0] if k in second else None
            outcome = "retried" if fields is not None else "fallback"
            if fields is None:
                fields = self._fallback(phase, row)
                error = second[k][1][1] if k in second else results[k][1]
                row["errors"].append(f"{phase}: {error}")
            self._accept(phase, row, fields, outcome)
            records.append(self._record(phase, row, prompts[k], gens[k], 1, outcome,
                                        results[k][1]))
            if k in second:
                records.append(self._record(phase, row, retry_prompts[k], second[k][0], 2,
                                            outcome, second[k][1][1]))
        self._write(records)
        self._count(phase, len(rows) - len(failed), len(failed),
                    sum(1 for k in failed if rows[k]["outcomes"][phase] == "retried"))

    def _fallback(self, phase: str, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in PHASE_KEYS[phase]:
            if key == "primary":
                out["primary"] = "idle"
            elif key == "secondary":
                out["secondary"] = "none"
            elif key == "messages":
                out["messages"] = []
            elif key == "memory":
                out["memory"] = row["memory"]
            else:
                out[key] = ""
        return out

    @staticmethod
    def _accept(phase: str, row: dict[str, Any], fields: dict[str, Any], outcome: str) -> None:
        row["fields"].update(fields)
        row["outcomes"][phase] = outcome

    def _count(self, phase: str, valid: int, failed: int, retried: int = 0) -> None:
        counts = {"valid": valid, "retried": retried, "fallback": failed - retried}
        by_phase = self.stats["by_phase"].setdefault(phase, dict.fromkeys(OUTCOMES, 0))
        for outcome, n in counts.items():
            by_phase[outcome] += n
            if phase in DECISION_PHASES:
                self.stats[outcome] += n
        if phase in DECISION_PHASES:
            self.stats["decisions"] += valid + failed

    # ---- files ----------------------------------------------------------------------------
    def _record(self, phase: str, row: dict[str, Any], prompt: list[dict[str, str]],
                gen: Generation, attempt: int, outcome: str, error: str | None) -> dict[str, Any]:
        key = row["key"]
        env, agent = (key[0], key[-1]) if isinstance(key, tuple) and len(key) >= 2 else (None, key)
        record: dict[str, Any] = {
            "day": row["day"], "agent": str(agent), "phase": phase, "attempt": attempt,
            "prompt": prompt[-1]["content"],
            "answer": gen.text, "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens, "latency_s": round(gen.latency, 6),
            "outcome": outcome, "finish": gen.finish, "cached": gen.cached}
        if env is not None:
            record["env"] = env if isinstance(env, (int, str)) else str(env)
        if attempt == 2:
            record["previous_answer"] = prompt[-2]["content"]
        if error:
            record["error"] = error
        if phase in DECISION_PHASES:
            f = row["fields"]
            record["action"] = {k: f[k] for k in ("primary", "factory", "secondary", "target",
                                                  "amount") if k in f}
        return record

    def _write(self, records: list[dict[str, Any]]) -> None:
        if self._transcript is None or not records:
            return
        self._transcript.write("".join(json.dumps(r) + "\n" for r in records))
        self._transcript.flush()

    def _write_stats(self) -> None:
        if self.run_dir is None:
            return
        stats = dict(self.stats, model=self.model_name, mode=self.mode,
                     constrained=self.constrained, written_at=time.time())
        with atomic_open(self.run_dir / "llm_stats.json") as f:
            f.write(json.dumps(stats, indent=1))
