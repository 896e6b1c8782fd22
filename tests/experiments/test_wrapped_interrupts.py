"""An interruption that comes back wrapped in another error is still an interruption.

A SIGTERM that lands while Python runs ``__set_name__`` (a dataclass field's, while a module is
imported) comes back, on Python 3.11, as ``RuntimeError`` whose cause is the ``Terminated``;
libraries re-raise with ``raise ... from``. The run folder says ``interrupted``, the command
exits 143, a pool worker ends with 143 rather than reporting a failed run.
"""

from __future__ import annotations

import json
import signal

import pytest

from civa_env import cli
from civa_env.experiments.runner import run_community
from civa_env.experiments.signals import Terminated, exit_status, in_worker, interruption
from civa_env.policies.scripted import ScriptedPolicy
from civa_env.world.config import Config


class _StopsOnSetName:
    def __set_name__(self, owner, name):
        raise Terminated(signal.SIGTERM)


def _class_made_while_stopping() -> BaseException:
    try:
        type("ResidentTurn", (), {"chat": _StopsOnSetName()})
    except BaseException as err:  # RuntimeError on 3.11, Terminated itself on 3.12+
        return err
    raise AssertionError("the class was made")


def test_interruption_is_found_through_causes_and_contexts():
    err = _class_made_while_stopping()
    found = interruption(err)
    assert isinstance(found, Terminated) and found.signum == signal.SIGTERM
    assert exit_status(found) == 143

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("while handling")  # noqa: B904 (a context, not a cause)
    except ValueError as wrapped:
        assert isinstance(interruption(wrapped), KeyboardInterrupt)
        assert exit_status(interruption(wrapped)) == 130

    assert interruption(RuntimeError("plain")) is None
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a  # a cycle ends the walk
    assert interruption(a) is None


class _StoppedPolicy(ScriptedPolicy):
    """Stops on day 3 the way a SIGTERM during an import does."""

    def act(self, batch):
        if batch.day.max() >= 3:
            raise RuntimeError("Error calling __set_name__") from Terminated(signal.SIGTERM)
        return super().act(batch)


def test_a_wrapped_stop_records_the_run_as_interrupted(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(RuntimeError):
        run_community(Config(n_agents=6, max_days=10), "scripted", seed=0, run_dir=run,
                      policies={"scripted": _StoppedPolicy()}, progress=False, plots=False)
    status = json.loads((run / "config.json").read_text())["status"]
    assert status == "interrupted: SIGTERM"

    def plain(batch):
        raise RuntimeError("a real failure")

    other = tmp_path / "other"
    policy = ScriptedPolicy()
    policy.act = plain
    with pytest.raises(RuntimeError):
        run_community(Config(n_agents=6, max_days=10), "scripted", seed=0, run_dir=other,
                      policies={"scripted": policy}, progress=False, plots=False)
    status = json.loads((other / "config.json").read_text())["status"]
    assert status == "failed: RuntimeError: a real failure"


def _wrapped_stop() -> RuntimeError:
    err = RuntimeError("Error calling __set_name__")  # (as 3.11 wraps it, on every version)
    err.__cause__ = Terminated(signal.SIGTERM)
    return err


def test_the_command_exits_143_on_a_wrapped_stop(monkeypatch, capsys):
    def stopped(args):
        raise _wrapped_stop()

    monkeypatch.setattr(cli, "cmd_run", stopped)  # the parser is built by each main()
    assert cli.main(["run", "--agents", "4", "--days", "2", "--no-plots"]) == 143
    assert "civa: interrupted by SIGTERM" in capsys.readouterr().err


def test_a_pool_worker_ends_with_the_stop_signal_not_a_failure(monkeypatch):
    codes = []
    monkeypatch.setattr("os._exit", lambda code: codes.append(code) or (_ for _ in ()).throw(
        SystemExit(code)))

    def task():
        raise _wrapped_stop()

    with pytest.raises(SystemExit):
        in_worker(task)
    assert codes == [143]

    def fails():
        raise ValueError("a real failure")

    with pytest.raises(ValueError):  # a failure is the run's, reported to the sweep
        in_worker(fails)


def test_a_suppressed_stop_is_the_error_that_replaced_it():
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("chosen") from None
    except ValueError as err:
        assert interruption(err) is None


def test_a_serial_sweep_stops_on_a_wrapped_stop(monkeypatch):
    from civa_env.experiments import sweep

    ran, failures = [], []

    def run_task(task):
        ran.append(task)
        if task == 1:
            raise _wrapped_stop()
        if task == 2:
            raise ValueError("a real failure")
        return {"task": task}

    monkeypatch.setattr(sweep, "run_task", run_task)
    with pytest.raises(Terminated):
        sweep._run_serial([0, 1, 2], lambda row: None, lambda t, e: failures.append(t), False)
    assert ran == [0, 1] and failures == []  # stopped at the stop, no run after it
    ran.clear()
    sweep._run_serial([2, 0], lambda row: None, lambda t, e: failures.append(t), False)
    assert ran == [2, 0] and failures == [2]  # a real failure is the run's, the sweep goes on
