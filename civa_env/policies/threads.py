"""CPU threads for torch: a number that does not oversubscribe the machine.

torch's intra-op pool is process-wide, so the setting is too: ``torch_threads(n)`` sets it
(``torch.set_num_threads``) for the LLM's transformers backend (llm option ``threads``) and,
through ``civa run --threads``, for every torch policy of the run. Without a number:

* under a pytest-xdist worker (``PYTEST_XDIST_WORKER`` set) one thread, since the workers
  already fill the cores;
* otherwise torch's own default (one thread per core it sees), capped at the CPUs this
  process may run on (``os.sched_getaffinity``), which a container may limit below the
  cores torch counts.

On a shared, busy machine fewer threads are often faster: the issue that asked for this
measured a 6-resident day of a 135M model at about 510 s with torch's default threads and
about 95 s with one thread on a 2-core machine.
"""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads(torch_default: int) -> int:
    """The thread count used when none is asked for (see the module docstring)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return 1
    return max(1, min(torch_default, available_cpus()))


def torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (None: ``default_threads``); returns
    the number in use.

    Raises:
        ValueError: ``threads`` below 1.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    import torch

    wanted = threads if threads is not None else default_threads(torch.get_num_threads())
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted
