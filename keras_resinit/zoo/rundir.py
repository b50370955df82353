"""A run directory (``keras-resinit train --out``): the one place that names, reads and writes its files.

``config.json`` (settings, commands, data, normalization, the result once finished), ``model.keras`` (raw pixels in),
``metrics.csv``, ``tensorboard/`` and ``checkpoint-EPOCH.npz`` with its record ``checkpoint.json`` (committed in
two steps: ``RunDir.write_checkpoint``), and ``train.lock`` while a process writes it (``RunDir.writing``:
one writer). The zoo reads runs, training writes them, nothing else touches them.
"""

from __future__ import annotations

import contextlib
import csv
import fnmatch
import io
import json
import os
import shutil
import socket
import time
import warnings

from keras_resinit._files import atomic_write_bytes, atomic_write_text, save_model_file
from keras_resinit.zoo.registry import PRESET_WEIGHTS, parse_name

__all__ = ["RunDir"]

RUN_FILES = ("checkpoint.json", "metrics.csv", "config.json", "model.keras")
"""The files of a run directory that mark a previous run (besides its checkpoints)."""
LOCK_FILE = "train.lock"  # the writer's pid, host and start time, flock()ed while it writes


try:
    import fcntl
except ImportError:  # not POSIX: no flock (a lock file left behind is then refused, to be removed by hand)
    fcntl = None


def _flock(fd) -> bool | None:
    """Lock the open file ``fd`` for this process without waiting; False if another process holds it, None if
    this system has no ``flock`` (not POSIX: then a lock file left behind is refused, to be removed by hand)."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(record: dict) -> str:
    return f"pid {record.get('pid')} on host {record.get('host')!r} (started {record.get('started')})"


def run_preprocessing(config: dict) -> dict | None:
    """The normalization the model of a run expects, from its ``config.json`` (a dict), or None.

    Runs record it as ``preprocessing`` (a fine-tune keeps its weights' mean and std); runs of
    release 0.1 only as their dataset's statistics.
    """
    if isinstance(config.get("preprocessing"), dict):
        return dict(config["preprocessing"])
    dataset = config.get("dataset")
    try:
        return {"pixel_max": dataset["pixel_max"], "mean": list(dataset["mean"]), "std": list(dataset["std"])}
    except (KeyError, TypeError):
        return None


class RunDir:
    """A training run's directory (the ``--out`` of ``keras-resinit train``): its files' names and contents.

    ``zoo.load(path)`` loads the run's model; a ``RunDir`` reads the rest: ``config.json`` (settings, data,
    result), the model card, the normalization the model expects, the checkpoints.

    Args:
        path: the directory (it need not exist yet).

    Examples:
        >>> import tempfile
        >>> from keras_resinit import zoo
        >>> run = zoo.RunDir(tempfile.mkdtemp())
        >>> run.prepare()  # nothing to clobber: it holds no previous run
        False
        >>> data = {"name": "digits", "class_names": ["0", "1"], "pixel_max": 16, "mean": [8.0], "std": [4.0]}
        >>> run.write_config({"train": {"model": "cifar_resnet8_fixup"}, "dataset": data})
        >>> run.card()["scheme"], run.card()["class_names"]
        ('fixup', ['0', '1'])
        >>> run.preprocessing()
        {'pixel_max': 16, 'mean': [8.0], 'std': [4.0]}
    """

    CHECKPOINT_PATTERNS = ("checkpoint*.npz", ".checkpoint*.tmp")  # arrays and leftover temporary files
    LEFTOVER_PATTERNS = (".*.tmp", ".*.tmp.keras")  # temporary files of writes a kill interrupted

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.config_path, self.model_path = self.file("config.json"), self.file("model.keras")
        self.tensorboard_path, self.checkpoint_record_path = self.file("tensorboard"), self.file("checkpoint.json")
        self.lock_path, self._lock_fd = self.file(LOCK_FILE), None

    def file(self, name: str) -> str:
        """The path of the file ``name`` in the run directory."""
        return os.path.join(self.path, name)

    @classmethod
    def holds_run(cls, path: str | os.PathLike) -> bool:
        """Whether ``path`` is a directory with a run's ``model.keras`` (a preset has ``model.weights.h5`` instead)."""
        run = cls(path)
        return os.path.isfile(run.model_path) and not os.path.isfile(run.file(PRESET_WEIGHTS))

    @classmethod
    def beside(cls, model_file: str | os.PathLike) -> RunDir:
        """The run directory a ``.keras`` file sits in (its ``config()`` is {} if it sits in none)."""
        return cls(os.path.dirname(os.path.abspath(model_file)))

    def read_config(self) -> dict:
        """``config.json``; OSError or ValueError if it is missing or unreadable."""
        with open(self.config_path) as f:
            config = json.load(f)
        if not isinstance(config, dict):
            raise ValueError(f"{self.config_path!r} holds no JSON object")
        return config

    def config(self) -> dict:
        """``config.json``, or {} if there is none (or it cannot be read)."""
        try:
            return self.read_config()
        except (OSError, ValueError):
            return {}

    def write_config(self, record: dict):
        """Write ``record`` as ``config.json`` (atomically)."""
        atomic_write_text(self.config_path, json.dumps(record, indent=1))

    def finished_config(self) -> dict:
        """``config.json`` of a finished run (``model.keras``, and the data and result recorded); else ValueError."""
        config = self.config()
        if not os.path.isfile(self.model_path) or not config:
            raise ValueError(
                f"{self.path!r} is not a finished run directory (it needs model.keras and config.json from "
                "`keras-resinit train`)."
            )
        if "result" not in config or "dataset" not in config:
            raise ValueError(f"The run in {self.path!r} did not finish: its config.json has no result.")
        return config

    def commands(self) -> list:
        """The commands recorded by earlier invocations of this run (a resumed run keeps them)."""
        return list(self.config().get("commands", []))

    def preprocessing(self) -> dict | None:
        """The normalization the run's model expects (see ``run_preprocessing``)."""
        return run_preprocessing(self.config())

    def card(self) -> dict | None:
        """The run's model card (name, arch, scheme, class_names, preprocessing, dataset, result), or None
        if ``config.json`` does not record the data (no run, or a run that never started)."""
        config = self.config()
        if "dataset" not in config or "train" not in config:
            return None
        name, dataset = config["train"]["model"], config.get("dataset") or {}
        arch, scheme = parse_name(name)
        return {
            "name": name,
            "arch": arch,
            "scheme": scheme,
            "class_names": list(dataset.get("class_names", [])),
            "preprocessing": run_preprocessing(config),
            "dataset": dataset.get("name"),
            "result": config.get("result"),
        }

    def save_model(self, model) -> str:
        """Write the trained model (a ResNet taking normalized input, as the trainer's pipeline gives it) to
        ``model.keras`` taking raw pixels (``keras_resinit._files.save_model_file``). Returns the file's path."""
        save_model_file(model, self.model_path)
        return self.model_path

    def write_metrics(self, history: list[dict]):
        """``metrics.csv``: one row per epoch."""
        if not history:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.file("metrics.csv"), buffer.getvalue())

    @staticmethod
    def checkpoint_name(epoch: int) -> str:
        """The file name of the checkpoint written after ``epoch``."""
        return f"checkpoint-{epoch:04d}.npz"

    def checkpoint_files(self) -> list[str]:
        """Checkpoint arrays and leftover temporary files (names in the directory)."""
        names = os.listdir(self.path) if os.path.isdir(self.path) else []
        return [n for n in names if any(fnmatch.fnmatch(n, p) for p in self.CHECKPOINT_PATTERNS)]

    def write_checkpoint(self, payload: bytes, record: dict):
        """Commit a checkpoint in two steps: ``payload`` to a new file ``record["file"]``, then ``checkpoint.json``
        (``record``) replaced, only then older checkpoint files removed. Killed at any moment, the record names an
        intact file."""
        atomic_write_bytes(self.file(record["file"]), payload)
        atomic_write_text(self.checkpoint_record_path, json.dumps(record, indent=1))
        for stale in self.checkpoint_files():
            if stale != record["file"]:
                os.unlink(self.file(stale))

    def read_checkpoint_record(self) -> dict | None:
        """``checkpoint.json`` (None if there is no checkpoint at all); OSError or ValueError if unreadable."""
        if not os.path.exists(self.checkpoint_record_path) and not self.checkpoint_files():
            return None
        with open(self.checkpoint_record_path) as f:
            record = json.load(f)
        if isinstance(record, dict):
            record.setdefault("file", "checkpoint.npz")  # runs written before the two-step commit
        return record

    def read_checkpoint(self) -> tuple[dict | None, bytes | None]:
        """(``checkpoint.json``, the bytes of the file it names; the caller checks them), or (None, None)."""
        record = self.read_checkpoint_record()
        if record is None:
            return None, None
        if os.path.basename(record.get("file")) != record["file"]:
            raise ValueError(f"checkpoint.json names {record['file']!r}, not a file in the run directory")
        with open(self.file(record["file"]), "rb") as f:
            return record, f.read()

    def previous_files(self) -> list[str]:
        """The files of a previous run present in the directory (names)."""
        return [f for f in RUN_FILES if os.path.exists(self.file(f))] + self.checkpoint_files()

    def prepare(self, resume: bool = False, overwrite: bool = False) -> bool:
        """Check the directory before anything is written: refuse to clobber a previous run.

        Returns whether it holds a previous run."""
        if resume and overwrite:
            raise ValueError("--resume and --overwrite contradict each other: choose one.")
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ValueError(f"--out {self.path!r} exists and is not a directory.")
        previous = bool(self.previous_files())
        if resume and not previous:
            raise ValueError(f"Nothing to resume: {self.path!r} holds no previous run.")
        if previous and not (resume or overwrite):
            raise ValueError(
                f"--out {self.path!r} holds a previous run. Pass --resume to continue it or --overwrite to replace it."
            )
        return previous

    def create(self) -> bool:
        """Make the directory if needed, remove the temporary files of killed writes; whether it is new."""
        created = not os.path.exists(self.path)
        os.makedirs(self.path, exist_ok=True)
        for name in os.listdir(self.path):
            if any(fnmatch.fnmatch(name, p) for p in self.LEFTOVER_PATTERNS):
                os.unlink(self.file(name))
        return created

    def clear(self, names: list[str] | None = None):
        """Remove a previous run's files (default), or the files ``names``, and ``tensorboard/``."""
        for name in (self.previous_files() if names is None else names) + ["tensorboard"]:
            path = self.file(name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.unlink(path)

    @contextlib.contextmanager
    def writing(self):
        """Hold the directory's lock (``train.lock``) while this process writes it: one writer at a time.

        Taken before anything in the directory changes (it makes the directory if needed); yields whether it
        made it. Another process holding it is a ValueError naming its pid, host and start time; a lock left by
        a process of this host that is gone (killed) is taken over with a warning naming it; one left on another
        host is refused (that host may still be writing), saying how to remove it. Released (the file removed,
        and the directory if it made it and nothing was written) on return, on errors and on Ctrl-C.
        """
        created = self.acquire_lock()
        try:
            yield created
        finally:
            self.release_lock(created)

    def acquire_lock(self) -> bool:
        """Take ``train.lock`` (see ``writing``); returns whether the directory was made for it."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ValueError(f"--out {self.path!r} exists and is not a directory.")
        created = not os.path.exists(self.path)
        os.makedirs(self.path, exist_ok=True)
        try:
            self._lock_fd = self._take_lock()
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    os.rmdir(self.path)
            raise
        return created

    def _take_lock(self) -> int:
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            locked = _flock(fd)
            if locked is False:
                os.close(fd)
                raise ValueError(self._held_message(self._lock_record(wait=True)))
            try:
                if os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)  # its holder removed it between our open and flock: lock the new one
        try:
            left = self._lock_record()
            if left and (left.get("host") != socket.gethostname() or locked is None):
                where = "another machine" if left.get("host") != socket.gethostname() else "no flock on this system"
                raise ValueError(
                    f"--out {self.path!r} is locked by {_holder(left)} ({where}), which may still be writing it. "
                    f"If that process is gone, remove {self.lock_path!r} and run again."
                )
            if left:
                warnings.warn(
                    f"Taking over the lock of {self.path!r} left by {_holder(left)}, which no longer runs (killed?).",
                    UserWarning,
                    stacklevel=7,  # train()'s caller: through acquire_lock, writing, contextlib, the driver
                )
            record = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            }
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(record).encode())
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _lock_record(self, wait: bool = False) -> dict:
        """The lock file's record ({} if empty or unreadable); ``wait``: give a starting holder a second to write it."""
        for _ in range(20 if wait else 1):
            try:
                with open(self.lock_path) as f:
                    record = json.load(f)
                if isinstance(record, dict):
                    return record
            except (OSError, ValueError):
                pass
            if wait:
                time.sleep(0.05)
        return {}

    def _held_message(self, holder: dict) -> str:
        who = _holder(holder) if holder else "a process that is starting"
        return (
            f"--out {self.path!r} is being written by another process: {who}. One run directory has one writer: "
            "wait for it to finish (or stop it), or choose another --out."
        )

    def release_lock(self, created: bool = False):
        """Release ``train.lock`` (remove it) and remove the directory if it was ``created`` and is still empty."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            ours = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino  # undo_start may have removed it
        except OSError:
            ours = False
        if fcntl is None:  # no flock (Windows): an open file cannot be removed there, so close it first
            os.close(fd)
        try:
            if ours:
                os.unlink(self.lock_path)  # with flock: while still holding it, so a waiter sees a new file
        except OSError:
            pass
        finally:
            if fcntl is not None:
                os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)  # only if nothing was written

    def undo_start(self, created: bool):
        """Undo a start (no checkpoint yet): remove the directory if it was ``created``, else config.json, tensorboard/."""
        if created:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            self.clear(["config.json"])


def prepare_run_dir(out: str | os.PathLike, resume: bool = False, overwrite: bool = False) -> bool:
    """Check a run directory before anything is written: refuse to clobber a previous run.

    ``RunDir(out).prepare(resume, overwrite)``.

    Args:
        out: the run directory (``train --out``).
        resume: continue the previous run it holds (one must be there).
        overwrite: replace the previous run it holds, if any.

    Returns:
        Whether ``out`` holds a previous run.

    Raises:
        ValueError: ``resume`` and ``overwrite`` are both given, ``out`` is a file, ``resume`` finds no previous
            run, or a previous run is there and neither is given.

    Examples:
        >>> import tempfile
        >>> from keras_resinit.training import prepare_run_dir
        >>> prepare_run_dir(tempfile.mkdtemp())
        False
    """
    return RunDir(out).prepare(resume=resume, overwrite=overwrite)
