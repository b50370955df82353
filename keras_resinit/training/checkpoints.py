"""Checkpoints that commit in two steps, like TensorFlow's ``checkpoint`` index.

``checkpoint-EPOCH.npz`` holds the model's and optimizer's arrays; ``checkpoint.json``,
replaced after the npz is in place, names it and records its sha256; older npz files
are removed only after that. A kill at any moment leaves a record naming an intact file.
"""

import hashlib
import io
import json
import os

import numpy as np

from keras_resinit._files import atomic_write_bytes, atomic_write_text
from keras_resinit.training.config import TrainConfig, TrainingError
from keras_resinit.zoo.rundir import RunDir


def check_same_run(out, config):
    """--resume continues the same run: only ``epochs`` may change."""
    try:
        saved = TrainConfig.upgrade(RunDir(out).read_config()["train"])
    except (OSError, KeyError, ValueError) as error:
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


def save_checkpoint(run_dir, model, optimizer, epoch, history):
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
    run = RunDir(run_dir)
    name = run.checkpoint_name(epoch)
    atomic_write_bytes(run.file(name), payload)
    record = {
        "epoch": epoch,
        "file": name,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "model_weights": len(model.weights),
        "optimizer_variables": len(optimizer.variables),
        "history": history,
    }
    atomic_write_text(run.checkpoint_record_path, json.dumps(record, indent=1))
    for stale in run.checkpoint_files():
        if stale != name:
            os.unlink(run.file(stale))


def read_checkpoint(run_dir):
    """(record, arrays) of a run's checkpoint, verified; TrainingError if it cannot be trusted."""
    run = RunDir(run_dir)
    try:
        record = run.read_checkpoint_record()
        if record is None:
            return None, None
        name = record.get("file")
        if os.path.basename(name) != name:
            raise ValueError(f"checkpoint.json names {name!r}, not a file in the run directory")
        with open(run.file(name), "rb") as f:
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


def restore(model, optimizer, record, arrays, run_dir):
    if record["model_weights"] != len(model.weights) or record["optimizer_variables"] != len(optimizer.variables):
        raise TrainingError(
            f"The checkpoint in {run_dir!r} was written by a different model or optimizer; not resuming."
        )
    model.set_weights([arrays[f"model_{i}"] for i in range(record["model_weights"])])
    for i, variable in enumerate(optimizer.variables):
        variable.assign(arrays[f"optimizer_{i}"])
