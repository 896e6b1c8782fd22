"""Run folders on disk: the one reader and writer of their files, and what they mean.

Readers: ``read_config`` (config.json as written), ``read_env_config`` (the Config inside
it), ``read_residents``, ``read_metrics`` and ``read_events`` (through
``EventLog.read_jsonl``). Every error about a malformed or missing file is a
``RunFolderError`` naming the file. ``is_run_dir`` recognises a run folder and
``is_complete_run`` a finished run; ``prepare_run_dir`` readies a folder for a new run
(replacing an earlier run removes CIVA's own files only, ``is_own_file``, and a folder
that holds anything else is refused).

Writers: every JSON file of a run folder (and a sweep's ``results.csv``) is written through a
temporary file of its own (``tempfile.mkstemp`` in the same folder, so that two writers
never share one) and ``os.replace``, so that a reader never sees a half-written file.
``FolderLock`` keeps a second sweep process out of a sweep folder. See docs/run-folder.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from civa_env.world.config import Config
from civa_env.world.events import EventLog

RUN_FILES = ("config.json", "residents.json", "events.jsonl", "metrics.json")
# Files a policy may keep beside the runs it serves (the llm policy's; see docs/llm.md). With
# several communities in one loop they sit in the output root, next to the env_k folders.
POLICY_FILES = ("transcript.jsonl", "questionnaire.jsonl", "llm_prompts.json", "llm_stats.json")
# The run's figures (``plots.plot_run``: each stem in each format a figure may be written
# in), its page (``civa view``) and the LLM annotator's files: with RUN_FILES and
# POLICY_FILES, everything CIVA writes into a run folder (``is_own_file``). ``--overwrite``
# removes these and nothing else.
PLOT_STEMS = ("population", "wealth", "actions")
PLOT_FORMATS = ("png", "pdf", "svg")
OTHER_FILES = ("view.html", "annotations.jsonl", "annotations.json")
FILE_MODE = 0o644  # mkstemp creates 0600 files; results are meant to be shared
# The "status" of config.json while the run goes and once it has finished (a failed run's
# status is "failed: <error>"); metrics.json carries STATUS_COMPLETE.
STATUS_RUNNING = "running"
STATUS_COMPLETE = "complete"


class SettingError(ValueError):
    """An error about settings, worded for the Python API; ``worded`` names them otherwise.

    ``template`` is a ``str.format`` text whose fields are either settings (the keys of
    ``settings``, each mapped to how the Python API spells it) or other values (``values``:
    paths, numbers), so that a path with braces is never taken for a field. ``str(err)`` uses
    the API spelling; the command line gives its flag names to ``worded``. Without settings
    and values the template is the message as it stands.

    Args:
        template: the message, with ``{setting}`` and ``{value}`` fields.
        settings: {setting: its Python API spelling}, e.g. ``{"overwrite": "overwrite=True"}``.
        values: the template's other fields.
    """

    def __init__(self, template: str, settings: Mapping[str, str] | None = None,
                 values: Mapping[str, Any] | None = None) -> None:
        super().__init__(template, dict(settings or {}), dict(values or {}))
        self.template = template
        self.settings = dict(settings or {})
        self.values = dict(values or {})

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with each setting named by ``names`` (the API spelling otherwise)."""
        if not self.settings and not self.values:
            return self.template
        spelled = {key: names.get(key, api) for key, api in self.settings.items()}
        return self.template.format(**self.values, **spelled)

    def __str__(self) -> str:
        return self.worded({})


class RunFolderError(SettingError):
    """A run folder that is malformed, or that cannot take a run (the message names the file
    or folder)."""


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


# ---- reading a run folder ---------------------------------------------------------------------
def _run_folder(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: not a folder (give the run folder written by "
                             "`civa run`)")
    return run_dir


def _read_json(path: Path, what: str) -> Any:
    """A JSON file of a run folder; errors name the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{path}: no {what} in this run folder") from None
    except json.JSONDecodeError as err:
        raise RunFolderError(f"{path}: not valid JSON ({err})") from None
    except UnicodeDecodeError as err:
        raise RunFolderError(f"{path}: not a text file ({err})") from None
    except OSError as err:
        raise RunFolderError(f"{path}: cannot be read ({err.strerror or err})") from None


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """config.json as written (see docs/run-folder.md).

    Raises:
        RunFolderError: no folder, no config.json, or one that is not a JSON object.
    """
    path = _run_folder(run_dir) / "config.json"
    data = _read_json(path, "config.json (written by `civa run`)")
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: config must be a JSON object, got {type(data).__name__}")
    return data


def env_fields(config_json: Mapping[str, Any]) -> Any:
    """The Config fields of a config.json: its ``env`` object, or the object itself when it
    holds the fields directly (a file of Config fields, as ``Config.to_json`` writes)."""
    return config_json.get("env", config_json)


def read_env_config(run_dir: str | os.PathLike,
                    config_json: Mapping[str, Any] | None = None) -> Config:
    """The run's Config, rebuilt from config.json (``config_json`` when already read).

    Raises:
        RunFolderError: config.json is missing or broken, or its fields are not a valid
            Config (the message names the file and the field).
    """
    if config_json is None:
        config_json = read_config(run_dir)
    try:
        return Config.from_dict(env_fields(config_json))
    except (TypeError, ValueError) as err:
        raise RunFolderError(f"{Path(run_dir) / 'config.json'}: {err}") from None


def read_residents(run_dir: str | os.PathLike) -> dict[str, Any]:
    """residents.json, or {} when it is missing or unreadable (a run killed before writing
    it): readers then fall back on config.json's ``residents`` and the seed."""
    try:
        data = _read_json(_run_folder(run_dir) / "residents.json", "residents.json")
    except RunFolderError:
        return {}
    return data if isinstance(data, dict) else {}


def read_metrics(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """metrics.json, or None while the run has not written it (it is written last).

    Raises:
        RunFolderError: no folder, or a metrics.json that is not a JSON object.
    """
    path = _run_folder(run_dir) / "metrics.json"
    if not path.exists():
        return None
    data = _read_json(path, "metrics.json")
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: not a JSON object")
    return data


def read_events(run_dir: str | os.PathLike, *, allow_partial: bool = False) -> EventLog:
    """The event log of events.jsonl (``EventLog.read_jsonl``).

    With ``allow_partial`` the log ends at the last complete day before a broken or
    truncated line (a crash), and ``partial_reason`` says where; without it such a line is
    an error.

    Raises:
        RunFolderError: no folder, no events.jsonl, a file that is not text, or (without
            ``allow_partial``) a broken line; the message names the file (and the line).
    """
    path = _run_folder(run_dir) / "events.jsonl"
    if not path.is_file():
        raise RunFolderError(f"{path}: missing; a run folder holds the event log "
                             "events.jsonl that `civa run` writes")
    try:
        return EventLog.read_jsonl(path, allow_partial=allow_partial)
    except UnicodeDecodeError as err:
        raise RunFolderError(f"{path}: not a text file ({err})") from None
    except ValueError as err:  # a broken line; read_jsonl names the file and the line
        raise RunFolderError(str(err)) from None
    except OverflowError as err:  # a number too large for its column (a corrupt line)
        raise RunFolderError(f"{path}: a value is out of range ({err})") from None
    except OSError as err:
        raise RunFolderError(f"{path}: cannot be read ({err.strerror or err})") from None


def event_line_error(run_dir: str | os.PathLike, match: Callable[[dict[str, Any]], str | None],
                     fallback: str) -> RunFolderError:
    """An error naming events.jsonl and the first of its lines that ``match`` finds wrong.

    ``match`` gets each line's JSON object in turn (lines that are not one are passed over)
    and returns what is wrong with it, or None. Without such a line the error says
    ``fallback``. For readers that found the log's content unusable after reading it.
    """
    path = Path(run_dir) / "events.jsonl"
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            wrong = match(record) if isinstance(record, dict) else None
            if wrong:
                return RunFolderError(f"{path}: line {lineno}: {wrong}")
    return RunFolderError(f"{path}: {fallback}")


def read_questionnaire(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The valid answers of questionnaire.jsonl (LLM residents' value questionnaire), [] when
    the run has none. A broken last line (a run killed while writing) is skipped.

    Raises:
        RunFolderError: a broken line before the last one (it names the file and line).
    """
    path = _run_folder(run_dir) / "questionnaire.jsonl"
    if not path.is_file():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for lineno, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if lineno == len(lines) and not line.endswith("\n"):
                break
            raise RunFolderError(f"{path}: line {lineno}: {err.msg}") from None
        if isinstance(row, dict) and row.get("outcome") != "fallback" and "scores" in row:
            rows.append(row)
    return rows


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a CIVA run folder (its config.json carries ``civa_version``)."""
    try:
        return "civa_version" in read_config(path)
    except RunFolderError:
        return False


def complete_metrics(path: str | os.PathLike) -> dict[str, Any] | None:
    """metrics.json of a finished run (``"status": "complete"``); None for any other folder.

    This is the one test of a finished run: metrics.json is written last, atomically.
    """
    try:
        metrics = read_metrics(path)
    except RunFolderError:
        return None
    if metrics is None or metrics.get("status") != STATUS_COMPLETE:
        return None
    return metrics


def is_complete_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a finished run (see ``complete_metrics``)."""
    return complete_metrics(path) is not None


# ---- preparing a run folder --------------------------------------------------------------------
# How the Python API names the settings these errors are about (the command line names its
# flags instead, see ``SettingError``).
OUT = {"out": "output folder"}
OVERWRITE = {"overwrite": "overwrite=True"}


def own_file_names() -> frozenset[str]:
    """The names of the files CIVA writes into a run folder (see ``PLOT_STEMS``)."""
    plots = (f"{stem}.{ext}" for stem in PLOT_STEMS for ext in PLOT_FORMATS)
    return frozenset((*RUN_FILES, *POLICY_FILES, *OTHER_FILES, *plots))


def is_own_file(path: Path, names: frozenset[str] | None = None) -> bool:
    """Whether ``path`` is a file CIVA writes into a run folder, or the temporary file of one
    (``atomic_open``'s ``.NAME.XXXXXXXX.tmp``, left behind by a killed process)."""
    names = own_file_names() if names is None else names
    if path.is_dir() and not path.is_symlink():
        return False
    name = path.name
    if name.startswith(".") and name.endswith(".tmp"):
        name = name[1:].rsplit(".", 2)[0]
    return name in names


def foreign_files(path: str | os.PathLike) -> list[str]:
    """The names in folder ``path`` that are not CIVA's own files (``is_own_file``), sorted."""
    names = own_file_names()
    return sorted(p.name for p in Path(path).iterdir() if not is_own_file(p, names))


def _listed(names: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def check_run_dir(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse a folder that cannot take a run; touches nothing.

    A folder can take a run when it is new or empty, or, with ``overwrite``, when it holds
    an earlier run and nothing but CIVA's own files (``is_own_file``): ``prepare_run_dir``
    removes those only, so a file of someone else's is never deleted.

    Raises:
        RunFolderError: ``path`` is a file, a non-empty folder that is not a CIVA run folder,
            an earlier run while ``overwrite`` is false, or an earlier run with files of
            someone else's in it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError("output {path} is a file, not a folder; choose another {out}",
                             OUT, {"path": path})
    if not path.is_dir() or not any(path.iterdir()):
        return
    foreign = foreign_files(path)
    if foreign and not is_run_dir(path):
        raise RunFolderError("output folder {path} holds something else (not a CIVA run "
                             "folder); choose an empty or new {out}", OUT, {"path": path})
    if not overwrite:
        raise RunFolderError("output folder {path} already holds a run; pass {overwrite} "
                             "to replace it or choose another {out}", {**OUT, **OVERWRITE},
                             {"path": path})
    if foreign:
        raise RunFolderError("output folder {path} holds an earlier run and files that are "
                             "not CIVA's ({names}); {overwrite} replaces only a run's own "
                             "files: move those away or choose another {out}",
                             {**OUT, **OVERWRITE}, {"path": path, "names": _listed(foreign)})


def prepare_run_dir(path: Path, overwrite: bool = False) -> Path:
    """Create ``path`` for a run, removing an earlier run's files there when ``overwrite``
    is set (CIVA's own files only: see ``check_run_dir``).

    Raises:
        RunFolderError: as ``check_run_dir``.
    """
    path = Path(path)
    check_run_dir(path, overwrite)
    if path.is_dir():
        clear_run_files(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_run_files(folder: Path) -> None:
    """Remove CIVA's own files (``is_own_file``) from ``folder``; leaves anything else."""
    names = own_file_names()
    for entry in Path(folder).iterdir():
        if is_own_file(entry, names):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


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
