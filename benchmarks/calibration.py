"""Calibration of the world's rules (README "Rules", "Calibration"; results in docs/calibration.md).

Runs the default community under a few scripted behaviours and prints mean nAUP, final
population and extinction rate over seeds. The behaviours are scripted here, from what a
resident observes (its feature vector and action mask), with flat catalogue ids; nothing
in the rules knows about them, so the outcomes follow from the rules alone.

Scenarios:

- ``cooperative``: everyone works its best known factory (highest capacity it knows) and
  never attacks.
- ``half_attack``: as cooperative, but half the residents (drawn by seed, newcomers too)
  also attack a random resident they see on half their days.
- ``all_attack``: everyone works its best known factory and attacks a random resident it
  sees every day.
- ``half_attack_gifts``: as ``half_attack``, and the peaceful residents who hold at least
  ``GIFT_FLOOR`` give 10% of their wealth to the poorest resident they see.

Usage::

    python benchmarks/calibration.py --seeds 20            # the table of docs/calibration.md
    python benchmarks/calibration.py --seeds 5 --agents 50 --days 30
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import civa_env
from civa_env.world.features import FeatureLayout
from civa_env.world.kinds import Primary, Secondary

SCENARIOS = ("cooperative", "half_attack", "all_attack", "half_attack_gifts")
GIFT_FLOOR = 12.0  # a peaceful resident gives only while it holds at least this much


class Script:
    """One scenario's behaviour for a whole community, deciding from observations only."""

    def __init__(self, scenario: str, env: civa_env.CivaEnv, seed: int) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.cfg = env.cfg
        self.catalogue = env.catalogue
        self.rng = np.random.default_rng(10_000 + seed)
        # Who attacks: a fixed draw per name, so newcomers are attackers half the time too.
        share = {"cooperative": 0.0, "all_attack": 1.0}.get(scenario, 0.5)
        self.attacker = self.rng.random(len(env.possible_agents)) < share
        self.attack_prob = 1.0 if scenario == "all_attack" else 0.5
        self.layout = FeatureLayout.of(self.cfg)
        self.v = self.cfg.view_size

    def act(self, observations: dict[str, dict]) -> dict[str, int]:
        """A flat action id per resident."""
        names = list(observations)
        if not names:
            return {}
        feats = np.stack([observations[a]["features"] for a in names])
        layout = self.layout
        known = layout.read(feats, "factory.known")  # (K, M)
        capacity = layout.factory_block(feats, "capacity")  # (K, M), scaled: only compared
        best = np.where(known, capacity, -np.inf).argmax(axis=1)
        present = layout.read(feats, "slot.present")  # (K, V)
        # signed_log(theirs) - signed_log(own): below 0 for the poorer residents.
        rel_wealth = layout.slot_block(feats, "wealth")
        wealth = layout.read(feats, "wealth")
        index = np.array([int(a.rsplit("_", 1)[1]) for a in names])
        draws = self.rng.random(len(names))
        picks = self.rng.random((len(names), self.v))
        out = {}
        for k, name in enumerate(names):
            primary = Primary.WORK if known[k].any() else Primary.EXPLORE
            factory = int(best[k]) if primary == Primary.WORK else -1
            secondary, slot, level = Secondary.NONE, -1, 0
            seen = np.flatnonzero(present[k])
            if len(seen) and self.attacker[index[k]] and draws[k] < self.attack_prob:
                secondary = Secondary.ATTACK
                slot = int(seen[picks[k, seen].argmax()])
            elif (len(seen) and self.scenario == "half_attack_gifts" and wealth[k] >= GIFT_FLOOR
                  and rel_wealth[k, seen].min() < 0):
                secondary = Secondary.GIFT
                slot = int(seen[rel_wealth[k, seen].argmin()])
            out[name] = self.catalogue.encode(primary, factory, secondary, slot, level)
        return out


def run_episode(scenario: str, seed: int, **config) -> dict:
    """One episode of ``scenario``; returns the env's episode summary."""
    cfg = {"obs_mode": "numeric", **config}
    env = civa_env.parallel_env(**cfg)
    script = Script(scenario, env, seed)
    obs, _ = env.reset(seed=seed)
    while env.agents:
        obs, *_ = env.step(script.act({a: obs[a] for a in env.agents}))
    return env.summary()


def measure(scenario: str, seeds: range | list[int], **config) -> dict:
    """Mean nAUP, final population and extinction rate of ``scenario`` over ``seeds``."""
    runs = [run_episode(scenario, s, **config) for s in seeds]
    naup = np.array([r["nAUP"] for r in runs])
    final = np.array([r["final_population"] for r in runs])
    extinct = np.array([r["extinct_day"] is not None for r in runs])
    return {"scenario": scenario, "seeds": len(runs), "nAUP": float(naup.mean()),
            "nAUP_sd": float(naup.std()), "final_population": float(final.mean()),
            "extinct": float(extinct.mean()),
            "extinct_day": float(np.mean([r["extinct_day"] for r in runs if r["extinct_day"]]))
            if extinct.any() else None,
            "betrayal": float(np.mean([r["behaviours"]["betrayal"] for r in runs])),
            "CC": float(np.mean([r["CC"] for r in runs]))}


def table(rows: list[dict]) -> str:
    """Markdown table of ``measure`` results."""
    lines = ["| scenario | seeds | mean nAUP (sd) | final population | extinct "
             "| mean extinction day |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        day = "-" if r["extinct_day"] is None else f"{r['extinct_day']:.1f}"
        lines.append(f"| {r['scenario']} | {r['seeds']} | {r['nAUP']:.2f} ({r['nAUP_sd']:.2f}) | "
                     f"{r['final_population']:.1f} | {r['extinct']:.0%} | {day} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> list[dict]:
    """Command line: print the calibration table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per scenario (0..seeds-1)")
    parser.add_argument("--agents", type=int, default=25, help="residents at the start")
    parser.add_argument("--days", type=int, default=30, help="days per episode")
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS), choices=SCENARIOS)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = [measure(s, range(args.seeds), n_agents=args.agents, max_days=args.days)
            for s in args.scenarios]
    out(table(rows))
    out(f"\n{args.seeds} seeds, {args.agents} residents, {args.days} days, "
        f"{time.perf_counter() - start:.1f} s")
    return rows


if __name__ == "__main__":
    main()
