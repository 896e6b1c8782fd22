"""Run folders on disk: atomic writes, recognising a run folder, preparing one.

Every JSON file of a run folder (and a sweep's ``results.csv``) is written through a
temporary file of its own (``tempfile.mkstemp`` in the same folder, so that two writers
never share one) and ``os.replace``, so that a reader never sees a half-written file.
``FolderLock`` keeps a second sweep process out of a sweep folder. See docs/run-folder.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

RUN_FILES = ("config.json", "residents.json", "events.jsonl", "metrics.json")
# Files a policy may keep beside the runs it serves (the llm policy's; see docs/llm.md). With
# several communities in one loop they sit in the --out root, next to the env_k folders.
POLICY_FILES = ("transcript.jsonl", "llm_prompts.json", "llm_stats.json")
FILE_MODE = 0o644  # mkstemp creates 0600 files; results are meant to be shared


class RunFolderError(ValueError):
    """An output folder that cannot take a run (holds something else, or an earlier run)."""


@contextlib.contextmanager
def atomic_open(path: Path, *, newline: str | None = None, fsync: bool = False) -> Iterator[IO]:
    """Open a private temporary file beside ``path``; on success it replaces ``path``.

    On an error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, data: Any, *, fsync: bool = False) -> None:
    """Write JSON through a temporary file and ``os.replace`` (never a half-written file)."""
    with atomic_open(path, fsync=fsync) as f:
        json.dump(data, f, indent=2, allow_nan=False, default=_json_default)
        f.write("\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a CIVA run folder (its config.json carries ``civa_version``)."""
    try:
        with open(Path(path) / "config.json", encoding="utf-8") as f:
            return "civa_version" in json.load(f)
    except (OSError, ValueError, TypeError):
        return False


def is_complete_run(path: Path) -> bool:
    """Whether ``path`` holds a finished run (metrics.json with status complete)."""
    try:
        with open(Path(path) / "metrics.json", encoding="utf-8") as f:
            return json.load(f).get("status") == "complete"
    except (OSError, ValueError, AttributeError):
        return False


def prepare_run_dir(path: Path, overwrite: bool = False) -> Path:
    """Create ``path`` for a run; refuse a folder holding anything but an earlier run.

    Raises:
        RunFolderError: ``path`` is a file, a non-empty folder that is not a CIVA run folder,
            or an earlier run while ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"output {path} is a file, not a folder; choose another --out")
    if path.is_dir() and any(path.iterdir()):
        if not is_run_dir(path):
            raise RunFolderError(f"output folder {path} holds something else (not a CIVA run "
                                 "folder); choose an empty or new --out")
        if not overwrite:
            raise RunFolderError(f"output folder {path} already holds a run; pass --overwrite "
                                 "to replace it or choose another --out")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_policy_files(folder: Path) -> None:
    """Remove an earlier run's policy files (``POLICY_FILES``) from ``folder``."""
    for name in POLICY_FILES:
        with contextlib.suppress(FileNotFoundError):
            (Path(folder) / name).unlink()


# ---- one sweep process per folder ---------------------------------------------------------------
LOCK_NAME = ".lock"


class FolderLockedError(ValueError):
    """Another process holds the folder's lock."""


class FolderLock:
    """An exclusive ``fcntl.flock`` on ``folder/.lock``, held while in the ``with`` block.

    The lock ends with the process that holds it (even when killed), so a stale ``.lock``
    file never blocks anyone. Where ``fcntl`` is missing (not POSIX) there is no lock.

    Args:
        folder: an existing folder.
        holder: what holds the lock, for the error (``civa sweep``).
    """

    def __init__(self, folder: Path, holder: str = "civa sweep") -> None:
        self.folder, self.holder = Path(folder), holder
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderLockedError(f"another {self.holder} is running in {self.folder}; "
                                    "wait for it to finish (or stop it), then rerun") from None
        self.fd = fd
        LOCK_FDS.add(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            LOCK_FDS.discard(self.fd)
            os.close(self.fd)  # releases the lock
            self.fd = None


# Lock descriptors held by this process. A forked worker inherits them; it closes its copies
# (``close_inherited_locks`` as the pool's initializer) so the lock stays the parent's alone.
LOCK_FDS: set[int] = set()


def close_inherited_locks(fds: Sequence[int]) -> None:
    """Close a forked child's copies of the parent's lock descriptors."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
