"""The step loop: policy mixes, one call per policy per day, newcomers, the run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from civa_env.experiments.runfolder import (
    RunFolderError,
    is_complete_run,
    is_run_dir,
    prepare_run_dir,
)
from civa_env.experiments.runner import assign_policies, parse_mix, run_communities, run_community
from civa_env.policies import RandomPolicy, make_policy
from civa_env.policies.base import Policy
from civa_env.world import metrics
from civa_env.world.config import Config
from civa_env.world.events import EventLog, agent_index

SMALL = dict(n_agents=12, max_days=20)


def test_parse_mix():
    assert parse_mix("scripted") == {"scripted": 1.0}
    assert parse_mix("scripted=0.5,random=0.5") == {"scripted": 0.5, "random": 0.5}
    assert parse_mix("llm=0.2,scripted") == {"llm": 0.2, "scripted": pytest.approx(0.8)}
    assert parse_mix("ppo:runs/a=b.zip=0.3,scripted=0.7")["ppo:runs/a=b.zip"] == 0.3
    for bad in ("", "scripted=0.5,random=0.2", "scripted=x", "scripted=1.5,random=-0.5",
                "scripted,scripted"):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_assign_policies_exact_and_seeded():
    mix = {"llm": 0.2, "ppo:x": 0.3, "scripted": 0.5}
    a = assign_policies(mix, 25, np.random.default_rng(1))
    b = assign_policies(mix, 25, np.random.default_rng(1))
    c = assign_policies(mix, 25, np.random.default_rng(2))
    assert a == b != c
    assert sorted(a.count(s) for s in mix) == [5, 8, 12]  # 5, 7.5 -> 8 by remainder, 12.5 -> 12
    assert sum(a.count(s) for s in mix) == 25


class Spy(Policy):
    """Random actions; records every call's keys."""

    name = "spy"

    def __init__(self):
        self.inner = RandomPolicy()
        self.calls: list[list] = []
        self.opened = None

    def reset(self, cfg, seed=None):
        self.inner.reset(cfg, seed)

    def open_run(self, run_dir):
        self.opened = run_dir

    def act(self, batch):
        self.calls.append(list(batch.keys))
        return self.inner.act(batch)


def test_one_call_per_policy_per_day_across_envs(tmp_path):
    spy_a, spy_b = Spy(), Spy()
    cfgs = [Config(**SMALL, seed=s) for s in (0, 1)]
    results = run_communities(cfgs, [0, 1], {"a": 0.5, "b": 0.5}, [None, None],
                              policies={"a": spy_a, "b": spy_b}, progress=False,
                              policy_dir=tmp_path)
    days = max(r.summary["days"] for r in results)
    # Once a day while the policy has living residents (random ones may all starve early).
    assert max(len(spy_a.calls), len(spy_b.calls)) == days
    assert all(call for call in spy_a.calls + spy_b.calls)
    assert spy_a.opened == tmp_path
    first = spy_a.calls[0] + spy_b.calls[0]
    assert all(isinstance(k, tuple) and k[0] in (0, 1) for k in first)
    assert {k[0] for k in first} == {0, 1}  # both environments in the same call
    assert len(first) == 2 * SMALL["n_agents"]
    # A resident stays with its policy: no key is ever seen by both.
    keys_a = {k for call in spy_a.calls for k in call}
    keys_b = {k for call in spy_b.calls for k in call}
    assert not keys_a & keys_b


def test_run_folder_and_newcomers_inherit_policy(tmp_path):
    cfg = Config(n_agents=20, max_days=30, condition="with:benevolence", prevalence=0.5)
    result = run_community(cfg, "scripted=0.5,random=0.5", 2, tmp_path / "run",
                           progress=False)
    run = tmp_path / "run"
    for name in ("config.json", "residents.json", "events.jsonl", "metrics.json",
                 "population.png", "wealth.png", "actions.png"):
        assert (run / name).stat().st_size > 0, name
    assert is_run_dir(run) and is_complete_run(run)
    config = json.loads((run / "config.json").read_text())
    assert config["env"]["condition"] == "with:benevolence" and config["seed"] == 2
    assert config["status"] == "complete" and config["policy"] == "scripted=0.5,random=0.5"
    residents = json.loads((run / "residents.json").read_text())
    assert set(config["residents"]) == set(residents)
    newcomers = [r for r in residents.values() if r["parent"] is not None]
    assert newcomers, "this seed is expected to have births"
    for name, r in residents.items():
        assert r["policy"] in ("scripted", "random")
        assert config["residents"][name] == r["policy"]
        if r["parent"] is not None:
            assert r["policy"] == residents[r["parent"]]["policy"]
            assert r["condition"] == residents[r["parent"]]["condition"]
    founders = [r for r in residents.values() if r["parent"] is None]
    assert sum(r["policy"] == "scripted" for r in founders) == 10
    assert sum(r["condition"] == "with:benevolence" for r in founders) == 10
    # metrics.json: the summary plus breakdowns by policy and by condition.
    m = json.loads((run / "metrics.json").read_text())
    assert m["nAUP"] == result.summary["nAUP"]
    assert set(m["by_policy"]) == {"scripted", "random"}
    assert set(m["by_condition"]) == {"baseline", "with:benevolence"}
    assert sum(g["residents"] for g in m["by_policy"].values()) == len(residents)
    alive = sum(r["alive"] for r in residents.values())
    assert sum(g["alive_end"] for g in m["by_policy"].values()) == alive == m["final_population"]
    # events.jsonl reproduces the metrics.
    log = EventLog.read_jsonl(run / "events.jsonl")
    again = metrics.summarize(log, Config.from_dict(config["env"]))
    assert again["nAUP"] == pytest.approx(m["nAUP"])
    assert again["behaviours"] == m["behaviours"]


def test_runs_are_deterministic():
    cfg = Config(**SMALL, condition="with:power", prevalence=0.5)
    a = run_community(cfg, "scripted=0.6,random=0.4", 4, None, progress=False)
    b = run_community(cfg, "scripted=0.6,random=0.4", 4, None, progress=False)
    assert a.summary["population"] == b.summary["population"]
    assert a.residents == b.residents
    assert a.summary["by_policy"] == b.summary["by_policy"]


class Crash(Policy):
    """Acts randomly, then fails on day 6."""

    def __init__(self):
        self.inner, self.day = RandomPolicy(seed=0), 0

    def reset(self, cfg, seed=None):
        self.inner.reset(cfg, seed)

    def act(self, batch):
        self.day += 1
        if self.day == 6:
            raise RuntimeError("policy crashed")
        return self.inner.act(batch)


def test_crash_leaves_events_readable_up_to_last_day(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="policy crashed"):
        run_community(Config(**SMALL), "crash", 0, run, policies={"crash": Crash()},
                      progress=False)
    log = EventLog.read_jsonl(run / "events.jsonl")
    assert log.n_days == 5
    assert not (run / "metrics.json").exists()
    assert json.loads((run / "config.json").read_text())["status"].startswith("failed")


def test_run_folder_guard(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="something else"):
        prepare_run_dir(other)
    assert (other / "notes.txt").read_text() == "mine"
    run = tmp_path / "run"
    run_community(Config(**SMALL), "random", 0, run, progress=False, plots=False)
    with pytest.raises(RunFolderError, match="already holds a run"):
        run_community(Config(**SMALL), "random", 0, run, progress=False)
    assert is_complete_run(run)
    run_community(Config(**SMALL), "random", 1, run, progress=False, plots=False,
                  overwrite=True)
    assert json.loads((run / "config.json").read_text())["seed"] == 1


def test_unknown_policy_touches_no_folder(tmp_path):
    with pytest.raises(ValueError, match="unknown policy"):
        run_community(Config(**SMALL), "nonesuch", 0, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_policy_keys_are_agent_names_for_one_env():
    spy = Spy()
    run_community(Config(**SMALL), "spy", 0, None, policies={"spy": spy}, progress=False)
    assert all(isinstance(k, str) and agent_index(k) >= 0 for k in spy.calls[0])
    assert make_policy("random") is not None


def test_by_policy_actions_are_the_census_actions():
    """by_policy "actions" counts the kinds metrics' census counts (outcomes such as
    alliance_formed are not actions), and the totals agree."""
    result = run_community(Config(**SMALL, condition="with:benevolence"), "scripted", 0, None,
                           progress=False)
    census = {}
    for day in result.summary["actions"]:
        for kind, count in day.items():
            census[kind] = census.get(kind, 0) + count
    groups = result.summary["by_policy"].values()
    kinds = {k for g in groups for k in g["actions"]}
    assert kinds == {"work", "explore", "upgrade_self", "upgrade_factory", "idle", "gift",
                     "attack", "merge_proposal", "message"}
    assert set(census) <= kinds
    for kind in kinds:
        assert sum(g["actions"][kind] for g in groups) == census.get(kind, 0), kind


def test_behaviours_detected_once_for_both_breakdowns(monkeypatch):
    from civa_env.experiments import runner
    from civa_env.world import behaviours

    calls, finishing = [], []
    real_detect, real_finish = behaviours.detect, runner._Episode.finish

    def detect(*args, **kwargs):
        if finishing:  # the census counts each day's behaviours too; only the end matters
            calls.append(1)
        return real_detect(*args, **kwargs)

    def finish(self, plots):
        finishing.append(1)
        return real_finish(self, plots)

    monkeypatch.setattr(behaviours, "detect", detect)
    monkeypatch.setattr(runner._Episode, "finish", finish)
    run_community(Config(**SMALL), "scripted=0.5,random=0.5", 0, None, progress=False)
    assert finishing and 1 <= len(calls) <= 2  # env.summary()'s and the breakdowns' (was 3)


def test_episode_build_failure_fails_earlier_episodes(tmp_path, monkeypatch):
    from civa_env.experiments import runner

    built = []
    real = runner.world_fn.reset

    def world_factory(cfg, seed=None):
        if built:
            raise RuntimeError("cannot build the second environment")
        built.append(cfg)
        return real(cfg, seed)

    monkeypatch.setattr(runner.world_fn, "reset", world_factory)
    opened = []
    real_open = open

    def spy_open(path, *args, **kwargs):
        f = real_open(path, *args, **kwargs)
        if str(path).endswith("events.jsonl"):
            opened.append(f)
        return f

    monkeypatch.setattr("builtins.open", spy_open)
    dirs = [tmp_path / "env_0", tmp_path / "env_1"]
    with pytest.raises(RuntimeError, match="second environment"):
        run_communities([Config(**SMALL)] * 2, [0, 1], "random", dirs, progress=False,
                        plots=False)
    assert opened and all(f.closed for f in opened)
    status = json.loads((dirs[0] / "config.json").read_text())["status"]
    assert status.startswith("failed: RuntimeError: cannot build the second environment")


def test_atomic_writes_use_private_temporary_files(tmp_path):
    """Two writers never share a temporary file: a fixed ``NAME.tmp`` is not used."""
    from civa_env.experiments.runfolder import write_json_atomic

    (tmp_path / "x.json.tmp").mkdir()  # would block a fixed temporary name
    write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "x.json.tmp"]


def test_communities_of_one_loop_must_share_the_network_shape():
    cfgs = [Config(**SMALL, seed=0), Config(**SMALL, seed=1, view_size=3)]
    with pytest.raises(ValueError, match="view_size"):
        run_communities(cfgs, [0, 1], "random", progress=False, plots=False)


def test_a_run_without_a_seed_gets_one_and_records_it(tmp_path):
    result = run_community(Config(**SMALL), "random", seed=None, run_dir=tmp_path / "run",
                           progress=False, plots=False)
    assert isinstance(result.seed, int)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["seed"] == result.seed


class Interrupt(Crash):
    """Acts randomly, then is interrupted on day 4 (Ctrl-C, or a SIGTERM turned into
    ``Terminated`` by the civa command)."""

    def __init__(self, err):
        super().__init__()
        self.err = err

    def act(self, batch):
        self.day += 1
        if self.day == 4:
            raise self.err
        return self.inner.act(batch)


@pytest.mark.parametrize(("err", "status"), [
    (KeyboardInterrupt(), "interrupted: SIGINT (Ctrl-C)"),
    ("terminated", "interrupted: SIGTERM")])
def test_an_interrupted_run_says_so(tmp_path, err, status):
    from civa_env.experiments.signals import Terminated, exit_status

    err = Terminated() if err == "terminated" else err
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as caught:
        run_community(Config(**SMALL), "stop", 0, run, policies={"stop": Interrupt(err)},
                      progress=False)
    assert json.loads((run / "config.json").read_text())["status"] == status
    assert EventLog.read_jsonl(run / "events.jsonl").n_days == 3  # the finished days
    assert not (run / "metrics.json").exists()
    assert exit_status(caught.value) == (143 if status.endswith("SIGTERM") else 130)


def test_progress_off_a_terminal_is_plain_lines(tmp_path, capsys):
    run_community(Config(n_agents=6, max_days=20), "random", 0, tmp_path / "run",
                  progress=True, plots=False)
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    assert "\r" not in err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith("civa: ") and " days, " in line for line in lines)
    assert len(lines) <= 11  # each tenth at most, not a frame a day
