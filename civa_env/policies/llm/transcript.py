"""The LLM policy's files in a run folder: the transcript, the prompts used, the stats.

* ``transcript.jsonl``: one JSON object per prompt and answer, flushed after every batched
  call, so a crash leaves every finished call readable.
* ``llm_prompts.json``: the prompt version and texts the run used.
* ``questionnaire.jsonl``: one JSON object per resident's answer to the value
  questionnaire (day, agent, condition, answers, scores per value), flushed per call.
* ``llm_stats.json``: the policy's counters, rewritten (atomically) after every day.

``RunFiles.open`` starts them fresh: an earlier run's files in the folder are replaced.
"""

from __future__ import annotations

import json
import time
from collections.abc import Hashable, Mapping
from pathlib import Path
from string import Template
from typing import IO, Any

from civa_env.experiments.runfolder import atomic_open
from civa_env.policies.llm.models.base import Generation


class RunFiles:
    """Writes a run's transcript and stats; without a run folder every write does nothing."""

    def __init__(self) -> None:
        self.run_dir: Path | None = None
        self._transcript: IO[str] | None = None
        self._questionnaire: IO[str] | None = None

    def open(self, run_dir: Path | None, prompt_version: str,
             prompts: Mapping[str, Template]) -> None:
        """Write into ``run_dir`` from now on (None: stop writing); records the prompts."""
        self.close()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if self.run_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._transcript = open(self.run_dir / "transcript.jsonl", "w", encoding="utf-8")
        (self.run_dir / "questionnaire.jsonl").unlink(missing_ok=True)
        with atomic_open(self.run_dir / "llm_prompts.json") as f:
            f.write(json.dumps({"version": prompt_version, "prompts": {
                k: t.template for k, t in prompts.items()}}, indent=1))

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append transcript records and flush."""
        if self._transcript is None or not records:
            return
        self._transcript.write("".join(json.dumps(r) + "\n" for r in records))
        self._transcript.flush()

    def write_questionnaire(self, rows: list[dict[str, Any]]) -> None:
        """Append questionnaire answers to ``questionnaire.jsonl`` and flush (the file is
        created by the first answers of a run)."""
        if self.run_dir is None or not rows:
            return
        if self._questionnaire is None:
            self._questionnaire = open(self.run_dir / "questionnaire.jsonl", "w",
                                       encoding="utf-8")
        self._questionnaire.write("".join(json.dumps(r) + "\n" for r in rows))
        self._questionnaire.flush()

    def write_stats(self, stats: Mapping[str, Any], **extra: Any) -> None:
        """Rewrite ``llm_stats.json`` with ``stats``, ``extra`` and the time of writing."""
        if self.run_dir is None:
            return
        with atomic_open(self.run_dir / "llm_stats.json") as f:
            f.write(json.dumps(dict(stats, **extra, written_at=time.time()), indent=1))

    def close(self) -> None:
        """Close the transcript."""
        for f in (self._transcript, self._questionnaire):
            if f is not None:
                f.close()
        self._transcript = self._questionnaire = None


def record(key: Hashable, day: int, phase: str, attempt: int, prompt: list[dict[str, str]],
           gen: Generation, outcome: str, error: str | None,
           action: dict[str, Any] | None = None) -> dict[str, Any]:
    """One transcript line: a resident's prompt (its last message) and answer in a phase.

    A key ``(community, agent)`` is written as ``env`` and ``agent``. A retry (attempt 2)
    also records the answer it retried; ``action`` is the decision taken, in the phases
    that decide one.
    """
    env, agent = (key[0], key[-1]) if isinstance(key, tuple) and len(key) >= 2 else (None, key)
    out: dict[str, Any] = {
        "day": day, "agent": str(agent), "phase": phase, "attempt": attempt,
        "prompt": prompt[-1]["content"],
        "answer": gen.text, "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": gen.completion_tokens, "latency_s": round(gen.latency, 6),
        "outcome": outcome, "finish": gen.finish, "cached": gen.cached}
    if env is not None:
        out["env"] = env if isinstance(env, (int, str)) else str(env)
    if attempt == 2:
        out["previous_answer"] = prompt[-2]["content"]
    if error:
        out["error"] = error
    if action is not None:
        out["action"] = action
    return out
