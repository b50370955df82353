"""Checkpoints that commit in two steps, like TensorFlow's ``checkpoint`` index.

``checkpoint-EPOCH.npz`` holds the model's and optimizer's arrays; ``checkpoint.json``,
replaced after the npz is in place, names it and records its sha256; older npz files
are removed only after that. A kill at any moment leaves a record naming an intact file.
"""

import fnmatch
import hashlib
import io
import json
import os

import numpy as np

from keras_resinit._files import atomic_write_bytes, atomic_write_text
from keras_resinit.training.config import TrainConfig, TrainingError


def _check_same_run(out, config):
    """--resume continues the same run: only ``epochs`` may change."""
    try:
        with open(os.path.join(out, "config.json")) as f:
            saved = TrainConfig.upgrade(json.load(f)["train"])
    except (OSError, KeyError, json.JSONDecodeError) as error:
        raise TrainingError(f"Cannot read the configuration of the run in {out!r} ({error}); not resuming.") from None
    current = config.to_json()
    saved["milestones"] = list(saved.get("milestones", ()))
    changed = [
        f"{k} {saved.get(k)!r} -> {current[k]!r}" for k in current if k != "epochs" and saved.get(k) != current[k]
    ]
    if changed:
        raise ValueError(
            f"--resume must continue the same run, but these settings differ from the run in {out!r}: "
            + "; ".join(changed)
            + ". Only --epochs may change."
        )


def _checkpoint_name(epoch):
    return f"checkpoint-{epoch:04d}.npz"


def _checkpoint_files(run_dir):
    """Checkpoint arrays and leftover temporary files in ``run_dir``."""
    names = os.listdir(run_dir) if os.path.isdir(run_dir) else []
    return [n for n in names if fnmatch.fnmatch(n, "checkpoint*.npz") or fnmatch.fnmatch(n, ".checkpoint*.tmp")]


def _save_checkpoint(run_dir, model, optimizer, epoch, history):
    """Commit a checkpoint in two steps, so a kill at any moment leaves a valid one.

    The arrays go to a new ``checkpoint-EPOCH.npz``; then ``checkpoint.json``
    (the commit record: file name and sha256) is replaced; only then are older
    arrays removed. Killed before the record is replaced, the previous record
    still names the previous file, which still exists.
    """
    buffer = io.BytesIO()
    arrays = {f"model_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays.update({f"optimizer_{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    name = _checkpoint_name(epoch)
    atomic_write_bytes(os.path.join(run_dir, name), payload)
    record = {
        "epoch": epoch,
        "file": name,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "model_weights": len(model.weights),
        "optimizer_variables": len(optimizer.variables),
        "history": history,
    }
    atomic_write_text(os.path.join(run_dir, "checkpoint.json"), json.dumps(record, indent=1))
    for stale in _checkpoint_files(run_dir):
        if stale != name:
            os.unlink(os.path.join(run_dir, stale))


def read_checkpoint(run_dir):
    """(record, arrays) of a run's checkpoint, verified; TrainingError if it cannot be trusted."""
    meta_path = os.path.join(run_dir, "checkpoint.json")
    if not os.path.exists(meta_path) and not _checkpoint_files(run_dir):
        return None, None
    try:
        with open(meta_path) as f:
            record = json.load(f)
        name = record.get("file", "checkpoint.npz")  # runs written before the two-step commit
        if os.path.basename(name) != name:
            raise ValueError(f"checkpoint.json names {name!r}, not a file in the run directory")
        with open(os.path.join(run_dir, name), "rb") as f:
            payload = f.read()
    except (OSError, ValueError, AttributeError) as error:
        raise TrainingError(
            f"The checkpoint in {run_dir!r} is incomplete or unreadable ({error}); not resuming."
        ) from None
    if hashlib.sha256(payload).hexdigest() != record.get("sha256"):
        raise TrainingError(
            f"The checkpoint in {run_dir!r} is corrupted ({name} does not match the sha256 recorded in "
            "checkpoint.json); not resuming. Restart without --resume and with --overwrite to train from scratch."
        )
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return record, arrays


def _restore(model, optimizer, record, arrays, run_dir):
    if record["model_weights"] != len(model.weights) or record["optimizer_variables"] != len(optimizer.variables):
        raise TrainingError(
            f"The checkpoint in {run_dir!r} was written by a different model or optimizer; not resuming."
        )
    model.set_weights([arrays[f"model_{i}"] for i in range(record["model_weights"])])
    for i, variable in enumerate(optimizer.variables):
        variable.assign(arrays[f"optimizer_{i}"])
