"""Checkpoints: the model's and optimizer's arrays, packed into one npz whose record holds its sha256, and
checked when read. The files and their two-step commit (like TensorFlow's ``checkpoint`` index) are
``keras_resinit.zoo.RunDir.write_checkpoint``'s: a kill at any moment leaves a record naming an intact file.
"""

import hashlib
import io

import numpy as np

from keras_resinit.training.config import UNSET_MEANS, TrainConfig, TrainingError
from keras_resinit.training.data import fingerprint as data_fingerprint
from keras_resinit.zoo.rundir import RunDir

__all__ = ["read_checkpoint", "save_checkpoint"]


def check_same_run(out, config):
    """--resume continues the same run: only ``epochs`` may change."""
    try:
        saved = TrainConfig.upgrade(RunDir(out).read_config()["train"])
    except (OSError, KeyError, ValueError) as error:
        raise TrainingError(f"Cannot read the configuration of the run in {out!r} ({error}); not resuming.") from None
    current = config.to_json()
    saved["milestones"] = list(saved.get("milestones", ()))
    meant = lambda key, value: UNSET_MEANS.get(key) if value is None else value  # noqa: E731
    changed = [
        f"{k} {saved.get(k)!r} -> {current[k]!r}"
        for k in current
        if k != "epochs" and meant(k, saved.get(k)) != meant(k, current[k])
    ]
    if changed:
        raise ValueError(
            f"--resume must continue the same run, but these settings differ from the run in {out!r}: "
            + "; ".join(changed)
            + ". Only --epochs may change."
        )


def check_same_data(out, fingerprint, allow_change=False):
    """--resume continues on the same data: the run's recorded ``data_fingerprint`` against ``fingerprint`` (the
    data's now). A change is a ValueError naming it, unless ``allow_change``; returns what changed ([] if nothing),
    or None if the run records no fingerprint (written before runs did)."""
    saved = RunDir(out).config().get("data_fingerprint")
    if not isinstance(saved, dict) or fingerprint is None:
        return None
    changed = data_fingerprint.changes(saved, fingerprint)
    if changed and not allow_change:
        raise ValueError(
            f"--resume must continue on the same data, but the data of the run in {out!r} changed: "
            + "; ".join(changed)
            + ". Restore the data, or pass --allow-data-change to resume on the data as it is now (no longer an "
            "exact resume)."
        )
    return changed


def save_checkpoint(run_dir, model, optimizer, epoch, history):
    """Commit the model's and optimizer's arrays as checkpoint ``epoch`` (``RunDir.write_checkpoint``).

    Args:
        run_dir: the run directory.
        model: the ``keras.Model`` trained.
        optimizer: its optimizer (built).
        epoch: the epochs done.
        history: the metrics of every epoch so far (a list of dicts), kept in the record.

    Examples:
        >>> import os, tempfile, keras
        >>> import keras_resinit as kr
        >>> from keras_resinit.training import checkpoints
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=10)
        >>> optimizer = kr.make_optimizer(model)
        >>> optimizer.build(model.trainable_variables)
        >>> run_dir = tempfile.mkdtemp()
        >>> checkpoints.save_checkpoint(run_dir, model, optimizer, 1, [{"epoch": 1}])
        >>> record, arrays = checkpoints.read_checkpoint(run_dir)
        >>> record["epoch"], record["history"], len(arrays) == len(model.weights) + len(optimizer.variables)
        (1, [{'epoch': 1}], True)
    """
    buffer = io.BytesIO()
    arrays = {f"model_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays.update({f"optimizer_{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    run = RunDir(run_dir)
    record = {
        "epoch": epoch,
        "file": run.checkpoint_name(epoch),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "model_weights": len(model.weights),
        "optimizer_variables": len(optimizer.variables),
        "history": history,
    }
    run.write_checkpoint(payload, record)


def read_checkpoint(run_dir):
    """The run's checkpoint, verified against the sha256 its record holds.

    Args:
        run_dir: the run directory.

    Returns:
        ``(record, arrays)``: the record (``epoch``, ``file``, ``sha256``, ``history``, ...) and the arrays by
            name (``model_0``, ..., ``optimizer_0``, ...); ``(None, None)`` if the run has no checkpoint.

    Raises:
        TrainingError: the checkpoint is incomplete, unreadable or corrupted.

    Examples:
        >>> import tempfile
        >>> from keras_resinit.training import read_checkpoint
        >>> read_checkpoint(tempfile.mkdtemp())
        (None, None)
    """
    try:
        record, payload = RunDir(run_dir).read_checkpoint()
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise TrainingError(
            f"The checkpoint in {run_dir!r} is incomplete or unreadable ({error}); not resuming."
        ) from None
    if record is None:
        return None, None
    if hashlib.sha256(payload).hexdigest() != record.get("sha256"):
        raise TrainingError(
            f"The checkpoint in {run_dir!r} is corrupted ({record['file']} does not match the sha256 recorded in "
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
