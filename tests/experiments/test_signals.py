"""Signals and processes (POSIX): SIGTERM is recorded like Ctrl-C, a sweep's pool workers end
when the sweep process is killed (and a rerun resumes), and progress off a terminal is plain
lines without carriage returns."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from civa_env.experiments.progress import Progress, format_seconds
from civa_env.experiments.runfolder import is_complete_run

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL") or not Path("/proc").is_dir(),
                                reason="POSIX signals and /proc")


def civa_popen(*argv: str, cwd: Path) -> subprocess.Popen:
    """The console script in the background, its output piped (not a terminal)."""
    return subprocess.Popen([sys.executable, "-m", "civa_env.cli", *argv], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "config.json").read_text())["status"]
    except (OSError, ValueError, KeyError):  # not there yet, or mid-replace
        return None


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc/*/stat)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its new parent, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def seconds_until_gone(pids: list[int], limit: float = 15.0) -> float:
    start = time.monotonic()
    while any(alive(p) for p in pids) and time.monotonic() - start < limit:
        time.sleep(0.02)
    return time.monotonic() - start


def test_sigterm_records_the_run_as_interrupted(tmp_path):
    run = tmp_path / "run"
    proc = civa_popen("run", "--agents", "10", "--days", "20000", "--out", str(run),
                      "--no-plots", cwd=tmp_path)
    try:
        wait_for(lambda: status(run) == "running" and (run / "events.jsonl").exists()
                 and (run / "events.jsonl").stat().st_size > 0, what="a running run")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, err  # 128 + SIGTERM, as a shell reports it
    assert status(run) == "interrupted: SIGTERM"
    assert "civa: interrupted by SIGTERM" in err
    assert "\r" not in err  # not a terminal: plain progress lines
    assert not (run / "metrics.json").exists()
    days = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert days  # readable up to the last finished day


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_killing_the_sweep_process_ends_its_workers_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "sweep"
    # Runs of a few seconds each (with:benevolence communities live on; with:power ones died
    # out within a second, and a fast machine finished the sweep before it could be killed).
    argv = ["sweep", "--conditions", "with:benevolence", "--prevalence", "1", "--seeds", "3",
            "--agents", "10", "--days", "400", "--workers", "2", "--out", str(out)]
    proc = civa_popen(*argv, cwd=tmp_path)
    try:
        # Kill once a run has its row and another is under way (two workers busy).
        def mid_sweep() -> bool:
            done = (out / "results.csv").exists() and len(rows(out / "results.csv")) >= 1
            running = [d for d in (out / "runs").glob("*") if status(d) == "running"]
            return proc.poll() is not None or (done and bool(running))

        wait_for(mid_sweep, what="a sweep half done")
        assert proc.poll() is None, "the sweep finished before it could be killed"
        workers = children(proc.pid)
        assert workers and all(alive(p) for p in workers)
        proc.kill()  # SIGKILL: no handler runs in the parent
        took = seconds_until_gone(workers)
        proc.communicate(timeout=10)  # the output closes: no worker holds it open
    finally:
        proc.kill()
    assert not any(alive(p) for p in workers), f"workers alive {took:.1f} s after the kill"
    assert took < 10, took
    # Their runs did not go on: recorded as interrupted (SIGTERM from the parent's death).
    left = [d for d in (out / "runs").iterdir() if not is_complete_run(d)]
    assert all(status(d) == "interrupted: SIGTERM" for d in left), [status(d) for d in left]
    before = {r["run_id"] for r in rows(out / "results.csv")}

    done = subprocess.run([sys.executable, "-m", "civa_env.cli", *argv, "--no-progress"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} already in the table" in done.stdout
    final = rows(out / "results.csv")
    assert len(final) == len({r["run_id"] for r in final}) == 3
    assert all(is_complete_run(out / "runs" / r["run_id"]) for r in final)  # partial: redone


WORKER = textwrap.dedent("""
    import os, sys, time
    from civa_env.experiments import signals

    def busy(marker):
        try:
            while True:
                time.sleep(0.01)
        except KeyboardInterrupt as err:
            with open(marker, "w") as f:
                f.write(signals.describe_interrupt(err))
            raise

    pid = os.fork()
    if pid == 0:
        signals.init_worker(os.getppid(), death_signal=False)  # the portable fallback only
        if sys.argv[1] == "busy":
            signals.in_worker(busy, sys.argv[2])
        time.sleep(120)
        os._exit(0)
    print(pid, flush=True)
    time.sleep(120)
""")


@pytest.mark.parametrize("what", ["idle", "busy"])
def test_workers_notice_a_dead_parent_without_the_death_signal(tmp_path, what):
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", WORKER, what, str(marker)],
                            stdout=subprocess.PIPE, text=True)
    try:
        worker = int(proc.stdout.readline())
        time.sleep(0.3)  # the worker sets itself up
        assert alive(worker)
        proc.kill()
        took = seconds_until_gone([worker])
    finally:
        proc.kill()
        proc.wait()
    assert not alive(worker) and took < 6, took  # half a second to notice, then at once
    if what == "busy":
        assert marker.read_text() == "SIGTERM"  # the call was stopped, and could record it


def test_progress_off_a_terminal_is_plain_lines():
    now = [0.0]
    lines: list[str] = []
    with Progress(20, "sweep", "run", tty=False, write=lines.append,
                  clock=lambda: now[0]) as bar:
        for _ in range(20):
            now[0] += 3.0
            bar.update(1)
    assert len(lines) == 10  # each tenth
    assert lines[0] == "sweep: 2/20 runs, 6s elapsed, ~54s left"
    assert lines[-1] == "sweep: 20/20 runs, 1m00s elapsed"
    # A slow stage still says something every 30 s; an early stop gets a last line.
    lines.clear()
    with Progress(1000, "civa", "day", tty=False, write=lines.append,
                  clock=lambda: now[0]) as bar:
        bar.set_postfix(population=12)
        now[0] += 31
        bar.update(1)
        bar.update(1)
    assert lines == ["civa: 1/1000 days, 31s elapsed, ~8h36m left, population 12",
                     "civa: 2/1000 days, 31s elapsed, ~4h17m left, population 12"]
    stream = io.StringIO()
    with Progress(5, "sweep", stream=stream, tty=False) as bar:
        bar.update(5)
    assert stream.getvalue() == "sweep: 5/5 runs, 0s elapsed\n"
    with Progress(5, "sweep", stream=stream, tty=False, enabled=False) as bar:
        bar.update(5)
    assert stream.getvalue() == "sweep: 5/5 runs, 0s elapsed\n"  # disabled: nothing
    assert [format_seconds(s) for s in (8, 72, 3600 + 300)] == ["8s", "1m12s", "1h05m"]


def test_progress_on_a_terminal_is_a_bar():
    stream = io.StringIO()
    with Progress(3, "sweep", stream=stream, tty=True) as bar:
        bar.update(3)
    assert "\r" in stream.getvalue() and "3/3" in stream.getvalue()


def test_sweep_and_resilience_progress_in_a_log_has_no_carriage_returns(tmp_path, capsys):
    from civa_env.cli import main

    assert main(["sweep", "--conditions", "with:power", "--prevalence", "1", "--seeds", "2",
                 "--agents", "6", "--days", "5", "--workers", "1",
                 "--out", str(tmp_path / "sweep")]) == 0
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    assert "\r" not in err and "sweep: 2/2 runs" in err
    assert main(["resilience", "--conditions", "baseline", "--seeds", "2", "--agents", "6",
                 "--stress-day", "2", "--horizon", "3", "--levels", "1,3", "--refine", "0",
                 "--no-diagnostics", "--bootstrap", "50", "--workers", "1",
                 "--out", str(tmp_path / "res")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "resilience: coarse levels: 4/4 runs" in err
