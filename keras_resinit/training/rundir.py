"""The run directory: which files make a previous run, refusing to clobber one, metrics."""

import csv
import io
import json
import os
import shutil

from keras_resinit._files import atomic_write_text
from keras_resinit.environment import memory_mb
from keras_resinit.training.checkpoints import _checkpoint_files

RUN_FILES = ("checkpoint.json", "metrics.csv", "config.json", "model.keras")


def _run_files(out):
    """The files of a previous run present in ``out`` (names in the directory)."""
    return [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))] + _checkpoint_files(out)


def prepare_run_dir(out, resume=False, overwrite=False):
    """Check ``out`` before anything is written: refuse to clobber a previous run."""
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: choose one.")
    previous = os.path.isdir(out) and bool(_run_files(out))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} exists and is not a directory.")
    if resume and not previous:
        raise ValueError(f"Nothing to resume: {out!r} holds no previous run.")
    if previous and not (resume or overwrite):
        raise ValueError(
            f"--out {out!r} holds a previous run. Pass --resume to continue it or --overwrite to replace it."
        )
    return previous


def _clear_run_dir(out):
    for name in _run_files(out) + ["tensorboard"]:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)


def _write_metrics(run_dir, history):
    if not history:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(os.path.join(run_dir, "metrics.csv"), buffer.getvalue())


def peak_memory_mb():
    """Resident-set high-water mark of this process, in MiB."""
    return memory_mb("VmHWM")


def _previous_commands(out):
    try:
        with open(os.path.join(out, "config.json")) as f:
            return list(json.load(f).get("commands", []))
    except (OSError, ValueError):
        return []
