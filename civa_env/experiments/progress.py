"""Progress of ``civa run``, ``civa sweep`` and ``civa resilience``: one helper for all three.

On a terminal (stderr a tty) it is a tqdm bar. Anywhere else (a log file, a pipe, a batch
job's output) a bar's carriage-return frames would fill the log, so it writes plain lines
instead, such as ``sweep: 7/21 runs, 1m12s elapsed, ~2m24s left``: one each time another
tenth of the work is done, one when ``every`` seconds (default 30) have passed since the
last line, and one at the end.

A ``Progress`` starts its bar on entering (``with``) or at its first ``update``, not when it
is built: a forking process pool can be started in between without a tqdm monitor thread.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

EVERY_SECONDS = 30.0  # a plain line at least this often while work goes on
STEPS = 10  # and one each time another 1/STEPS of the total is done


def format_seconds(seconds: float) -> str:
    """``8s``, ``1m12s``, ``2h05m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """A tqdm bar on a terminal, plain periodic lines otherwise, nothing when disabled.

    Args:
        total: units of work (days, runs).
        desc: what is progressing (``civa run``, ``sweep``, ``resilience: coarse``).
        unit: the unit's name, singular (``day``, ``run``); plain lines add an ``s``.
        enabled: False for no output at all (``--no-progress``).
        leave: keep the tqdm bar on the terminal once closed.
        stream: where to write (default ``sys.stderr`` when the bar starts).
        tty: bar or plain lines (default: whether ``stream`` is a terminal).
        write: how plain lines are written (default: one line on ``stream``, flushed).
        every: seconds after which a plain line is written even without another tenth.
        clock: ``time.monotonic`` (tests pass their own).
    """

    def __init__(self, total: int, desc: str, unit: str = "run", *, enabled: bool = True,
                 leave: bool = True, stream: IO[str] | None = None, tty: bool | None = None,
                 write: Callable[[str], None] | None = None, every: float = EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.enabled, self.leave, self.every = enabled, leave, every
        self._stream, self._tty, self._write, self._clock = stream, tty, write, clock
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self._bar: Any = None
        self._started = self._closed = False
        self._start = self._last_line = 0.0
        self._next_step = 1  # the next tenth that gets a line
        self._reported = 0  # the count the last plain line gave

    # ---- life cycle -----------------------------------------------------------------------
    def start(self) -> Progress:
        """Start the bar (or the clock of the plain lines); idempotent."""
        if self._started or not self.enabled:
            self._started = True
            return self
        self._started = True
        stream = self._stream if self._stream is not None else sys.stderr
        tty = self._tty
        if tty is None:
            try:
                tty = bool(stream.isatty())
            except (AttributeError, ValueError):  # a closed or unusual stream
                tty = False
        if tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.desc, unit=self.unit,
                             leave=self.leave, file=stream)
        else:
            self._stream = stream
            self._start = self._last_line = self._clock()
        return self

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the bar; a plain line for the end if the last one did not say it."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.plain and self.n != self._reported:  # stopped early (an extinct run)
            self._emit(self.line())

    # ---- updates ----------------------------------------------------------------------------
    @property
    def plain(self) -> bool:
        """Whether this progress writes plain lines (started, enabled, not a terminal)."""
        return self._started and self.enabled and self._bar is None

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.start()
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.plain:
            self._maybe_line()

    def set_postfix(self, **fields: Any) -> None:
        """Figures shown after the counts (``population=23``)."""
        self.postfix = fields
        if self._bar is not None:
            self._bar.set_postfix(refresh=False, **fields)

    def _maybe_line(self) -> None:
        now = self._clock()
        step = STEPS * self.n // self.total if self.total > 0 else STEPS
        due = (self.n >= self.total or step >= self._next_step
               or now - self._last_line >= self.every)
        if not due:
            return
        self._next_step = step + 1
        self._last_line = now
        self._emit(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The plain line for the work done so far."""
        now = self._clock() if now is None else now
        elapsed = now - self._start
        units = self.unit if self.total == 1 else f"{self.unit}s"
        text = f"{self.desc}: {self.n}/{self.total} {units}, {format_seconds(elapsed)} elapsed"
        if 0 < self.n < self.total:
            text += f", ~{format_seconds(elapsed / self.n * (self.total - self.n))} left"
        if self.postfix:
            text += ", " + ", ".join(f"{k} {v}" for k, v in self.postfix.items())
        return text

    def _emit(self, text: str) -> None:
        self._reported = self.n
        if self._write is not None:
            self._write(text)
            return
        try:
            print(text, file=self._stream, flush=True)
        except (OSError, ValueError):  # a closed output must not stop the work
            pass
