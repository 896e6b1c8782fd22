"""The step loop: mix policies in one community (or several), step, and write the run folder.

A resident is controlled by one policy for its whole life. Founders are assigned to the
policies of a mix (``{"llm": 0.2, "ppo:model.zip": 0.3, "scripted": 0.5}``) by seed, in
exact proportions (largest remainder); newcomers inherit their parent's policy. Each day each
policy is called **once** with one ``Batch`` of all the residents it controls, across all the
communities of the loop (keys are agent names with one community, ``(community, agent)``
tuples with several), so that an LLM policy makes one batched call a day. The loop drives
``civa_env.world`` directly (``reset``/``step``), with no PettingZoo env in between.

Seeds: the founders' policies are drawn from the seed's assignment stream and each policy of
the mix is seeded from its own stream (``world.day.policy_seed``), so that the world's own
streams are untouched by how many policies a run has.

The run folder (see docs/run-folder.md) is written as the run goes: ``config.json`` and
``residents.json`` first, ``events.jsonl`` one day at a time (a crash leaves it readable up
to the last finished day), then ``metrics.json`` (written last, atomically: its presence
with ``"status": "complete"`` marks a finished run; a policy with LLM behaviour diagnostics,
``policy.diagnostics``, adds them under ``llm.diagnostics``: see ``llm_diagnostics``; an LLM
policy's tokens and cost estimate go under ``llm.usage``: see ``llm_usage``) and the PNG
plots. A run stopped by an LLM policy's token budget (``BudgetExhausted``) keeps what it
wrote, with ``"status": "stopped: <reason>"`` in config.json; any other error leaves
``"failed: <error>"``, and an interruption (Ctrl-C, or SIGTERM inside the ``civa`` command:
see ``civa_env.experiments.signals``) ``"interrupted: SIGINT (Ctrl-C)"`` or
``"interrupted: SIGTERM"``. Progress (``progress=True``) is a tqdm bar on a terminal and plain
lines otherwise (``civa_env.experiments.progress``). Breakdowns by policy and by value
condition come from ``civa_env.experiments.breakdown``; folder helpers from
``civa_env.experiments.runfolder``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from civa_env import __version__
from civa_env import world as world_fn
from civa_env.experiments.breakdown import breakdown, llm_counts, residents_table
from civa_env.experiments.progress import Progress
from civa_env.experiments.runfolder import (
    clear_policy_files,
    prepare_run_dir,
    write_json_atomic,
)
from civa_env.experiments.signals import describe_interrupt, interruption
from civa_env.policies.base import Policy, make_policy
from civa_env.policies.batch import Batch
from civa_env.policies.llm.budget import BudgetExhausted
from civa_env.policies.llm.diagnostics import Diagnostics
from civa_env.world import behaviours, metrics
from civa_env.world.config import Config
from civa_env.world.day import (
    NETWORK_FIELDS,
    assignment_rng,
    check_same_shape,
    fresh_seed,
    policy_seed,
)
from civa_env.world.events import agent_index, agent_name
from civa_env.world.kinds import LLM_OUTCOMES
from civa_env.world.values import N_CONDITION_CODES, ValueCondition


# ---- policy mixes -----------------------------------------------------------------------------
def parse_mix(spec: str | Mapping[str, float]) -> dict[str, float]:
    """``"scripted"``, ``"scripted=0.5,random=0.5"`` or a dict -> {policy spec: fraction}.

    Names without a fraction share what the others leave (``"llm=0.2,scripted"``). Fractions
    must be in [0, 1] and sum to 1 (within 1e-6).
    """
    if isinstance(spec, Mapping):
        items = [(str(k), float(v)) for k, v in spec.items()]
    else:
        items = []
        for part in str(spec).split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, frac = part.rpartition("=")
            if not sep:
                items.append((part, float("nan")))
                continue
            try:
                items.append((name.strip(), float(frac)))
            except ValueError:
                raise ValueError(f"policy mix {spec!r}: {frac!r} is not a fraction") from None
    if not items:
        raise ValueError(f"empty policy mix {spec!r}; write e.g. 'scripted' or "
                         "'scripted=0.5,random=0.5'")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"policy mix {spec!r} names a policy twice")
    given = sum(f for _, f in items if not np.isnan(f))
    free = [n for n, f in items if np.isnan(f)]
    out = {}
    for name, frac in items:
        if not name:
            raise ValueError(f"policy mix {spec!r}: a fraction without a policy name")
        if np.isnan(frac):
            frac = (1.0 - given) / len(free)
        if not 0.0 <= frac <= 1.0 + 1e-9:
            raise ValueError(f"policy mix {spec!r}: fraction of {name!r} must be in [0, 1]")
        out[name] = frac
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValueError(f"policy mix {spec!r}: fractions sum to {sum(out.values()):g}, not 1")
    return out


def format_mix(mix: Mapping[str, float]) -> str:
    """Inverse of ``parse_mix`` (a single policy is written bare)."""
    if len(mix) == 1:
        return next(iter(mix))
    return ",".join(f"{name}={frac:g}" for name, frac in mix.items())


def assign_policies(mix: Mapping[str, float], n: int, rng: np.random.Generator) -> list[str]:
    """Policy spec of each of ``n`` founders: exact counts by largest remainder, seeded order."""
    names = list(mix)
    quota = np.array([mix[name] * n for name in names])
    counts = np.floor(quota).astype(int)
    remainder = quota - counts
    for k in np.argsort(-remainder, kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    labels = np.repeat(np.arange(len(names)), counts)
    return [names[k] for k in labels[rng.permutation(n)]]


# ---- results ----------------------------------------------------------------------------------
@dataclass
class RunResult:
    """What one community's run produced."""

    seed: int
    summary: dict[str, Any]  # metrics.summarize of the log plus by_policy / by_condition
    residents: dict[str, dict[str, Any]]  # agent -> policy, condition, parent, born/died day
    run_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ---- the loop ---------------------------------------------------------------------------------
class _Episode:
    """One community of the loop, with its policy owners and its open run folder."""

    def __init__(self, index: int, cfg: Config, seed: int, run_dir: Path | None,
                 mix: dict[str, float], specs: list[str], header: dict[str, Any]) -> None:
        self.index, self.seed, self.run_dir, self.cfg = index, seed, run_dir, cfg
        self.world = world_fn.reset(cfg, seed)
        self.specs = specs
        self.owner = np.full(cfg.max_agents, -1, np.int64)
        founders = assign_policies(mix, cfg.n_agents, assignment_rng(seed))
        self.owner[: cfg.n_agents] = [specs.index(s) for s in founders]
        self.llm = np.zeros((cfg.max_agents, len(LLM_OUTCOMES)), np.int64)  # (N, 3)
        self.header = header
        self.diagnostics: dict[str, dict[str, Any]] = {}  # set by run_communities at the end
        self.usage: dict[str, dict[str, Any]] = {}  # likewise
        self.events_file = None
        if run_dir is not None:
            self._write_config("running")
            write_json_atomic(run_dir / "residents.json", self._residents())
            self.events_file = open(run_dir / "events.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    @property
    def running(self) -> bool:
        return not self.world.done

    def _residents(self) -> dict[str, dict]:
        return residents_table(self.world, self.owner, self.specs, self.llm)

    def _write_config(self, status: str) -> None:
        residents = {agent_name(i): self.specs[o] for i, o in enumerate(self.owner.tolist())
                     if o >= 0}
        write_json_atomic(self.run_dir / "config.json", {
            **self.header, "seed": self.seed, "env": self.cfg.to_dict(),
            "residents": residents, "status": status})

    def batches(self, single: bool) -> dict[int, Batch]:
        """Today's batch of each policy (by index in ``specs``) for this community."""
        living = self.world.living
        seen = self.world.observe(living)
        owner = self.owner[living]
        out = {}
        for g in np.unique(owner).tolist():
            sel = (owner == g).nonzero()[0]
            names = [agent_name(i) for i in living[sel].tolist()]
            keys = names if single else [(self.index, a) for a in names]
            out[g] = Batch.from_seen(seen, keys, sel)
        return out

    def step(self, actions: Mapping[str, Any]) -> None:
        """Play a day; give newcomers their parent's policy; append the day to events.jsonl."""
        self.world, day = world_fn.step(self.world, actions)
        for i in day.born.tolist():
            self.owner[i] = self.owner[day.after.parent[i]]
        if self.events_file is not None:
            self.world.log.write_day(self.events_file, self.world.log.n_days - 1)
            if len(day.born):
                write_json_atomic(self.run_dir / "residents.json", self._residents())

    def finish(self, plots: bool) -> RunResult:
        """Close the log, compute the summary and breakdowns, write metrics and plots.

        ``self.diagnostics`` ({policy spec: ``Diagnostics.summary()``}, see
        ``llm_diagnostics``), when given, goes into the summary as ``llm.diagnostics``, and
        ``self.usage`` (see ``llm_usage``) as ``llm.usage``.
        """
        world, cfg = self.world, self.cfg
        summary = metrics.summarize(world.log, cfg)
        # One behaviour detection over the log for both breakdowns.
        cols, texts = world.log.columns()
        masks = behaviours.detect(cols, texts, world.log.census, recent_days=cfg.recent_days,
                                  deception_window=cfg.deception_window)
        llm = self.llm if self.llm.any() else None
        summary["by_policy"] = breakdown(world, self.owner, self.specs, cols=cols, masks=masks,
                                         llm=llm)
        state = world.state
        codes = np.where(np.arange(state.n_pool) < state.n_used,
                         state.condition.astype(np.int64), -1)
        labels = [str(ValueCondition.from_code(c)) for c in range(N_CONDITION_CODES)]
        summary["by_condition"] = breakdown(world, codes, labels, cols=cols, masks=masks,
                                            llm=llm)
        if llm is not None:
            summary["llm"] = llm_counts(llm)
        if self.diagnostics:
            summary.setdefault("llm", {})["diagnostics"] = dict(self.diagnostics)
        if self.usage:
            summary.setdefault("llm", {})["usage"] = dict(self.usage)
        residents = self._residents()
        self._close_events()
        if self.run_dir is not None:
            write_json_atomic(self.run_dir / "residents.json", residents)
            self._write_config("complete")
            metrics_json = {"status": "complete", "civa_version": __version__, "seed": self.seed,
                            "condition": cfg.condition, "prevalence": cfg.prevalence,
                            "policy": self.header["policy"], **summary}
            if plots:
                from civa_env.experiments import plots as plots_module

                plots_module.plot_run(self.run_dir, summary)
            write_json_atomic(self.run_dir / "metrics.json", metrics_json)
        return RunResult(self.seed, summary, residents, self.run_dir)

    def _close_events(self) -> None:
        if self.events_file is not None:
            self.events_file.close()
            self.events_file = None

    def fail(self, err: BaseException) -> None:
        """Mark the run folder as failed, interrupted (Ctrl-C, SIGTERM) or stopped by a token
        budget (events.jsonl stays readable)."""
        self._close_events()
        if self.run_dir is not None:
            stop = interruption(err)  # also one wrapped in another error (see interruption)
            if isinstance(err, BudgetExhausted):
                status = f"stopped: {err}"
            elif stop is not None:
                status = f"interrupted: {describe_interrupt(stop)}"
            else:
                status = f"failed: {type(err).__name__}: {err}"
            self._write_config(status[:500])


def run_communities(cfgs: Sequence[Config], seeds: Sequence[int],
                    mix: str | Mapping[str, float] = "scripted",
                    run_dirs: Sequence[Path | None] | None = None, *,
                    policy_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
                    policies: Mapping[str, Policy] | None = None, progress: bool = True,
                    plots: bool = True, overwrite: bool = False,
                    policy_dir: Path | None = None) -> list[RunResult]:
    """Run several communities in one step loop (one ``act`` per policy per day).

    Args:
        cfgs: one config per environment (shape fields must agree).
        seeds: one seed per environment.
        mix: policy mix (see ``parse_mix``).
        run_dirs: one folder per environment, or None entries/None not to save.
        policy_kwargs: keyword arguments per policy name (the part before ':').
        policies: already built policies by spec (reused, not closed here).
        progress: show progress (a tqdm bar on a terminal, plain lines otherwise).
        plots: write the PNG plots into each run folder.
        overwrite: replace earlier runs in the run folders (and an earlier run's
            ``POLICY_FILES`` in ``policy_dir``).
        policy_dir: folder given to ``policy.open_run`` (default: the only run folder).
    """
    mix = parse_mix(mix)
    specs = list(mix)
    if len(cfgs) != len(seeds):
        raise ValueError("one seed per config is needed")
    check_same_shape(cfgs, NETWORK_FIELDS, "the communities of one loop share their "
                     "policies, so their factory slots, view_size and gift_levels must "
                     "agree")
    # A run given no seed gets a fresh one, recorded in config.json like any other.
    seeds = [int(s) if s is not None else fresh_seed() for s in seeds]
    run_dirs = list(run_dirs) if run_dirs is not None else [None] * len(cfgs)
    policy_kwargs = dict(policy_kwargs or {})
    built: dict[str, Policy] = {}
    owned: list[Policy] = []
    episodes: list[_Episode] = []
    try:
        for spec in specs:
            if policies and spec in policies:
                built[spec] = policies[spec]
            else:
                kwargs = dict(policy_kwargs.get(spec.partition(":")[0], {}))
                built[spec] = make_policy(spec, **kwargs)
                owned.append(built[spec])
        for spec in specs:
            for name in built[spec].same_across_communities:
                values = [getattr(c, name) for c in cfgs]
                if len(set(values)) > 1:
                    raise ValueError(f"the {spec} policy serves every community of the loop "
                                     f"and needs one {name}; got {values}: run them apart")
        # Folders are touched only once every policy could be built.
        run_dirs = [prepare_run_dir(Path(d), overwrite) if d is not None else None
                    for d in run_dirs]
        header = {"civa_version": __version__, "policy": format_mix(mix),
                  "policies": {s: {"fraction": mix[s], **built[s].describe()} for s in specs}}
        if policy_dir is None and len(run_dirs) == 1:
            policy_dir = run_dirs[0]
        elif policy_dir is not None and overwrite and Path(policy_dir) not in run_dirs:
            clear_policy_files(Path(policy_dir))
        # Policies learn the rules and layout from the first community's config (the shape
        # fields agree across communities: checked above, with what a policy says it needs).
        for k, spec in enumerate(specs):
            built[spec].reset(cfgs[0], seed=policy_seed(seeds[0], k))
            built[spec].open_run(policy_dir)
        # Appended one by one: if the k-th cannot be built, the earlier ones are failed below.
        for e, (cfg, seed, d) in enumerate(zip(cfgs, seeds, run_dirs, strict=True)):
            episodes.append(_Episode(e, cfg, int(seed), d, mix, specs, header))
        _loop(episodes, built, specs, progress)
        for ep in episodes:
            ep.diagnostics = llm_diagnostics(built)
            ep.usage = llm_usage(built)
        return [ep.finish(plots) for ep in episodes]
    except BaseException as err:
        for ep in episodes:
            ep.fail(err)
        raise
    finally:
        for pol in owned:
            pol.close()


def llm_diagnostics(built: Mapping[str, Policy]) -> dict[str, dict[str, Any]]:
    """``{policy spec: diagnostics.summary()}`` of the policies with a ``diagnostics``
    attribute that is a ``civa_env.policies.llm.diagnostics.Diagnostics``.

    Always keyed by spec, even with one LLM policy, so that readers never branch. A policy
    serves every community of the loop: with several, its figures cover all of them and
    each community's summary gets the same ones.
    """
    return {spec: pol.diagnostics.summary() for spec, pol in built.items()
            if isinstance(getattr(pol, "diagnostics", None), Diagnostics)}


def llm_usage(built: Mapping[str, Policy]) -> dict[str, dict[str, Any]]:
    """``{policy spec: policy.usage()}`` of the LLM policies: tokens (prompt, completion,
    total) and the cost estimate (None without prices).

    Keyed by spec like ``llm_diagnostics``; with several communities in one loop a policy's
    figures cover all of them.
    """
    from civa_env.policies.llm.policy import LLMPolicy

    return {spec: pol.usage() for spec, pol in built.items() if isinstance(pol, LLMPolicy)}


def _loop(episodes: list[_Episode], built: Mapping[str, Policy], specs: list[str],
          progress: bool) -> None:
    single = len(episodes) == 1
    total = max(ep.cfg.max_days for ep in episodes)
    with Progress(total, "civa", "day", enabled=progress, leave=False) as bar:
        while any(ep.running for ep in episodes):
            parts: dict[int, list[Batch]] = {}
            for ep in episodes:
                if ep.running:
                    for g, part in ep.batches(single).items():
                        parts.setdefault(g, []).append(part)
            actions: dict[Any, Any] = {}
            for g, group in sorted(parts.items()):
                batch = Batch.concat(group)
                chosen = built[specs[g]].act(batch)
                missing = set(batch.keys) - set(chosen)
                if missing:
                    raise RuntimeError(f"policy {specs[g]!r} returned no action for "
                                       f"{sorted(map(str, missing))[:3]}")
                actions.update(chosen)
                _count_outcomes(episodes, batch.results, single)
            population = 0
            for ep in episodes:
                if not ep.running:
                    continue
                names = [agent_name(i) for i in ep.world.living.tolist()]
                mine = {a: actions[a if single else (ep.index, a)] for a in names}
                ep.step(mine)
                population += int(ep.world.state.alive.sum())
            bar.set_postfix(population=population)
            bar.update(1)


def _count_outcomes(episodes: list[_Episode], results: Mapping[Hashable, Mapping[str, Any]],
                    single: bool) -> None:
    """Count each resident's LLM decision outcome reported in a batch's results."""
    for key, info in results.items():
        outcome = info.get("decision") if isinstance(info, Mapping) else None
        if outcome not in LLM_OUTCOMES:
            continue
        ep = episodes[0] if single else episodes[key[0]]
        agent = key if single else key[1]
        ep.llm[agent_index(agent), LLM_OUTCOMES.index(outcome)] += 1


def run_community(cfg: Config, mix: str | Mapping[str, float] = "scripted", seed: int = 0,
                  run_dir: Path | None = None, **kwargs: Any) -> RunResult:
    """Run one community (see ``run_communities`` for the keyword arguments)."""
    return run_communities([cfg], [seed], mix, [run_dir], **kwargs)[0]
