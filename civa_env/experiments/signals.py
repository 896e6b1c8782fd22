"""Signals and processes: SIGTERM stops a run like Ctrl-C, pool workers end with their parent.

``timeout``, SLURM and container stops send SIGTERM. Inside ``terminate_as_interrupt()`` (the
``civa`` command runs every subcommand inside it) the first SIGTERM raises ``Terminated``, a
``KeyboardInterrupt``, in the main thread: the run in progress is recorded the way Ctrl-C
records it (config.json ``"status": "interrupted: SIGTERM"``), a sweep saves its table, and
the command exits with ``exit_status`` (128 + the signal: 143 for SIGTERM, 130 for Ctrl-C).
Later SIGTERMs are ignored while that cleanup runs (``timeout`` signals the process and then
its group, so one process often gets two).

Pool workers (``init_worker`` as the initializer, tasks wrapped in ``in_worker``) end when
their parent does, however it ends (``kill -9`` included): on Linux the kernel sends them
SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``), and everywhere a daemon thread
checks every half second that the parent is still theirs (``os.getppid()``), signals the
worker when it is not, and ends it ``GRACE`` seconds later whatever it is doing. A worker
signalled in the middle of a run records the run as interrupted and exits (``os._exit``); an
idle one exits at once. A rerun then redoes the interrupted runs: their folders have no
complete metrics.json.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

PR_SET_PDEATHSIG = 1  # linux/prctl.h
POLL_SECONDS = 0.5  # how often a worker checks that its parent is alive
GRACE = 3.0  # seconds a worker whose parent died has to record its run before it is ended

T = TypeVar("T")


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal (SIGTERM; SIGINT in pool workers)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = int(signum)
        super().__init__(signal_name(self.signum))


def signal_name(signum: int) -> str:
    """``SIGTERM``, ``SIGINT``... (``signal 42`` for a number without a name)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def interruption(err: BaseException) -> KeyboardInterrupt | None:
    """The interruption (Ctrl-C, ``Terminated``) that ``err`` is or that it wraps, else None.

    A signal that arrives while Python runs code on the user's behalf can come back wrapped:
    Python 3.11 turns an exception raised in ``__set_name__`` (a dataclass field's, during an
    import) into ``RuntimeError`` whose ``__cause__`` is the interruption, and libraries
    re-raise with ``raise ... from``. Follows ``__cause__``, and ``__context__`` unless it
    was suppressed (``raise ... from None``: the handler chose to turn the stop into that
    error).
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, KeyboardInterrupt):
            return e
        todo += [None if e.__suppress_context__ else e.__context__, e.__cause__]
    return None


def interrupt_signal(err: BaseException) -> int:
    """The signal behind an interruption: ``Terminated.signum``, else SIGINT (Ctrl-C)."""
    return getattr(err, "signum", int(signal.SIGINT))


def exit_status(err: BaseException) -> int:
    """The shell's status for a process stopped by the interruption's signal: 128 + signal
    (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + interrupt_signal(err)


def describe_interrupt(err: BaseException) -> str:
    """``SIGTERM`` or ``SIGINT (Ctrl-C)``: what config.json's status names."""
    signum = interrupt_signal(err)
    name = signal_name(signum)
    return f"{name} (Ctrl-C)" if signum == signal.SIGINT else name


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Inside: the first SIGTERM raises ``Terminated`` in the main thread, later ones are
    ignored; the previous handler is restored on leaving. Off the main thread (where Python
    cannot set handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- pool workers ------------------------------------------------------------------------------
_WORKER = {"busy": False, "stopping": False, "signum": int(signal.SIGTERM)}


def _worker_signal(signum: int, frame: Any) -> None:
    if _WORKER["stopping"]:
        return
    _WORKER["stopping"], _WORKER["signum"] = True, int(signum)
    if not _WORKER["busy"]:
        os._exit(128 + signum)
    raise Terminated(signum)


def set_parent_death_signal(signum: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``signum`` to this process when its parent dies; False elsewhere
    or when the call fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, poll: float, grace: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll)
    with contextlib.suppress(OSError):
        os.kill(os.getpid(), signal.SIGTERM)  # record the run in progress, then exit
    time.sleep(grace)
    os._exit(128 + signal.SIGTERM)


def init_worker(parent_pid: int, death_signal: bool = True, poll: float = POLL_SECONDS,
                grace: float = GRACE) -> None:
    """Make this pool worker end with its parent ``parent_pid``, and stop on SIGTERM or
    SIGINT like the parent (see the module's docstring).

    ``death_signal``: use Linux's parent-death signal too. It fires when the *thread* that
    started the worker ends, so pass it only for workers started from the main thread.
    """
    signal.signal(signal.SIGTERM, _worker_signal)
    signal.signal(signal.SIGINT, _worker_signal)
    if death_signal:
        set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(128 + signal.SIGTERM)
    threading.Thread(target=_watch_parent, args=(parent_pid, poll, grace), daemon=True,
                     name="civa-parent-watch").start()


def in_worker(fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(*args)`` in a pool worker set up by ``init_worker``: a stop signal during
    the call (the run records it) ends the worker with 128 + the signal."""
    _WORKER["busy"] = True
    try:
        out = fn(*args)
    except BaseException as err:
        stop = interruption(err)
        if stop is not None:
            os._exit(exit_status(stop))
        if _WORKER["stopping"]:  # stopped, and the call turned the stop into another error
            os._exit(128 + _WORKER["signum"])
        raise
    finally:
        _WORKER["busy"] = False
    if _WORKER["stopping"]:  # a stop the call swallowed
        os._exit(128 + _WORKER["signum"])
    return out


def stop_processes(processes: Sequence[Any], grace: float = 10.0) -> None:
    """SIGTERM each live ``multiprocessing.Process``, wait up to ``grace`` seconds for them to
    end (their runs record the interruption), then kill what is left."""
    from multiprocessing.connection import wait

    live = [p for p in processes if p.is_alive()]
    for p in live:
        with contextlib.suppress(OSError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    pending = {p.sentinel: p for p in live}
    while pending and time.monotonic() < deadline:
        for ready in wait(list(pending), timeout=max(0.0, deadline - time.monotonic())):
            pending.pop(ready, None)
    for p in pending.values():
        with contextlib.suppress(OSError):
            p.kill()
