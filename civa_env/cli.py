"""The ``civa`` command: run one community, sweep a grid, report a sweep, view a run.

    civa run                                   # 25 scripted residents, 30 days, seed 0
    civa run --condition without:benevolence --prevalence 0.5 --seed 3 --out runs/wob
    civa run --policy scripted=0.5,random=0.5 --set outage_prob=0.2
    civa sweep --conditions baseline,without:benevolence,with:power \\
               --prevalence 0,0.25,0.5,0.75,1 --seeds 5 --workers 2 --out runs/sweep
    civa report runs/sweep
    civa view runs/wob

Bad input gives one line on stderr (``civa: error: ...``) and a non-zero exit; see
docs/cli.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from civa_env.experiments.runfolder import POLICY_FILES, SettingError, check_run_dir, env_fields
from civa_env.world.config import Config
from civa_env.world.values import all_conditions

DEFAULT_PREVALENCES = "0,0.25,0.5,0.75,1"
EXIT_STOPPED = 3  # civa run stopped by an LLM token budget (llm option max_tokens_total)
FORMAT_HELP = ("figure files, comma-separated: png (200 dpi), pdf, svg (vector); default "
               "png,pdf")


class _Parser(argparse.ArgumentParser):
    """Argparse with one-line errors (``civa: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"civa: error: {message} (see civa {self._sub_name()}--help)\n")

    def _sub_name(self) -> str:
        parts = self.prog.split()
        return f"{parts[-1]} " if len(parts) > 1 else ""


def _key_values(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> {"a": 1, "b": "x"} (values read as JSON when they parse)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} expects key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag} expects numbers separated by commas, got {text!r}") from None


def _conditions(text: str) -> list[str]:
    """--conditions: 'all' or conditions separated by commas, at least one."""
    if text.strip() == "all":
        return all_conditions()
    conditions = [c.strip() for c in text.split(",") if c.strip()]
    if not conditions:
        raise ValueError(f"--conditions names no condition (got {text!r}); give e.g. "
                         "baseline,with:power,without:benevolence or all")
    return conditions


def _prevalences(text: str, flag: str) -> list[float]:
    """--prevalence(s): numbers separated by commas, at least one."""
    values = _floats(text, flag)
    if not values:
        raise ValueError(f"{flag} names no prevalence (got {text!r}); give numbers in [0, 1] "
                         "separated by commas, e.g. 0,0.5,1")
    return values


def _base_config(value: str | None) -> Config:
    """--config: a run's config.json (or any JSON file of Config fields), or a JSON object."""
    if not value:
        return Config()
    if value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except ValueError as err:
            raise ValueError(f"--config: not a valid JSON object ({err})") from None
        if not isinstance(data, dict):
            raise ValueError("--config: expected a JSON object of Config fields")
        try:
            return Config.from_dict(env_fields(data))
        except (TypeError, ValueError) as err:
            raise ValueError(f"--config: {err}") from None
    try:
        return Config.load(value)  # names the file in its errors (a folder, bad JSON...)
    except UnicodeDecodeError as err:
        raise ValueError(f"--config {value}: not a UTF-8 text file (byte {err.start}: "
                         f"{err.reason})") from None


def _config(args: argparse.Namespace, **grid: Any) -> Config:
    """Config from --config (file or JSON object), then --set, then the explicit flags."""
    cfg = _base_config(args.config)
    overrides = _key_values(args.set, "--set")
    flags = {"n_agents": args.agents, "max_days": args.days, **grid}
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if "n_agents" in overrides and "max_agents" not in overrides:
        overrides["max_agents"] = None  # keep the pool at 4 x n_agents
    return cfg.replace(**overrides) if overrides else cfg


def _policy_kwargs(args: argparse.Namespace, mix: dict[str, float]) -> dict[str, dict]:
    options = _key_values(args.llm_option, "--llm-option")
    if args.model:
        options["model"] = args.model
    if not options:
        return {}
    if not any(spec.partition(":")[0] == "llm" for spec in mix):
        raise ValueError("--model and --llm-option apply to llm residents; add llm to --policy "
                         "(e.g. --policy llm or --policy llm=0.2,scripted=0.8)")
    return {"llm": options}


def _check_policies(mix: dict[str, float]) -> None:
    from civa_env.policies import available_policies

    known = available_policies()
    for spec in mix:
        if spec.partition(":")[0] not in known:
            raise ValueError(f"unknown policy {spec!r}; known policies: {', '.join(known)}")


def _default_out() -> Path:
    base = Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
    out, k = base, 2
    while out.exists():
        out, k = Path(f"{base}-{k}"), k + 1
    return out


# ---- civa run ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    """Simulate one community (or --envs of them in one loop) and print a summary.

    Every input is checked before the output folder is touched: the config, the seed, the
    output folder (an earlier run is replaced only with --overwrite, and only when it holds
    nothing but CIVA's own files) and the policies, built and reset for the world (a
    checkpoint that does not fit it is refused here). A folder this command created is
    removed again when the run fails before writing anything into it.
    """
    from civa_env.experiments.runner import parse_mix, run_communities
    from civa_env.policies.llm.budget import BudgetExhausted

    mix = parse_mix(args.policy)
    _check_policies(mix)
    kwargs = _policy_kwargs(args, mix)
    cfg = _config(args, condition=args.condition, prevalence=args.prevalence)
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    seed = args.seed if args.seed is not None else (cfg.seed if cfg.seed is not None else 0)
    if args.envs < 1:
        raise ValueError(f"--envs must be >= 1, got {args.envs}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    seeds = [seed + k for k in range(args.envs)]
    cfgs = [cfg.replace(seed=s) for s in seeds]
    out = Path(args.out) if args.out else _default_out()
    dirs, policy_dir = _run_dirs(out, args.envs, args.overwrite)
    _threads(args.threads, mix, kwargs)
    policies = _ready_policies(mix, kwargs, cfgs, seeds)
    new = [d for d in (out, *dirs) if not d.exists()]
    try:
        if policy_dir is not None:
            out.mkdir(parents=True, exist_ok=True)
        results = run_communities(cfgs, seeds, mix, dirs, policy_kwargs=kwargs,
                                  policies=policies, progress=not args.no_progress,
                                  plots=not args.no_plots, overwrite=args.overwrite,
                                  policy_dir=policy_dir)
    except BudgetExhausted as err:
        print(f"civa: stopped: {_one_line(err)}. {out} keeps what was done (config.json "
              f"status \"stopped\", no metrics.json)", file=sys.stderr)
        return EXIT_STOPPED
    except BaseException:
        _remove_if_empty(new)
        raise
    finally:
        for policy in policies.values():
            policy.close()
    for result in results:
        print(format_summary(result, cfg))
    return 0


def _run_dirs(out: Path, envs: int, overwrite: bool) -> tuple[list[Path], Path | None]:
    """The run folders of ``civa run`` and the folder of the policies' own files (None: the
    run folder), each checked (``check_run_dir``); touches nothing."""
    if envs == 1:
        check_run_dir(out, overwrite)
        return [out], None
    # OUT holds env_k run folders and the policies' own files (an llm transcript).
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} is a file, not a folder; choose another --out")
    if out.is_dir() and not all(_multi_env_entry(p) for p in out.iterdir()):
        raise ValueError(f"output folder {out} holds something else; choose another --out")
    dirs = [out / f"env_{k}" for k in range(envs)]
    for d in dirs:  # check all before running any
        check_run_dir(d, overwrite)
    if not overwrite and any((out / name).exists() for name in POLICY_FILES):
        raise ValueError(f"output folder {out} already holds a run; pass --overwrite")
    return dirs, out


def _ready_policies(mix: dict[str, float], kwargs: dict[str, dict], cfgs: Sequence[Config],
                    seeds: Sequence[int]) -> dict[str, Any]:
    """Build each policy of the mix and reset it for the first community, as the run will:
    a policy that cannot be built or does not fit the world (a checkpoint trained for
    another feature size) fails here, before any folder is touched. The caller closes
    them."""
    from civa_env.policies.base import make_policy
    from civa_env.world.day import policy_seed

    built: dict[str, Any] = {}
    try:
        for k, spec in enumerate(mix):
            built[spec] = make_policy(spec, **kwargs.get(spec.partition(":")[0], {}))
            built[spec].reset(cfgs[0], seed=policy_seed(seeds[0], k))
    except BaseException:
        for policy in built.values():
            policy.close()
        raise
    return built


def _remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove the folders of ``folders`` that are empty, the deepest first (a run that failed
    before writing anything leaves no empty folder behind)."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _threads(threads: int | None, mix: dict[str, float], kwargs: dict[str, dict]) -> None:
    """--threads: torch's CPU threads for the transformers LLM backend (llm option
    ``threads``) and for PPO residents; nothing to do for other policies and backends."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    names = {spec.partition(":")[0] for spec in mix}
    if "llm" in names and kwargs.get("llm", {}).get("backend", "hf") == "hf":
        kwargs.setdefault("llm", {}).setdefault("threads", threads)
    if "ppo" in names:
        from civa_env.policies.threads import torch_threads

        torch_threads(threads)


def _multi_env_entry(path: Path) -> bool:
    """What an earlier ``civa run --envs N`` leaves in its --out root."""
    if path.is_dir():
        return path.name.startswith("env_")
    return path.name in POLICY_FILES


def format_summary(result: Any, cfg: Config) -> str:
    """A plain-text summary table of a run."""
    from civa_env.experiments.breakdown import group_table

    s = result.summary
    lines = [f"CIVA run: {cfg.n_agents} residents, {cfg.max_days} days, condition "
             f"{cfg.condition} (prevalence {cfg.prevalence:g}), seed {result.seed}", ""]
    rows = [("nAUP (population kept)", f"{s['nAUP']:.3f}"),
            ("SC (social capital)", f"{s['SC']:+.3f}"),
            ("ED (1 - Gini)", f"{s['ED']:.3f}"),
            ("IC (communication)", f"{s['IC']:.3f}"),
            ("CC (output per resident-day)", f"{s['CC']:.3f}"),
            ("final population", str(s["final_population"])),
            ("extinct on day", "-" if s["extinct_day"] is None else str(s["extinct_day"])),
            ("lag-1 autocorrelation", f"{s['autocorr_lag1']:.3f}")]
    rows += [(f"{b.replace('_', '-')} per resident-day", f"{r:.4f}")
             for b, r in s["behaviour_rates"].items()]
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    for title, groups in (("by policy", s["by_policy"]), ("by value condition", s["by_condition"])):
        lines += ["", f"  {title}:", *group_table(groups)]
    lines += usage_lines(s)
    warned = diagnostic_warnings(s)
    if warned:
        lines += [""] + warned
    if result.run_dir is not None:
        lines += ["", f"Run folder: {result.run_dir}  (view it: civa view {result.run_dir})"]
    return "\n".join(lines)


def usage_lines(summary: dict[str, Any]) -> list[str]:
    """One line per LLM policy of a run summary: its tokens and, with prices, their cost."""
    out = []
    for spec, u in ((summary.get("llm") or {}).get("usage") or {}).items():
        cost = "" if u.get("cost_usd") is None else f", estimated cost ${u['cost_usd']:.4f}"
        out.append(f"  LLM tokens ({spec}): {u['tokens']} (prompt {u['prompt_tokens']}, "
                   f"completion {u['completion_tokens']}){cost}")
    return [""] + out if out else []


def diagnostic_warnings(summary: dict[str, Any]) -> list[str]:
    """``warning: POLICY: ...`` lines for the LLM diagnostics of a run summary that look
    degenerate (``civa_env.policies.llm.diagnostics.warnings``)."""
    from civa_env.policies.llm.diagnostics import warnings

    found = (summary.get("llm") or {}).get("diagnostics") or {}
    return [f"warning: {spec}: {line}" for spec, figures in found.items()
            for line in warnings(figures)]


# ---- civa sweep -------------------------------------------------------------------------------
def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a grid of communities, resumable; results in OUT/results.csv."""
    from civa_env.experiments.runner import parse_mix
    from civa_env.experiments.sweep import Sweep, holder_prevalences

    conditions = _conditions(args.conditions)
    mix = parse_mix(args.policy)
    _check_policies(mix)
    kwargs = _policy_kwargs(args, mix)
    base = _config(args)
    if args.holders is not None:
        prevalences = holder_prevalences(_holders(args.holders, base.n_agents), base.n_agents)
    else:
        prevalences = _prevalences(DEFAULT_PREVALENCES if args.prevalence is None
                                   else args.prevalence, "--prevalence")
    if not 0 < args.quasi_extinction < 1:
        raise ValueError(f"--quasi-extinction must be a fraction in (0, 1), got "
                         f"{args.quasi_extinction:g}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers} (leave it out to use "
                         "every CPU)")
    workers = args.workers or max(1, os.cpu_count() or 1)
    sweep = Sweep(Path(args.out), conditions, prevalences, args.seeds, base, args.policy,
                  kwargs, first_seed=args.first_seed, run_plots=args.run_plots,
                  quasi_extinction=args.quasi_extinction)
    report = sweep.run(workers=workers, backend=args.backend, progress=not args.no_progress,
                       ray_address=args.ray_address)
    grid = (f"{report.total} runs in the grid" if not report.shared else
            f"{report.total} cells in the grid ({report.total - report.shared} runs)")
    print(f"{grid}: {report.already} already in the table, "
          f"{report.recovered} recovered from run folders, {report.ran} run now "
          f"({report.seconds:.1f} s, {args.backend} backend, {workers} workers).")
    if report.shared:
        print(f"{report.shared} prevalence-0 cells share the run of their seed's baseline world "
              f"(prevalence 0 is the baseline world; results.csv column same_as; "
              f"{report.reused} filled now).")
    print(f"Results: {report.results}   Report: civa report {args.out}")
    if report.usage:
        print(format_usage(report.usage))
    return _failures(report.failures, report.total, Path(args.out))


def _failures(failures: Sequence[tuple[str, str]], total: int, out: Path) -> int:
    """Print each failed run of a sweep or resilience test; 1 when any failed, else 0."""
    for rid, error in failures:
        print(f"civa: error: run {rid} failed: {error}", file=sys.stderr)
    if failures:
        print(f"civa: error: {len(failures)} of {total} runs failed (their folders under "
              f"{out / 'runs'} say why); rerun the same command to retry them",
              file=sys.stderr)
        return 1
    return 0


def format_usage(cells: Sequence[dict[str, Any]]) -> str:
    """LLM tokens and estimated cost per cell of a sweep (``sweep.usage_by_cell``), and the
    total."""
    def cost(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = ["LLM tokens and estimated cost (USD) per cell:",
             f"  {'condition':<24} {'prev':>5} {'runs':>5} {'tokens':>12} {'cost':>10}"]
    for c in cells:
        lines.append(f"  {c['condition']:<24} {c['prevalence']:>5g} {c['runs']:>5} "
                     f"{c['llm_tokens']:>12} {cost(c['llm_cost_usd']):>10}")
    costs = [c["llm_cost_usd"] for c in cells if c["llm_cost_usd"] is not None]
    lines.append(f"  {'all':<24} {'':>5} {sum(c['runs'] for c in cells):>5} "
                 f"{sum(c['llm_tokens'] for c in cells):>12} "
                 f"{cost(sum(costs) if costs else None):>10}")
    return "\n".join(lines)


def _holders(text: str, n_agents: int) -> list[int]:
    """--holders: 'all' (0..n_agents) or whole numbers separated by commas, each in range."""
    if text.strip() == "all":
        return list(range(n_agents + 1))
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--holders expects 'all' or whole numbers separated by commas, got "
                         f"{text!r}") from None
    if not counts:
        raise ValueError("--holders expects 'all' or whole numbers separated by commas")
    for k in counts:
        if not 0 <= k <= n_agents:
            raise ValueError(f"--holders {k} is out of range: a holder count is between 0 and "
                             f"the number of founders (--agents {n_agents})")
    return counts


# ---- civa report / view -------------------------------------------------------------------------
def _with_formats(command: Any) -> Any:
    """``command`` with its figures written in ``--format``'s formats (civa run, civa
    report); the list is checked before anything runs."""
    def run(args: argparse.Namespace) -> int:
        from civa_env.experiments.plots import output_formats, parse_formats

        try:
            formats = parse_formats(args.format)
        except ValueError as err:
            raise ValueError(f"--format: {err}") from None
        with output_formats(formats):
            return command(args)
    run.__doc__ = command.__doc__
    return run


def cmd_report(args: argparse.Namespace) -> int:
    """Tables and plots of a sweep folder."""
    from civa_env.experiments.report import build_report

    skipped: list[str] = []

    def skip(run_id: str, reason: str) -> None:
        skipped.append(run_id)
        print(f"civa: warning: skipped run folder {run_id}: {_one_line(ValueError(reason))}",
              file=sys.stderr)

    path = build_report(Path(args.sweep_dir), Path(args.out) if args.out else None,
                        pages=not args.no_pages, title=args.title, on_skip=skip)
    if skipped:
        print(f"Report: {path} ({len(skipped)} run folder{'s' if len(skipped) > 1 else ''} "
              "skipped: listed under \"Skipped run folders\")")
    else:
        print(f"Report: {path}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    """One self-contained HTML page of a run (civa_env.viewer)."""
    from civa_env.experiments.runfolder import read_config

    run_dir = Path(args.run_dir)
    config = run_dir / "config.json"
    if not run_dir.is_dir() or not config.exists():
        raise ValueError(f"{run_dir} is not a CIVA run folder (no config.json from civa run)")
    if "civa_version" not in read_config(run_dir):  # a broken config.json: an error naming it
        raise ValueError(f"{run_dir} is not a CIVA run folder ({config} was not written by "
                         "civa run: no civa_version)")
    try:
        from civa_env.viewer import build_page
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("civa_env"):
            raise ValueError("civa view needs civa_env.viewer, which is not installed in this "
                             "checkout") from None
        raise
    page = build_page(run_dir, Path(args.out) if args.out else None)
    print(f"Page: {page}")
    return 0


# ---- civa resilience ---------------------------------------------------------------------------
RESILIENCE_HELP = """\
Stress test: how much extra stress a community absorbs before it collapses.

Each condition and prevalence (and baseline), each seed and each stress level mu runs one
community from day 0. The first --stress-day days (T0, default 30) are unstressed and the
same at every level (paired worlds; LLM residents replay them from the answer cache). From
day T0 + 1 on, for --horizon days (H, default 60), the stressor applies: --stressor upkeep
(the default and primary stressor) multiplies every resident's daily upkeep by mu, the cost
of living, the loss term of classic fold models (harvesting, Allee effects), value-neutral
and shown to residents; --stressor outage multiplies the factory outage probability by mu
(capped at 1), a robustness check. A run has collapsed when its population on day T0 + H is
below --quasi-extinction (q, default 0.2) times --agents: quasi-extinction, not the last
death, because a handful of survivors is not a community. Over seeds and levels a logistic
fit P(collapse | mu) gives mu*, the stress at which collapse becomes more likely than not,
and d_FB = 100 (mu* - 1): the percentage of extra stress (for upkeep, of extra cost of
living) the community absorbs; negative when it collapses more often than not already at
mu = 1. Intervals resample whole seeds (bootstrap); differences to baseline are paired over
shared seeds. Levels are adaptive: --levels, then --refine rounds of levels around each
cell's mu*. Fold diagnostics (hysteresis, recovery time, lag-1 autocorrelation and
variance, bimodality) say whether mu* is a distance to a fold or only a collapse threshold.
Resumable: rerun the same command to finish an interrupted test. Writes OUT/runs.csv,
resilience.csv, diagnostics.csv, collapse_vs_stress.png and resilience.md (docs/resilience.md).
"""

# How civa resilience names the settings its library checks.
RESILIENCE_FLAGS = {"levels": "--levels", "stress_day": "--stress-day",
                    "horizon": "--horizon", "refine": "--refine", "n_boot": "--bootstrap",
                    "stressor": "--stressor", "quasi_extinction": "--quasi-extinction",
                    "ci": "--ci", "base": "--set and --config"}


def cmd_resilience(args: argparse.Namespace) -> int:
    """Stress levels x seeds per cell; mu*, d_FB and fold diagnostics in OUT."""
    from civa_env.experiments.resilience import Resilience, check_levels
    from civa_env.experiments.runner import parse_mix

    conditions = _conditions(args.conditions)
    prevalences = _prevalences(args.prevalences, "--prevalences")
    mix = parse_mix(args.policy)
    _check_policies(mix)
    kwargs = _policy_kwargs(args, mix)
    if args.days is not None or "max_days" in _key_values(args.set, "--set"):
        raise ValueError("civa resilience runs --stress-day + --horizon days; set those "
                         "instead of --days (or max_days)")
    base = _config(args)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers} (leave it out to use "
                         "every CPU)")
    workers = args.workers or max(1, os.cpu_count() or 1)
    backend = "ray" if args.ray else args.backend
    names = {**FLAGS, **RESILIENCE_FLAGS}
    try:
        levels = None if args.levels is None else check_levels(_floats(args.levels,
                                                                      "--levels"))
        test = Resilience(Path(args.out), conditions, prevalences, args.seeds, base,
                          args.policy, kwargs, first_seed=args.first_seed,
                          stressor=args.stressor, levels=levels, stress_day=args.stress_day,
                          horizon=args.horizon, quasi_extinction=args.quasi_extinction,
                          refine=args.refine, diagnostics=not args.no_diagnostics,
                          n_boot=args.bootstrap, ci=args.ci)
        report = test.run(workers=workers, backend=backend, progress=not args.no_progress,
                          ray_address=args.ray_address)
    except SettingError as err:
        raise ValueError(err.worded(names)) from None
    except BaseException as err:
        from civa_env.experiments.signals import exit_status, interruption

        stop = interruption(err)  # Ctrl-C, SIGTERM, also wrapped in another error
        if stop is None:
            raise
        print("civa: interrupted; finished runs are saved in runs.csv (rerun the same command "
              "to resume)", file=sys.stderr)
        return exit_status(stop)
    print(f"{report.total} runs in the design: {report.already} already in runs.csv, "
          f"{report.recovered} recovered from run folders, {report.ran} run now "
          f"({report.seconds:.1f} s, {backend} backend, {workers} workers).")
    print(format_resilience(report.cells))
    print(f"Results: {report.out / 'resilience.csv'}   Plot: "
          f"{report.out / 'collapse_vs_stress.png'}   Notes: {report.out / 'resilience.md'}")
    return _failures(report.failures, report.total, Path(args.out))


def format_resilience(cells: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of resilience.csv's main columns."""
    def num(value: Any, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [f"  {'condition':<24} {'prev':>5} {'d_FB':>7} {'interval':>17} {'mu*':>6} "
             f"{'vs baseline':>11}  reading"]
    for r in cells:
        interval = ("-" if r.get("d_FB_low") is None or r.get("d_FB_high") is None
                    else f"[{r['d_FB_low']:.1f}, {r['d_FB_high']:.1f}]")
        lines.append(f"  {r['condition']:<24} {r['prevalence']:>5g} {num(r.get('d_FB')):>7} "
                     f"{interval:>17} {num(r.get('mu_star'), 2):>6} "
                     f"{num(r.get('d_FB_diff')):>11}  {r.get('reading') or '-'}")
    return "\n".join(lines)


# ---- parser ------------------------------------------------------------------------------------
def _world_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", default="scripted",
                   help="policy or mix: scripted, scripted:v2, random, llm, ppo:MODEL.zip, or "
                        "'scripted=0.5,random=0.5' (default: scripted)")
    p.add_argument("--agents", type=int, help="residents at the start (default 25)")
    p.add_argument("--days", type=int, help="days to simulate (default 30)")
    p.add_argument("--config", help="config.json of a run, or a JSON object of Config fields")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="set any Config field (repeatable), e.g. --set outage_prob=0.2")
    p.add_argument("--model", help="model for llm residents (passed as model=...)")
    p.add_argument("--llm-option", action="append", metavar="KEY=VALUE",
                   help="keyword argument for the llm policy (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The ``civa`` argument parser."""
    parser = _Parser(prog="civa", description="CIVA: communities of residents guided by "
                     "human values. Subcommands: run, sweep, report, view, resilience.")
    from civa_env import __version__

    parser.add_argument("--version", action="version", version=f"civa {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    run = sub.add_parser("run", help="simulate one community and write a run folder")
    _world_options(run)
    run.add_argument("--condition", help="baseline, with:VALUE or without:VALUE")
    run.add_argument("--prevalence", type=float,
                     help="share of residents holding the condition, in [0, 1] (default 1)")
    run.add_argument("--seed", type=int, help="seed (default 0)")
    run.add_argument("--out", help="run folder (default runs/run-<date>-<time>)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an earlier run in --out: its files only (config.json, "
                          "events.jsonl, figures, view.html...); a folder that also holds "
                          "files that are not CIVA's is refused, and nothing is removed "
                          "before every input has been checked")
    run.add_argument("--envs", type=int, default=1,
                     help="communities in one step loop (seeds seed..seed+N-1, OUT/env_k)")
    run.add_argument("--no-plots", action="store_true", help="skip the figures")
    run.add_argument("--threads", type=int, metavar="N",
                     help="torch CPU threads for llm residents on the transformers backend "
                          "and for ppo residents (default: torch's, capped at the CPUs "
                          "available; on a shared machine try 1)")
    run.add_argument("--format", default="png,pdf", metavar="FORMATS",
                     help=FORMAT_HELP)
    run.set_defaults(func=_with_formats(cmd_run))

    sweep = sub.add_parser("sweep", help="run a grid of communities (resumable)")
    _world_options(sweep)
    sweep.add_argument("--conditions", default="baseline,without:benevolence,with:power",
                       help="comma-separated conditions, or 'all' (baseline + 20)")
    levels = sweep.add_mutually_exclusive_group()
    levels.add_argument("--prevalence",
                        help=f"comma-separated prevalences (default {DEFAULT_PREVALENCES})")
    levels.add_argument("--holders", metavar="all|K,K,...",
                        help="numbers of founding holders instead of prevalences: 'all' "
                             "(every k = 0..--agents) or a list such as 0,3,6; prevalence "
                             "k / --agents, holder sets nested and paired across k")
    sweep.add_argument("--quasi-extinction", type=float, default=0.2, metavar="FRACTION",
                       help="a run has collapsed when its final population is below this "
                            "fraction of --agents (results.csv column collapsed; default 0.2)")
    sweep.add_argument("--seeds", type=int, default=3, help="seeds per cell (default 3)")
    sweep.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    sweep.add_argument("--workers", type=int, help="parallel workers (default: CPU count)")
    sweep.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local process pool (default) or ray")
    sweep.add_argument("--ray-address", help="address of a running Ray cluster")
    sweep.add_argument("--out", default="runs/sweep", help="sweep folder (default runs/sweep)")
    sweep.add_argument("--run-plots", action="store_true", help="PNG plots in every run folder")
    sweep.set_defaults(func=cmd_sweep)

    report = sub.add_parser("report", help="tables and plots of a sweep folder")
    report.add_argument("sweep_dir")
    report.add_argument("--out", help="report folder (default SWEEP_DIR/report)")
    report.add_argument("--no-pages", action="store_true",
                        help="do not build or link run pages")
    report.add_argument("--title", help="heading of report.md")
    report.add_argument("--format", default="png,pdf", metavar="FORMATS",
                        help=FORMAT_HELP)
    report.set_defaults(func=_with_formats(cmd_report))

    view = sub.add_parser("view", help="one self-contained HTML page of a run")
    view.add_argument("run_dir")
    view.add_argument("--out", help="HTML file (default RUN_DIR/view.html)")
    view.set_defaults(func=cmd_view)

    res = sub.add_parser("resilience", help="stress tests: mu*, d_FB and fold diagnostics",
                         description=RESILIENCE_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    _world_options(res)
    res.add_argument("--conditions", default="baseline,without:benevolence,with:power",
                     help="comma-separated conditions, or 'all' (baseline + 20)")
    res.add_argument("--prevalences", "--prevalence", dest="prevalences", default="1",
                     help="comma-separated prevalences (default 1; baseline runs once)")
    res.add_argument("--seeds", type=int, default=8, help="seeds per cell (default 8)")
    res.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    res.add_argument("--stressor", default="upkeep",
                     help="upkeep (multiplies daily upkeep; default) or outage (multiplies "
                          "the outage probability, capped at 1)")
    res.add_argument("--levels", metavar="MU,MU,...",
                     help="coarse stress multipliers, >= 0 (default 1,1.5,2,3,4 for upkeep, "
                          "1,2,4,7,10 for outage)")
    res.add_argument("--refine", type=int, default=1,
                     help="rounds of adaptive levels around each cell's mu* (default 1)")
    res.add_argument("--stress-day", type=int, default=30, metavar="T0",
                     help="last unstressed day; the stress applies from T0 + 1 (default 30)")
    res.add_argument("--horizon", type=int, default=60, metavar="H",
                     help="days under stress; collapse is judged on day T0 + H (default 60)")
    res.add_argument("--quasi-extinction", type=float, default=0.2, metavar="Q",
                     help="collapsed: final population below Q x --agents, Q in (0, 1) "
                          "(default 0.2)")
    res.add_argument("--no-diagnostics", action="store_true",
                     help="skip the fold diagnostics (shocked runs near mu*)")
    res.add_argument("--bootstrap", type=int, default=2000, metavar="B",
                     help="bootstrap resamples over seeds (default 2000)")
    res.add_argument("--ci", type=float, default=0.95, help="interval level (default 0.95)")
    res.add_argument("--workers", type=int, help="parallel workers (default: CPU count)")
    res.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="local process pool (default) or ray")
    res.add_argument("--ray", action="store_true", help="the same as --backend ray")
    res.add_argument("--ray-address", help="address of a running Ray cluster")
    res.add_argument("--out", default="runs/resilience",
                     help="resilience folder (default runs/resilience)")
    res.set_defaults(func=cmd_resilience)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``civa`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    debug = os.environ.get("CIVA_DEBUG", "") not in ("", "0")
    from civa_env.experiments.signals import exit_status, interruption, terminate_as_interrupt

    try:
        # SIGTERM (timeout, SLURM, a container stop) stops a command like Ctrl-C does.
        with terminate_as_interrupt():
            return args.func(args)
    except BaseException as err:
        # Ctrl-C or SIGTERM, also one that came back wrapped in another error (see interruption)
        stop = interruption(err) if isinstance(err, (Exception, KeyboardInterrupt)) else None
        if stop is None:
            if debug or not isinstance(err, Exception):
                raise
            print(f"civa: error: {_one_line(err)}", file=sys.stderr)
            return 1
        how = " by SIGTERM" if exit_status(stop) == 143 else ""
        if args.command == "sweep":
            print(f"civa: interrupted{how}; finished runs are saved (rerun the same sweep to "
                  "resume)", file=sys.stderr)
        else:
            print(f"civa: interrupted{how}", file=sys.stderr)
        return exit_status(stop)  # 130 for Ctrl-C, 143 for SIGTERM


# Bad input and an unusable environment: the message is the whole story. Anything else is a
# bug, reported in one line too, with how to see the traceback. ValueError covers the CLI's
# own checks, RunFolderError, SweepError, ResultsError and the llm policy's ModelLoadError.
USER_ERRORS = (ValueError, ImportError, OSError)

# The flags that set what a lower layer's ``SettingError`` names by its setting.
FLAGS = {"out": "--out", "overwrite": "--overwrite", "seeds": "--seeds",
         "workers": "--workers", "backend": "--backend",
         "policy_kwargs": "llm options (--model/--llm-option)"}


def _one_line(err: BaseException) -> str:
    """One line for ``civa: error:`` (see USER_ERRORS), settings named by their flags."""
    if isinstance(err, USER_ERRORS):
        message = err.worded(FLAGS) if isinstance(err, SettingError) else str(err)
        if isinstance(err, OSError) and err.filename is not None and err.strerror:
            message = f"{err.filename}: {err.strerror}"
        elif isinstance(err, ImportError) and not message:
            message = f"missing module {err.name}"
    else:
        message = (f"{type(err).__name__}: {err} (an internal error; rerun with CIVA_DEBUG=1 "
                   "for the traceback)")
    return " ".join(message.split())


if __name__ == "__main__":
    sys.exit(main())
