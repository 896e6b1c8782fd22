"""The ``civa`` command end to end, on real simulations: run, sweep (+ resume), report, view,
and the bad-input cases (one line on stderr, non-zero exit, nothing computed lost)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from civa_env.cli import _one_line, main
from civa_env.experiments import runfolder
from civa_env.experiments.runfolder import is_complete_run
from civa_env.experiments.sweep import COLUMNS, Sweep, load_results

SMALL = ["--agents", "10", "--days", "8", "--no-progress"]
GRID = ["--conditions", "baseline,with:power,without:benevolence", "--prevalence", "0.5,1",
        "--seeds", "2", "--no-progress", *SMALL[:4]]  # 2 + 2*2*2 = 10 runs


def civa(*argv: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The console script, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "civa_env.cli", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_default_run_is_the_readme_job(tmp_path):
    done = civa("run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    for name in ("config.json", "residents.json", "events.jsonl", "metrics.json",
                 "population.png", "wealth.png", "actions.png"):
        assert (runs[0] / name).stat().st_size > 0
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["env"]["n_agents"] == 25 and config["env"]["max_days"] == 30
    assert config["policy"] == "scripted"
    assert "nAUP" in done.stdout and "by policy" in done.stdout and runs[0].name in done.stdout


def test_run_options(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", *SMALL, "--policy", "scripted=0.5,random=0.5", "--condition",
                 "without:benevolence", "--prevalence", "0.4", "--seed", "7", "--out", str(out),
                 "--set", "outage_prob=0.2", "--set", "obs_mode=numeric", "--no-plots"])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    env = config["env"]
    assert (env["n_agents"], env["max_days"], env["condition"], env["prevalence"]) == (
        10, 8, "without:benevolence", 0.4)
    assert env["outage_prob"] == 0.2 and env["obs_mode"] == "numeric" and config["seed"] == 7
    assert not (out / "population.png").exists()
    assert "without:benevolence" in capsys.readouterr().out
    # --config reuses a run's config.json; flags still win.
    again = tmp_path / "again"
    assert main(["run", "--config", str(out / "config.json"), "--days", "5", "--out",
                 str(again), "--no-progress", "--no-plots"]) == 0
    env2 = json.loads((again / "config.json").read_text())["env"]
    assert env2["outage_prob"] == 0.2 and env2["max_days"] == 5 and env2["n_agents"] == 10


def test_run_several_envs_in_one_loop(tmp_path):
    out = tmp_path / "multi"
    assert main(["run", *SMALL, "--envs", "2", "--seed", "3", "--out", str(out),
                 "--no-plots"]) == 0
    seeds = [json.loads((out / f"env_{k}" / "config.json").read_text())["seed"] for k in (0, 1)]
    assert seeds == [3, 4]
    assert all(is_complete_run(out / f"env_{k}") for k in (0, 1))


@pytest.mark.parametrize("argv, words", [
    (["run", "--condition", "with:greed"], "unknown value"),
    (["run", "--condition", "sort-of:power"], "unknown value condition"),
    (["run", "--policy", "nonesuch"], "unknown policy"),
    (["run", "--policy", "scripted=0.7,random=0.7"], "sum to"),
    (["run", "--prevalence", "1.5"], "prevalence must be in [0, 1]"),
    (["run", "--set", "nonesuch_field=3"], "unknown config field"),
    (["run", "--set", "outage_prob"], "key=value"),
    (["run", "--model", "tiny"], "apply to llm residents"),
    (["run", "--frobnicate"], "unrecognized arguments"),
    (["sweep", "--prevalence", "0,1.2"], "prevalence must be in [0, 1]"),
    (["sweep", "--conditions", "with:nothing"], "unknown value"),
    (["sweep", "--backend", "slurm"], "invalid choice"),
    (["sweep", "--prevalence", "half"], "expects numbers"),
    (["report", "nowhere"], "no results.csv"),
    (["view", "nowhere"], "not a CIVA run folder"),
    (["run", "--set", "prevalence=abc"], "prevalence must be a number"),
    (["run", "--config", "."], "cannot read the config"),
    (["run", "--config", "{not json"], "--config: not a valid JSON object"),
    (["run", "--config", '{"nonesuch_field": 1}'], "unknown config field"),
    (["sweep", "--workers", "0"], "--workers must be >= 1"),
    (["run", "--policy", "llm", "--model", "some/model", "--llm-option", "backend=vllm"],
     "vllm"),
    (["run", "--seed", "-3"], "--seed must be >= 0, got -3"),
    (["run", "--envs", "2", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["run", "--policy", "ppo:nowhere.zip"], "checkpoint nowhere.zip not found"),
    (["sweep", "--prevalence", ""], "--prevalence names no prevalence (got '')"),
    (["sweep", "--prevalence", ","], "--prevalence names no prevalence (got ',')"),
    (["sweep", "--conditions", ""], "--conditions names no condition (got '')"),
    (["sweep", "--conditions", " , "], "--conditions names no condition"),
    (["resilience", "--prevalences", ""], "--prevalences names no prevalence"),
    (["resilience", "--conditions", ","], "--conditions names no condition"),
])
def test_bad_input_one_line_error(tmp_path, monkeypatch, capsys, argv, words):
    if "backend=vllm" in argv and importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed")
    monkeypatch.chdir(tmp_path)
    out = (["--out", str(tmp_path / "out")] if argv[0] in ("run", "sweep", "resilience")
           else [])
    try:
        code = main([*argv, *out])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("civa: error:"), lines
    assert words in lines[0]
    assert not (tmp_path / "out").exists()  # nothing was started


def test_output_folder_holding_something_else(tmp_path):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    for sub in ("run", "sweep"):
        done = civa(sub, *SMALL, "--out", str(other), cwd=tmp_path)
        assert done.returncode == 1 and "holds something else" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert [p.name for p in other.iterdir()] == ["thesis.tex"]
    assert (other / "thesis.tex").read_text() == "precious"
    # An earlier run is kept unless --overwrite.
    run = tmp_path / "run"
    assert main(["run", *SMALL, "--out", str(run), "--no-plots"]) == 0
    before = (run / "metrics.json").read_text()
    done = civa("run", *SMALL, "--out", str(run), cwd=tmp_path)
    assert done.returncode == 1 and "--overwrite" in done.stderr
    assert (run / "metrics.json").read_text() == before


def bad_checkpoint(path: Path) -> Path:
    """A ppo checkpoint whose recorded world has 5 more features than SMALL's (its metadata
    alone: the shape check refuses it before any network is loaded)."""
    import zipfile

    from civa_env.policies.sb3 import CHECKPOINT_FORMAT
    from civa_env.world.config import Config
    from civa_env.world.day import shape_signature

    shape = shape_signature(Config(n_agents=10, max_days=8))
    shape["feature_size"] += 5
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("civa.json", json.dumps({"format": CHECKPOINT_FORMAT, "algo": "PPO",
                                             "shape": shape}))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("earlier") / "run"
    assert main(["run", *SMALL, "--out", str(run), "--no-plots"]) == 0
    return run


@pytest.mark.parametrize("case", ["negative seed", "checkpoint", "foreign file"])
def test_refused_overwrite_keeps_the_earlier_run(tmp_path, capsys, earlier_run, case):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(earlier_run, run)
    argv = ["run", *SMALL, "--out", str(run), "--no-plots", "--overwrite"]
    if case == "negative seed":
        argv += ["--seed", "-3"]
        words = "--seed must be >= 0, got -3"
    elif case == "checkpoint":
        ckpt = bad_checkpoint(tmp_path / "model.zip")
        argv += ["--policy", f"ppo:{ckpt}=0.5,scripted=0.5"]
        words = (f"checkpoint {ckpt} does not fit this world (feature_size: trained with ")
    else:
        (run / "notes.txt").write_text("mine")
        words = (f"output folder {run} holds an earlier run and files that are not CIVA's "
                 "(notes.txt); --overwrite replaces only a run's own files: move those away "
                 "or choose another --out")
    before = snapshot(run)
    capsys.readouterr()
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"civa: error: {words}"), lines
    assert snapshot(run) == before  # every file of the earlier run, byte for byte
    assert is_complete_run(run)


@pytest.mark.parametrize("case", ["negative seed", "checkpoint", "checkpoint, --envs 2",
                                  "--threads 0, --envs 2", "a failure inside the run"])
def test_refused_run_leaves_no_folder(tmp_path, capsys, monkeypatch, case):
    out = tmp_path / "new" / "run"
    argv = ["run", *SMALL, "--out", str(out), "--no-plots"]
    if case == "negative seed":
        argv += ["--seed", "-3"]
    elif case.startswith("checkpoint"):
        argv += ["--policy", f"ppo:{bad_checkpoint(tmp_path / 'model.zip')}"]
    if "--envs 2" in case:
        argv += ["--envs", "2"]
    if case.startswith("--threads"):
        argv += ["--threads", "0"]
    if case == "a failure inside the run":
        import civa_env.experiments.runner as runner

        def fails(cfgs, seeds, mix, run_dirs, **kwargs):
            for d in run_dirs:  # as the runner does first, then fails before writing
                runfolder.prepare_run_dir(d, kwargs["overwrite"])
            raise OSError(28, "No space left on device", str(run_dirs[0]))

        monkeypatch.setattr(runner, "run_communities", fails)
    assert main(argv) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()


def test_overwrite_replaces_the_run_files_only(tmp_path, earlier_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(earlier_run, run)
    (run / "view.html").write_text("<html>stale page</html>")
    (run / ".metrics.json.k2j4h_x1.tmp").write_text("{")  # left by a killed writer
    assert main(["run", *SMALL, "--out", str(run), "--no-plots", "--overwrite", "--seed",
                 "5"]) == 0
    assert sorted(p.name for p in run.iterdir()) == sorted(runfolder.RUN_FILES)
    assert json.loads((run / "config.json").read_text())["seed"] == 5


def test_config_file_that_is_not_utf8_is_named(tmp_path, capsys):
    bad = tmp_path / "config.json"
    bad.write_bytes(b'{"n_agents": "\xff"}')
    assert main(["run", "--config", str(bad), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.strip() == (
        f"civa: error: --config {bad}: not a UTF-8 text file (byte 14: invalid start byte)")
    assert not (tmp_path / "out").exists()


def test_sweep_resume_and_report(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "sweep"
    assert main(["sweep", *GRID, "--workers", "2", "--out", str(ref)]) == 0
    reference = {r["run_id"]: r for r in rows(ref / "results.csv")}
    assert len(reference) == 10
    assert all(is_complete_run(ref / "runs" / rid) for rid in reference)

    # Interrupted after 3 rows (a KeyboardInterrupt in the parent, pool shut down).
    sweep = Sweep(out, ["baseline", "with:power", "without:benevolence"], [0.5, 1], 2,
                  _small_config())
    seen = []

    def stop(row):
        seen.append(row["run_id"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run(workers=2, on_row=stop, progress=False)
    partial = load_results(out / "results.csv")
    assert set(seen) <= set(partial) and len(partial) < 10

    # Rows lost after runs finished (table truncated): recovered from the run folders.
    kept = rows(out / "results.csv")[:1]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(kept)
    done = civa("sweep", *GRID, "--workers", "2", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "recovered from run folders" in done.stdout
    recovered = int(done.stdout.split(" recovered")[0].split(", ")[-1])
    assert recovered >= len(partial) - 1
    final = rows(out / "results.csv")
    assert len(final) == len({r["run_id"] for r in final}) == 10
    assert {r["run_id"]: r for r in final} == reference  # same numbers as the uninterrupted run

    # A rerun does nothing.
    done = civa("sweep", *GRID, "--workers", "2", "--out", str(out), cwd=tmp_path)
    assert "10 already in the table" in done.stdout and " 0 run now" in done.stdout

    # Report.
    assert main(["report", str(out)]) == 0
    report = (out / "report" / "report.md").read_text()
    for word in ("| condition | prevalence | n | nAUP | SC | ED | IC | CC |", "with:power",
                 "without:benevolence", "betrayal_rate", "Largest effects", "Trends"):
        assert word in report
    for name in ("nAUP_vs_prevalence.png", "SC_vs_prevalence.png", "population_curves.png",
                 "deception_rate_vs_prevalence.png", "runs.md"):
        assert (out / "report" / name).stat().st_size > 0
    runs_md = (out / "report" / "runs.md").read_text()
    assert all(rid in runs_md for rid in reference)


def _small_config():
    from civa_env.world.config import Config

    return Config(n_agents=10, max_days=8)


def test_sweep_killed_then_resumed(tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "civa_env.cli", "sweep", *GRID, "--workers", "2", "--out",
           str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "results.csv").exists() and len(rows(out / "results.csv")) >= 1:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the parent and its worker pool, mid-sweep
    proc.wait()
    assert load_results(out / "results.csv") is not None  # never half-written
    done = civa("sweep", *GRID, "--workers", "2", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    final = rows(out / "results.csv")
    assert len(final) == len({r["run_id"] for r in final}) == 10


def test_corrupt_results_table(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", *GRID, "--workers", "1", "--out", str(out)]) == 0
    table = out / "results.csv"
    broken = table.read_text().replace("\n", "\nnot,a,row\n", 1)
    table.write_text(broken)
    runs_before = sorted(p.name for p in (out / "runs").iterdir())
    for argv in (["sweep", *GRID, "--out", str(out)], ["report", str(out)]):
        done = civa(*argv, cwd=tmp_path)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "corrupt" in lines[0] and "line 2" in lines[0]
    assert table.read_text() == broken
    assert sorted(p.name for p in (out / "runs").iterdir()) == runs_before
    # Moving it away recovers every row from the run folders, recomputing nothing.
    table.rename(out / "results.broken.csv")
    done = civa("sweep", *GRID, "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0 and "10 recovered" in done.stdout and " 0 run now" in done.stdout


def test_sweep_refuses_other_settings(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", *GRID, "--workers", "1", "--out", str(out)]) == 0
    done = civa("sweep", *GRID, "--set", "outage_prob=0.3", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 1 and "outage_prob" in done.stderr
    assert len(rows(out / "results.csv")) == 10


def test_ray_backend_matches_local(tmp_path):
    pytest.importorskip("ray")
    grid = ["--conditions", "with:power", "--prevalence", "1", "--seeds", "2", *SMALL]
    assert main(["sweep", *grid, "--workers", "1", "--out", str(tmp_path / "local")]) == 0
    assert main(["sweep", *grid, "--workers", "2", "--backend", "ray", "--out",
                 str(tmp_path / "ray")]) == 0
    local = {r["run_id"]: r for r in rows(tmp_path / "local" / "results.csv")}
    ray_rows = {r["run_id"]: r for r in rows(tmp_path / "ray" / "results.csv")}
    assert len(local) == 2 and local == ray_rows


def test_view(tmp_path):
    run = tmp_path / "run"
    assert main(["run", *SMALL, "--out", str(run), "--no-plots"]) == 0
    done = civa("view", str(run), "--out", str(tmp_path / "page.html"), cwd=tmp_path)
    if importlib.util.find_spec("civa_env.viewer") is None:
        assert done.returncode == 1 and "civa_env.viewer" in done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "page.html").stat().st_size > 0


def test_config_accepts_a_json_object(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--config", '{"outage_prob": 0.25, "n_agents": 6}', "--days", "3",
                 "--out", str(out), "--no-plots", "--no-progress"]) == 0
    env = json.loads((out / "config.json").read_text())["env"]
    assert env["outage_prob"] == 0.25 and env["n_agents"] == 6 and env["max_days"] == 3


def test_sweep_run_ids_keep_every_prevalence(tmp_path, monkeypatch):
    from civa_env.experiments import sweep as experiments

    assert experiments.run_id("with:power", 0.5, 3) == "with-power__p0.50__s3"
    assert experiments.run_id("with:power", 0.12, 0) != experiments.run_id("with:power", 0.125, 0)
    out = tmp_path / "sweep"
    assert main(["sweep", "--conditions", "with:power", "--prevalence", "0.12,0.125,0.5",
                 "--seeds", "1", "--workers", "1", "--out", str(out), *SMALL]) == 0
    table = rows(out / "results.csv")
    assert sorted(float(r["prevalence"]) for r in table) == [0.12, 0.125, 0.5]
    for r in table:
        m = json.loads((out / "runs" / r["run_id"] / "metrics.json").read_text())
        assert m["prevalence"] == float(r["prevalence"])
    # Two grid points under one id are refused rather than merged.
    monkeypatch.setattr(experiments, "run_id", lambda c, p, s: f"{c}__p{p:.1f}__s{s}")
    with pytest.raises(ValueError, match="share the run id"):
        experiments.make_grid(["with:power"], [0.12, 0.125], 1)


def test_sweep_refuses_other_llm_options(tmp_path):
    out = tmp_path / "sweep"
    grid = (["with:power"], [1.0], 1, _small_config())
    Sweep(out, *grid, policy_kwargs={"llm": {"model": "a", "temperature": 0}}).run(
        progress=False)
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["policy_kwargs"] == {"llm": {"model": "a", "temperature": 0}}
    from civa_env.experiments.sweep import SweepError

    for other in ({"llm": {"model": "b", "temperature": 0}}, {}):
        # The sweep names the setting as the Python API spells it; the CLI by its flags.
        with pytest.raises(SweepError, match=r"\(policy_kwargs differ\); use another output "
                           "folder") as caught:
            Sweep(out, *grid, policy_kwargs=other).run(progress=False)
        assert "(llm options (--model/--llm-option) differ); use another --out" in _one_line(
            caught.value)
    report = Sweep(out, *grid, policy_kwargs={"llm": {"temperature": 0, "model": "a"}}).run(
        progress=False)
    assert report.already == 1 and report.ran == 0


def test_second_sweep_process_is_refused(tmp_path, capsys):
    import fcntl

    out = tmp_path / "sweep"
    out.mkdir()
    with open(out / ".lock", "w") as held:  # another sweep holds the folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["sweep", *GRID, "--workers", "1", "--out", str(out)])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(lines) == 1, lines
        assert f"another civa sweep is running in {out}" in lines[0]
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    # Once it is gone, the folder (holding only the stale .lock file) is usable.
    grid = ["--conditions", "with:power", "--prevalence", "1", "--seeds", "1", *SMALL]
    assert main(["sweep", *grid, "--workers", "1", "--out", str(out)]) == 0
    assert len(rows(out / "results.csv")) == 1


def test_results_table_uses_a_private_temporary_file(tmp_path):
    from civa_env.experiments.sweep import write_results

    (tmp_path / "results.csv.tmp").mkdir()  # a fixed temporary name would collide
    write_results(tmp_path / "results.csv", [])
    assert load_results(tmp_path / "results.csv") == {}


FLAKY = {"fail_seed": 1}


class _Flaky:
    """A scripted policy that fails in the run whose seed is FLAKY["fail_seed"]."""

    def __new__(cls, **kwargs):
        from civa_env.policies import make_policy

        policy = make_policy("scripted", **kwargs)
        reset = policy.reset

        def failing_reset(cfg, seed=None):
            # The run's seed is the config's (a sweep sets it); the policy's own seed is
            # derived from it.
            if cfg.seed == FLAKY["fail_seed"]:
                raise RuntimeError(f"flaky policy refuses seed {cfg.seed}")
            return reset(cfg, seed)

        policy.reset = failing_reset
        return policy


@pytest.mark.parametrize("workers", ["1", "2"])
def test_failed_run_is_reported_and_the_rest_finish(tmp_path, capsys, workers):
    from civa_env.policies.base import register_policy

    register_policy("flaky", _Flaky)
    out = tmp_path / "sweep"
    argv = ["sweep", "--policy", "flaky", "--conditions", "baseline,with:power",
            "--prevalence", "1", "--seeds", "3", "--workers", workers, "--out", str(out),
            *SMALL]
    FLAKY["fail_seed"] = 1
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    failed = sorted(line.split("run ")[1].split(" failed")[0] for line in err[:-1])
    assert failed == ["baseline__p0.00__s1", "with-power__p1.00__s1"]
    assert all("RuntimeError: flaky policy refuses seed 1" in line for line in err[:-1])
    assert "2 of 6 runs failed" in err[-1] and "rerun" in err[-1]
    assert sorted(r["seed"] for r in rows(out / "results.csv")) == ["0", "0", "2", "2"]
    FLAKY["fail_seed"] = None
    assert main(argv) == 0  # the rerun retries only the failed runs
    assert "4 already in the table, 0 recovered from run folders, 2 run now" in (
        capsys.readouterr().out)
    assert len(rows(out / "results.csv")) == 6


def test_cells_sharing_a_failed_prevalence_zero_run_are_reported(tmp_path, capsys):
    from civa_env.policies.base import register_policy

    register_policy("flaky", _Flaky)
    out = tmp_path / "sweep"
    argv = ["sweep", "--policy", "flaky", "--conditions", "baseline,with:power",
            "--prevalence", "0,1", "--seeds", "2", "--workers", "1", "--out", str(out),
            *SMALL]
    FLAKY["fail_seed"] = 1
    try:
        assert main(argv) == 1
    finally:
        FLAKY["fail_seed"] = None
    err = capsys.readouterr().err.strip().splitlines()
    failed = {line.split("run ")[1].split(" failed")[0]: line for line in err[:-1]}
    assert sorted(failed) == ["baseline__p0.00__s1", "with-power__p0.00__s1",
                              "with-power__p1.00__s1"]
    assert "shares the failed run baseline__p0.00__s1" in failed["with-power__p0.00__s1"]
    assert "3 of 6" in err[-1], err[-1]  # (baseline is one cell a seed: 6 cells)
    assert main(argv) == 0 and len(rows(out / "results.csv")) == 6


def test_rerun_multi_env_with_overwrite_replaces_policy_files(tmp_path):
    out = tmp_path / "multi"
    argv = ["run", *SMALL, "--envs", "2", "--out", str(out), "--no-plots"]
    assert main(argv) == 0
    (out / "transcript.jsonl").write_text('{"stale": true}\n')  # an earlier llm run's files
    (out / "llm_stats.json").write_text("{}")
    assert main(argv) == 1  # an earlier run: refused without --overwrite
    assert main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["env_0", "env_1"]
    assert all(is_complete_run(out / f"env_{k}") for k in (0, 1))


def test_interrupt_and_internal_errors(tmp_path, monkeypatch, capsys):
    import civa_env.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    for command in ("run", "sweep"):
        monkeypatch.setattr(cli, f"cmd_{command}", interrupted)
        assert main([command, "--out", str(tmp_path / "x")]) == 130
        err = capsys.readouterr().err
        assert ("resume" in err) == (command == "sweep"), err

    def bug(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(cli, "cmd_run", bug)
    assert main(["run"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "TypeError: unsupported operand" in lines[0]
    assert "CIVA_DEBUG=1" in lines[0]
    monkeypatch.setenv("CIVA_DEBUG", "1")
    with pytest.raises(TypeError):
        main(["run"])

    def disk_full(args):
        raise OSError(28, "No space left on device", str(tmp_path / "results.csv"))

    monkeypatch.delenv("CIVA_DEBUG")
    monkeypatch.setattr(cli, "cmd_run", disk_full)
    assert main(["run"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"civa: error: {tmp_path / 'results.csv'}: No space left on device")
