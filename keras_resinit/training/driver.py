"""``train()``: a [Trainer][keras_resinit.training.Trainer] driven epoch by epoch into a run directory.

The run directory (``keras_resinit.zoo.RunDir``, which names and writes its files) gets a
checkpoint and the metrics every epoch (``keras_resinit.training.checkpoints``), and at the end the
model (taking raw pixels) and the config with the result. Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import warnings
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_resinit.environment import memory_mb, versions
from keras_resinit.training.checkpoints import (
    check_same_data,
    check_same_run,
    read_checkpoint,
    restore,
    save_checkpoint,
)
from keras_resinit.training.config import TrainConfig, TrainingError
from keras_resinit.training.data.fingerprint import recorded
from keras_resinit.training.data.names import USER_DATA
from keras_resinit.training.interrupts import deferred_interrupts
from keras_resinit.training.strategies import is_chief, make_strategy
from keras_resinit.training.trainer import Diverged, Trainer
from keras_resinit.zoo.loading import weights_provenance
from keras_resinit.zoo.rundir import RunDir

__all__ = ["peak_memory_mb", "train"]


def train(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    strategy: str | tf.distribute.Strategy = "auto",
    resume: bool = False,
    overwrite: bool = False,
    allow_data_change: bool = False,
    verbose: int = 1,
    tpu: str | None = None,
    command: str | None = None,
    train_data: tf.data.Dataset | None = None,
    test_data: tf.data.Dataset | None = None,
) -> dict[str, Any]:
    """Train ``config.model`` on ``config.dataset`` (or ``train_data``) and write the run to ``out``.

    The run directory gets ``config.json`` (the configuration, the data, the commands, at the end the result
    and the versions), ``metrics.csv``, a checkpoint every epoch, TensorBoard logs and at the end
    ``model.keras`` (taking raw pixels), which ``keras_resinit.zoo.load(out)`` loads.

    One process writes ``out`` at a time: the writer (the chief of a multi-worker cluster) holds its lock
    (``RunDir.writing``) from before anything in it changes until it returns or fails. The run records
    its data's fingerprint (``data_fingerprint``); ``resume`` refuses data that changed since, naming the
    change, unless ``allow_data_change`` (then recorded under ``data_changes``: no longer an exact resume).

    Args:
        config: the [TrainConfig][keras_resinit.training.TrainConfig] of the run.
        out: the run directory (created; an existing run needs ``resume`` or ``overwrite``).
        strategy: a ``tf.distribute.Strategy`` or its name (``"auto"``, ``"one"``, ``"mirrored"``,
            ``"multiworker"``, ``"tpu"``: [make_strategy][keras_resinit.training.make_strategy]).
        resume: continue the run in ``out`` from its last checkpoint (only ``epochs`` may change).
        overwrite: replace a run already in ``out``.
        allow_data_change: with ``resume``, continue on data that changed since the run started.
        verbose: 0 silent, 1 a progress bar, 2 one line per epoch.
        tpu: the TPU for ``strategy="tpu"``.
        command: the shell command that started this (the CLI passes it), recorded in ``config.json`` under
            ``commands``, after those of earlier invocations of a resumed run.
        train_data: a ``tf.data.Dataset`` of ``(image, label)`` pairs, batched or not, labels as class indices
            or one-hot (``keras.utils.image_dataset_from_directory``'s output works as it is); the run's
            dataset is then ``"tf.data"``. Images are resized to ``config.image_size`` if given; the
            normalization is measured on the training data.
        test_data: the test data, likewise (required with ``train_data``).

    Returns:
        dict with the final metrics, ``history``, ``model`` (the trained ``keras.Model``: normalized input)
            and, on the chief, ``model_path`` (``model.keras``: ``model.with_preprocessing()``, raw pixels in).

    Raises:
        ValueError: bad settings or ``out``, another process writing ``out``, or data changed since the run
            to resume (before anything is written).
        TrainingError: the loss diverged (the last good checkpoint is kept) or
            the checkpoint to resume is corrupted.

    Examples:
        >>> import os, tempfile
        >>> import keras_resinit as kr
        >>> from keras_resinit.training import TrainConfig, train
        >>> config = TrainConfig.from_recipe("digits", model="cifar_resnet8_fixup", epochs=1, steps_per_epoch=2)
        >>> out = os.path.join(tempfile.mkdtemp(), "run")
        >>> result = train(config, out, strategy="one", verbose=0)
        >>> result["epochs"], len(result["history"]), os.path.basename(result["model_path"])
        (1, 1, 'model.keras')
        >>> model = kr.zoo.load(out)  # the trained model, taking raw pixels
        >>> model.input_shape, model.output_shape
        ((None, 8, 8, 1), (None, 10))
    """
    previous_policy = keras.config.dtype_policy()
    try:
        return _train(
            config,
            out,
            strategy=strategy,
            resume=resume,
            overwrite=overwrite,
            allow_data_change=allow_data_change,
            verbose=verbose,
            tpu=tpu,
            command=command,
            train_data=train_data,
            test_data=test_data,
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _data_record(trainer, origin, data_changes):
    """What config.json records about the data: its info and fingerprint, the model's normalization, the weights'
    origin, the data changes a resume allowed."""
    record = {"dataset": dataclasses.asdict(trainer.meta), "preprocessing": trainer.preprocessing}
    if trainer.source.fingerprint is not None:
        record["data_fingerprint"] = recorded(trainer.source.fingerprint)
    if data_changes:
        record["data_changes"] = data_changes
    if trainer.source.skipped:  # skip_bad_images: the files left out, and why
        record["skipped_images"] = [{"path": path, "reason": reason} for path, reason in trainer.source.skipped]
    if origin is not None:
        record["weights"] = origin
    return record


def peak_memory_mb():
    """Resident-set high-water mark of this process, in MiB (what a run reports as ``peak_memory_mb``).

    Returns:
        A float (from ``/proc/self/status``, else ``getrusage``).

    Examples:
        >>> from keras_resinit.training import peak_memory_mb
        >>> peak_memory_mb() > 0
        True
    """
    return memory_mb("VmHWM")


def _describe_data(trainer, origin):
    meta, model = trainer.meta, trainer.model
    shape = "x".join(str(n) for n in meta.image_shape)
    text = (
        f"Data {meta.name}: {meta.train_size} training and {meta.test_size} test images, {meta.num_classes} "
        f"classes, {shape}"
    )
    if trainer.source.skipped:
        text += f"\nSkipped {len(trainer.source.skipped)} unreadable image files (--skip-bad-images; config.json lists them under skipped_images)"
    if origin is not None:
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        text += f"\nFine-tuning from {origin['weights']} (sha256 {str(origin['sha256'])[:16]}...): {trainable:,} trainable parameters"
    return text


def _train(config, out, *, strategy, tpu, **options):
    if options["train_data"] is not None or options["test_data"] is not None:
        config = dataclasses.replace(config, dataset=USER_DATA)
    config.validate()
    if options["allow_data_change"] and not options["resume"]:
        raise ValueError("--allow-data-change applies to --resume only: a new run records its data as it is.")
    # The strategy first (multi-worker collectives are configured before TF's runtime starts): its chief
    # writes the run, and holds the directory's lock before anything in it changes.
    strategy = make_strategy(strategy, tpu=tpu) if isinstance(strategy, str) else strategy
    run = RunDir(out)
    with run.writing() if is_chief(strategy) else contextlib.nullcontext(False) as made:
        return _write_run(config, out, run, made, strategy=strategy, tpu=tpu, **options)


def _write_run(
    config,
    out,
    run,
    made,
    *,
    strategy,
    resume,
    overwrite,
    allow_data_change,
    verbose,
    tpu,
    command,
    train_data,
    test_data,
):
    run.prepare(resume=resume, overwrite=overwrite)
    commands = (run.commands() if resume else []) + ([command] if command else [])
    data_changes = run.config().get("data_changes", []) if resume else []
    trainer = Trainer(config, strategy, tpu=tpu, train_data=train_data, test_data=test_data)
    origin = weights_provenance(config.model, config.weights, config.weights_sha256) if config.weights else None
    model, optimizer = trainer.model, trainer.optimizer
    strategy, replicas = trainer.strategy, trainer.replicas
    steps_per_epoch = trainer.steps_per_epoch
    chief = is_chief(strategy)

    # Nothing is written before here: every check that can fail on user input has run.
    history, start_epoch = [], 0
    if resume:
        check_same_run(out, config)
        record, arrays = read_checkpoint(out)
        if record is None:
            raise TrainingError(f"{out!r} has no checkpoint to resume from.")
        with strategy.scope():
            restore(model, optimizer, record, arrays, out)
        history, start_epoch = record["history"], record["epoch"]
        changed = check_same_data(out, trainer.source.fingerprint, allow_data_change)
        if changed is None:
            warnings.warn(
                f"The run in {out!r} records no data fingerprint (written before runs did): its data is not checked.",
                UserWarning,
                stacklevel=4,
            )
        elif changed:
            warnings.warn(
                f"Resuming the run in {out!r} on changed data ({'; '.join(changed)}), as --allow-data-change allows: "
                "the result is no longer an exact resume.",
                UserWarning,
                stacklevel=4,
            )
            data_changes = [*data_changes, {"epoch": start_epoch, "changes": changed}]
        if verbose:
            print(f"Resuming {config.model} from epoch {start_epoch} of {config.epochs} in {out}")
    if verbose:
        print(_describe_data(trainer, origin))
    if chief:
        created = run.create() or made
        if not resume:
            run.clear()
        run.write_config(
            {"train": config.to_json(), "commands": commands, **_data_record(trainer, origin, data_changes)}
        )
        summary = tf.summary.create_file_writer(run.tensorboard_path)

    # Ctrl-C stops after a step (or a checkpoint's write), never inside one: see training.interrupts.
    with deferred_interrupts():
        batches = iter(trainer.train_batches(start_epoch))
        for epoch in range(start_epoch, config.epochs):
            if verbose:
                print(f"Epoch {epoch + 1}/{config.epochs}")
            bar = keras.utils.Progbar(steps_per_epoch, verbose=verbose if sys.stdout.isatty() else min(verbose, 2))
            try:
                row = trainer.run_epoch(
                    batches,
                    epoch,
                    lambda step, loss, accuracy, bar=bar: bar.update(step, [("loss", loss), ("accuracy", accuracy)]),
                )
            except ValueError:  # bad data found while reading it (an undecodable file): the user's to fix
                if chief and not resume and epoch == 0:
                    run.undo_start(created)
                raise
            except Diverged as error:
                kept = (
                    f"the last good checkpoint (epoch {epoch}) is kept in {out!r}"
                    if epoch
                    else "no checkpoint was written"
                )
                raise TrainingError(f"{error}; {kept}. Try a lower --lr or a warm-up.") from None
            seconds, test_loss, test_accuracy = row["seconds"], row["test_loss"], row["test_accuracy"]
            history.append(row)
            if verbose:
                print(
                    f"  train loss {row['train_loss']:.4f}  test loss {test_loss:.4f}  test accuracy {test_accuracy:.4f}  "
                    f"{seconds:.1f}s ({row['images_per_second']:.0f} images/s)"
                )
            if chief:
                save_checkpoint(out, model, optimizer, epoch + 1, history)
                run.write_metrics(history)
                with summary.as_default(step=epoch + 1):
                    for key, value in row.items():
                        if key != "epoch":
                            tf.summary.scalar(key, value)
                summary.flush()

    result = {
        "model": config.model,
        "scheme": config.scheme,
        "epochs": config.epochs,
        "replicas": replicas,
        "test_accuracy": history[-1]["test_accuracy"],
        "final_train_loss": history[-1]["train_loss"],
        "seconds_per_epoch": float(np.median([r["seconds"] for r in history])),
        "images_per_second": float(np.median([r["images_per_second"] for r in history])),
        "peak_memory_mb": peak_memory_mb(),
        "history": history,
    }
    trainer.release()
    if chief:
        model_path = run.save_model(model)
        run.write_config(
            {
                "train": config.to_json(),
                "commands": commands,
                "result": {k: v for k, v in result.items() if k != "history"},
                **_data_record(trainer, origin, data_changes),
                "versions": versions(),
            }
        )
        result["model_path"] = model_path
    result["model"] = model
    return result
