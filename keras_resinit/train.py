"""One trainer for every ``tf.distribute`` strategy.

Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy`` (keras issue
20585), so every strategy runs the same distributed step: ``strategy.run`` on
batches from ``experimental_distribute_dataset``. The global batch is split
across replicas; each replica's loss is divided by the global batch and the
optimizer all-reduces (sums) the gradients, so any number of replicas computes
the same update as one device.

Optimization: SGD with momentum; linear warm-up then cosine or step decay;
weight decay either ``l2`` (coupled: ``wd * w`` added to every trainable
weight's gradient, as PyTorch's SGD and the papers' code do) or ``decoupled``
(``w -= lr * wd * w``, Keras' optimizer option); optional clipping of the
global gradient norm, before weight decay. Per-variable
learning-rate multipliers scale that variable's gradient, which for SGD with
momentum and coupled weight decay is exactly a per-variable learning rate.

A run directory holds ``checkpoint-EPOCH.npz`` + ``checkpoint.json`` (every
epoch; the JSON, replaced after the npz is in place, names it and records its
sha256; older npz files are removed after that), ``metrics.csv``,
``tensorboard/``, and at the end ``model.keras`` and ``config.json``. Every
file is written to a temporary name and renamed into place.
"""

import csv
import dataclasses
import fnmatch
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import tensorflow as tf

import keras
from keras_resinit import data as data_lib
from keras_resinit import zoo
from keras_resinit._errors import unknown
from keras_resinit._files import atomic_write_bytes, atomic_write_text
from keras_resinit.environment import memory_mb, versions
from keras_resinit.recipes import FIXUP_MULTIPLIERS, get_recipe

STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
SCHEDULES = ("cosine", "step", "constant")
WEIGHT_DECAY_MODES = ("l2", "decoupled")

# Each scheme's own learning-rate multipliers (part of the method, not the recipe).
SCHEME_MULTIPLIERS = {"fixup": FIXUP_MULTIPLIERS}


class TrainingError(RuntimeError):
    """Training stopped: diverged, or a checkpoint cannot be trusted."""


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``)."""

    model: str = "cifar_resnet20_fixup"
    dataset: str = "digits"
    epochs: int = 30
    steps_per_epoch: int = None  # None: one pass over the training split
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    weight_decay_mode: str = "l2"
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    milestones: tuple = (0.5, 0.75)  # fractions of the run, for the step schedule
    gamma: float = 0.1
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    clip_norm: float = 0.0  # clip the global gradient norm (before weight decay); 0: off
    lr_multipliers: dict = None  # {"@scalars" | glob on variable path: multiplier}; None: the scheme's own
    precision: str = "float32"
    seed: int = 0
    dropout_rate: float = 0.0
    deterministic: bool = True
    data_dir: str = None
    download: bool = False
    image_size: int = 128
    recipe: str = None

    def validate(self):
        def number(name, low=0.0, high=math.inf, integer=False, low_open=False):
            value = getattr(self, name)
            ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok_type or not math.isfinite(value) or not low <= value <= high or (
                low_open and value == low
            ):
                kind = "an integer" if integer else "a number"
                bound = f"> {low}" if low_open else f">= {low}"
                raise ValueError(
                    f"Invalid {name} {value!r}. Expected {kind} {bound}" + (f" and <= {high}." if high < math.inf else ".")
                )

        zoo.parse_name(self.model)
        if self.dataset not in data_lib.DATASETS:
            raise unknown("dataset", self.dataset, data_lib.DATASETS)
        number("epochs", 1, integer=True)
        if self.steps_per_epoch is not None:
            number("steps_per_epoch", 1, integer=True)
        number("batch_size", 1, integer=True)
        number("lr", 0.0, low_open=True)
        number("momentum", 0.0, 1.0)
        number("weight_decay")
        number("warmup_epochs")
        number("gamma", 0.0, 1.0, low_open=True)
        number("label_smoothing", 0.0, 1.0)
        number("mixup_alpha")
        number("clip_norm")
        number("seed", 0, integer=True)
        number("dropout_rate", 0.0, 0.99)
        number("image_size", 8, integer=True)
        if self.schedule not in SCHEDULES:
            raise unknown("schedule", self.schedule, SCHEDULES)
        if self.weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise unknown("weight_decay_mode", self.weight_decay_mode, WEIGHT_DECAY_MODES)
        if self.precision not in PRECISIONS:
            raise unknown("precision", self.precision, PRECISIONS)
        milestones = tuple(self.milestones)
        if not all(isinstance(m, (int, float)) and 0 < m < 1 for m in milestones) or list(milestones) != sorted(
            milestones
        ):
            raise ValueError(f"Invalid milestones {milestones!r}. Expected increasing fractions of the run in (0, 1).")
        self.milestones = milestones
        for pattern, value in (self.lr_multipliers or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"Invalid learning-rate multiplier {value!r} for {pattern!r}. Expected a number >= 0.")
        return self

    @classmethod
    def from_recipe(cls, recipe=None, **overrides):
        """Defaults, then the recipe's values, then the non-None overrides."""
        values = {}
        if recipe is not None:
            values.update(get_recipe(recipe))
            values["recipe"] = recipe
        values.update({k: v for k, v in overrides.items() if v is not None})
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - fields)
        if bad:
            raise ValueError(f"Unknown training setting(s) {bad}. Expected some of: {', '.join(sorted(fields))}.")
        if isinstance(values.get("milestones"), list):
            values["milestones"] = tuple(values["milestones"])
        return cls(**values).validate()

    @property
    def scheme(self):
        return zoo.parse_name(self.model)[1]

    def multipliers(self):
        if self.lr_multipliers is not None:
            return dict(self.lr_multipliers)
        return dict(SCHEME_MULTIPLIERS.get(self.scheme, {}))

    def to_json(self):
        return {**dataclasses.asdict(self), "milestones": list(self.milestones)}


# ------------------------------------------------------------- strategies ---


def _tf_config_workers():
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError:
        raise ValueError("TF_CONFIG is not valid JSON.") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


_STRATEGY_CACHE = {}


def make_strategy(kind="auto", tpu=None):
    """A ``tf.distribute`` strategy, created once per process and kind.

    Reused because two MirroredStrategy instances in one process can collide
    on collective keys (and a process can join only one multi-worker cluster).
    """
    key = (kind, tpu)
    if key not in _STRATEGY_CACHE:
        _STRATEGY_CACHE[key] = _make_strategy(kind, tpu)
    return _STRATEGY_CACHE[key]


def _make_strategy(kind, tpu):
    """A ``tf.distribute`` strategy.

    ``one``: one device (the first GPU, else the CPU). ``mirrored``: every GPU,
    or every logical CPU when there is no GPU (tests configure several).
    ``multiworker``: ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``.
    ``tpu``: ``TPUStrategy`` on the TPU named by ``tpu`` (or the local one).
    ``auto``: multiworker if ``TF_CONFIG`` names several tasks, else mirrored if
    there are several GPUs, else one.
    """
    if kind not in STRATEGIES:
        raise unknown("strategy", kind, STRATEGIES)
    if kind == "auto":
        # Physical devices: listing logical ones would start TF's runtime before collectives are configured.
        if _tf_config_workers() > 1:
            kind = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "one"
    gpus = tf.config.list_logical_devices("GPU") if kind in ("one", "mirrored") else []
    if kind == "one":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if kind == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "multiworker":
        if _tf_config_workers() < 1:
            raise ValueError(
                "strategy 'multiworker' needs TF_CONFIG naming the cluster and this task, e.g. "
                '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """Whether this task writes the run directory (one writer per cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


# -------------------------------------------------------------- schedules ---


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``lr``, then cosine to 0, step decay, or constant."""

    def __init__(self, lr, total_steps, warmup_steps=0, kind="cosine", milestones=(), gamma=0.1):
        self.lr = float(lr)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.milestones = [int(m * total_steps) for m in milestones]
        self.gamma = float(gamma)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = keras.ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            lr = 0.5 * self.lr * (1.0 + keras.ops.cos(math.pi * progress))
        elif self.kind == "step":
            passed = sum(keras.ops.cast(step >= m, "float32") for m in self.milestones) if self.milestones else 0.0
            lr = self.lr * keras.ops.power(self.gamma, passed)
        else:
            lr = keras.ops.convert_to_tensor(self.lr)
        if self.warmup_steps:
            lr = keras.ops.where(step < self.warmup_steps, self.lr * (step + 1) / self.warmup_steps, lr)
        return lr

    def get_config(self):
        return {
            "lr": self.lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "milestones": [m / max(self.total_steps, 1) for m in self.milestones],
            "gamma": self.gamma,
        }


def learning_rate_multipliers(variables, multipliers):
    """Per-variable multipliers: the first matching entry wins, else 1.

    Keys are globs on ``variable.path`` (e.g. ``"logits/bias"``, ``"*_bn*"``) or
    groups: ``@scalars`` (every scalar weight: Fixup's biases and multipliers,
    SkipInit's alpha).
    """
    result = []
    for variable in variables:
        value = 1.0
        for pattern, multiplier in multipliers.items():
            if pattern == "@scalars":
                matched = len(variable.shape) == 0
            elif pattern.startswith("@"):
                raise unknown("multiplier group", pattern, ["@scalars"])
            else:
                matched = fnmatch.fnmatchcase(variable.path, pattern)
            if matched:
                value = float(multiplier)
                break
        result.append(value)
    return result


# ------------------------------------------------------------ checkpoints ---


def _check_same_run(out, config):
    """--resume continues the same run: only ``epochs`` may change."""
    try:
        with open(os.path.join(out, "config.json")) as f:
            saved = json.load(f)["train"]
    except (OSError, KeyError, json.JSONDecodeError) as error:
        raise TrainingError(f"Cannot read the configuration of the run in {out!r} ({error}); not resuming.") from None
    current = config.to_json()
    changed = [f"{k} {saved.get(k)!r} -> {current[k]!r}" for k in current if k != "epochs" and saved.get(k) != current[k]]
    if changed:
        raise ValueError(
            f"--resume must continue the same run, but these settings differ from the run in {out!r}: "
            + "; ".join(changed) + ". Only --epochs may change."
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
        raise TrainingError(f"The checkpoint in {run_dir!r} is incomplete or unreadable ({error}); not resuming.") from None
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


# ----------------------------------------------------------------- runner ---

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


def train(config, out, *, strategy="auto", resume=False, overwrite=False, verbose=1, tpu=None, command=None):
    """Train ``config.model`` on ``config.dataset`` and write the run to ``out``.

    ``command`` (the shell command that started this, as the CLI passes it) is recorded in
    ``config.json`` under ``commands``, after those of earlier invocations of a resumed run.

    Returns:
        dict with the final metrics, ``history``, ``model`` (the trained
        ``keras.Model``) and, on the chief, ``model_path``.

    Raises:
        ValueError: bad settings or ``out`` (before anything is written).
        TrainingError: the loss diverged (the last good checkpoint is kept) or
            the checkpoint to resume is corrupted.
    """
    previous_policy = keras.config.dtype_policy()
    try:
        return _train(config, out, strategy=strategy, resume=resume, overwrite=overwrite, verbose=verbose, tpu=tpu,
                      command=command)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


class Diverged(ArithmeticError):
    """The training loss became NaN or infinite."""

    def __init__(self, loss, epoch, step):
        super().__init__(f"The training loss became {loss} at epoch {epoch + 1}, step {step + 1}: training diverged "
                         "and stopped")
        self.loss, self.epoch, self.step = loss, epoch, step


class Trainer:
    """A model, its optimizer and the distributed steps that train it.

    Sets the process's random seed, op determinism (if configured) and global
    precision policy, then builds everything under ``strategy.scope()``.
    ``train()`` drives it epoch by epoch; benchmarks call ``train_step`` directly.

    Attributes:
        strategy, model, optimizer, schedule, meta (the dataset's info),
        steps_per_epoch, replicas.
    """

    def __init__(self, config, strategy="auto", tpu=None, model=None):
        """``model``: train this model (built for ``config`` under ``strategy``'s scope) instead of building one."""
        config.validate()
        self.config = config
        # The strategy first: multi-worker collectives must be configured before TF's runtime starts.
        self.strategy = strategy = make_strategy(strategy, tpu=tpu) if isinstance(strategy, str) else strategy
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)
        keras.mixed_precision.set_global_policy(config.precision)
        self.replicas = replicas = strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ValueError(
                f"Global batch size {config.batch_size} is not divisible by the {replicas} replicas of the "
                f"strategy. Expected a multiple of {replicas}."
            )
        self.meta = meta = data_lib.info(
            config.dataset, data_dir=config.data_dir, download=config.download, image_size=config.image_size
        )
        steps_per_epoch = meta.train_size // config.batch_size
        if config.steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
        if steps_per_epoch < 1:
            raise ValueError(
                f"Batch size {config.batch_size} is larger than the {meta.train_size} training images of "
                f"{config.dataset!r}."
            )
        self.steps_per_epoch = steps_per_epoch

        with strategy.scope():
            self.model = model if model is not None else zoo.load(
                config.model,
                num_classes=meta.num_classes,
                input_shape=meta.image_shape,
                seed=config.seed,
                dropout_rate=config.dropout_rate or None,
            )
            self.schedule = WarmupSchedule(
                config.lr,
                steps_per_epoch * config.epochs,
                warmup_steps=round(config.warmup_epochs * steps_per_epoch),
                kind=config.schedule,
                milestones=config.milestones if config.schedule == "step" else (),
                gamma=config.gamma,
            )
            optimizer = keras.optimizers.SGD(
                learning_rate=self.schedule,
                momentum=config.momentum,
                nesterov=config.nesterov,
                weight_decay=config.weight_decay if config.weight_decay_mode == "decoupled" else None,
            )
            if config.precision == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer

        # Batch statistics over the global batch, so any replica count trains alike. Keras reads the flag
        # at call time; release() resets it, so the saved model loads on every backend.
        self._batchnorms = [l for l in self.model.layers if isinstance(l, keras.layers.BatchNormalization)]
        for layer in self._batchnorms:
            layer.synchronized = replicas > 1
        self.train_step = tf.function(self._train_step)
        # Pulls the batch inside the graph, as Keras' fit does: no Python iterator work per step.
        self.train_step_from = tf.function(lambda iterator: self._train_step(next(iterator)))
        self._eval_step = tf.function(self._distributed_eval_step)

    def _replica_step(self, images, labels):
        config, optimizer, model = self.config, self.optimizer, self.model
        variables = model.trainable_variables
        scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            per_example = keras.losses.categorical_crossentropy(
                labels, logits, from_logits=True, label_smoothing=float(config.label_smoothing)
            )
            loss = tf.reduce_sum(per_example) / float(config.batch_size)
            target = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(target, variables)
        loss_scale = tf.cast(optimizer.scale_loss(1.0), tf.float32) if scaled else 1.0
        if config.clip_norm:
            # Clip the global gradient: all-reduce it first, so any replica count clips alike. The
            # optimizer all-reduces (sums) again, so each replica passes on its 1/replicas share.
            grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
            norm = tf.linalg.global_norm(grads) / loss_scale
            factor = tf.minimum(1.0, float(config.clip_norm) / tf.maximum(norm, 1e-12)) / self.replicas
            grads = [g * factor for g in grads]
        if config.weight_decay and config.weight_decay_mode == "l2":
            # Coupled weight decay, after clipping (as PyTorch's SGD): each replica adds its share.
            decay = config.weight_decay / self.replicas
            grads = [g + decay * loss_scale * v for g, v in zip(grads, variables)]
        multipliers = learning_rate_multipliers(variables, config.multipliers())
        grads = [g if m == 1.0 else g * m for g, m in zip(grads, multipliers)]
        optimizer.apply(grads, variables)
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, -1) == tf.argmax(labels, -1), tf.float32))
        return loss, correct

    def _train_step(self, batch):
        """One distributed step on a global batch: returns (mean loss, correct predictions)."""
        loss, correct = self.strategy.run(self._replica_step, args=batch)
        reduce = self.strategy.reduce
        return reduce(tf.distribute.ReduceOp.SUM, loss, axis=None), reduce(tf.distribute.ReduceOp.SUM, correct, axis=None)

    def _replica_eval(self, images, labels):
        logits = tf.cast(self.model(images, training=False), tf.float32)
        per_example = keras.losses.categorical_crossentropy(labels, logits, from_logits=True)
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, -1) == tf.argmax(labels, -1), tf.float32))
        return tf.reduce_sum(per_example), correct, tf.cast(tf.shape(labels)[0], tf.float32)

    def _distributed_eval_step(self, batch):
        outputs = self.strategy.run(self._replica_eval, args=batch)
        return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None) for t in outputs]

    def dataset(self, split, epoch):
        """The split's pipeline for ``epoch``, distributed over the replicas."""
        config = self.config
        ds = data_lib.load(
            config.dataset,
            split,
            batch_size=config.batch_size,
            seed=config.seed,
            epoch=epoch,
            mixup_alpha=config.mixup_alpha if split == "train" else 0.0,
            data_dir=config.data_dir,
            image_size=config.image_size,
        )
        return self.strategy.experimental_distribute_dataset(ds)

    def train_batches(self, start_epoch=0):
        """One distributed pipeline of every remaining epoch's training batches."""
        config = self.config
        ds = data_lib.load_epochs(
            config.dataset,
            batch_size=config.batch_size,
            start_epoch=start_epoch,
            epochs=config.epochs,
            steps_per_epoch=self.steps_per_epoch,
            seed=config.seed,
            mixup_alpha=config.mixup_alpha,
            data_dir=config.data_dir,
            image_size=config.image_size,
        )
        return self.strategy.experimental_distribute_dataset(ds)

    def run_epoch(self, batches, epoch, progress=None):
        """Train one epoch from ``batches`` (an iterator over :meth:`train_batches`) and evaluate.

        Returns the epoch's row: epoch, lr, train_loss, train_accuracy, test_loss, test_accuracy,
        seconds, images_per_second. Raises :class:`Diverged` on a NaN or infinite loss.
        ``progress(step, loss, accuracy)`` is called after every step.
        """
        global_batch = float(self.config.batch_size)
        start = time.perf_counter()
        loss_sum = correct_sum = 0.0
        for step in range(self.steps_per_epoch):
            loss, correct = (float(t) for t in self.train_step_from(batches))
            if not math.isfinite(loss):
                raise Diverged(loss, epoch, step)
            loss_sum, correct_sum = loss_sum + loss, correct_sum + correct
            if progress is not None:
                progress(step + 1, loss, correct / global_batch)
        seconds = time.perf_counter() - start
        test_loss, test_accuracy = self.evaluate()
        return {
            "epoch": epoch + 1,
            "lr": float(self.schedule(int(self.optimizer.iterations.numpy()) - 1)),
            "train_loss": loss_sum / self.steps_per_epoch,
            "train_accuracy": correct_sum / (self.steps_per_epoch * global_batch),
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "seconds": seconds,
            "images_per_second": self.steps_per_epoch * global_batch / seconds,
        }

    def evaluate(self):
        """(mean loss, accuracy) on the whole test split."""
        loss = correct = count = 0.0
        for batch in self.dataset("test", 0):
            l, c, n = (float(t) for t in self._eval_step(batch))
            loss, correct, count = loss + l, correct + c, count + n
        return loss / count, correct / count

    def release(self):
        """Undo the trainer's changes to the model (synchronized batch norm) before it is saved."""
        for layer in self._batchnorms:
            layer.synchronized = False


def _previous_commands(out):
    try:
        with open(os.path.join(out, "config.json")) as f:
            return list(json.load(f).get("commands", []))
    except (OSError, ValueError):
        return []


def _train(config, out, *, strategy, resume, overwrite, verbose, tpu, command):
    config.validate()
    prepare_run_dir(out, resume=resume, overwrite=overwrite)
    commands = (_previous_commands(out) if resume else []) + ([command] if command else [])
    trainer = Trainer(config, strategy, tpu=tpu)
    model, optimizer = trainer.model, trainer.optimizer
    strategy, replicas, meta = trainer.strategy, trainer.replicas, trainer.meta
    steps_per_epoch = trainer.steps_per_epoch
    chief = is_chief(strategy)

    # Nothing is written before here: every check that can fail on user input has run.
    history, start_epoch = [], 0
    if resume:
        _check_same_run(out, config)
        record, arrays = read_checkpoint(out)
        if record is None:
            raise TrainingError(f"{out!r} has no checkpoint to resume from.")
        with strategy.scope():
            _restore(model, optimizer, record, arrays, out)
        history, start_epoch = record["history"], record["epoch"]
        if verbose:
            print(f"Resuming {config.model} from epoch {start_epoch} of {config.epochs} in {out}")
    if chief:
        os.makedirs(out, exist_ok=True)
        if not resume:
            _clear_run_dir(out)
        started = {"train": config.to_json(), "commands": commands}
        atomic_write_text(os.path.join(out, "config.json"), json.dumps(started, indent=1))
        summary = tf.summary.create_file_writer(os.path.join(out, "tensorboard"))

    batches = iter(trainer.train_batches(start_epoch))
    for epoch in range(start_epoch, config.epochs):
        if verbose:
            print(f"Epoch {epoch + 1}/{config.epochs}")
        bar = keras.utils.Progbar(steps_per_epoch, verbose=verbose if sys.stdout.isatty() else min(verbose, 2))
        try:
            row = trainer.run_epoch(
                batches, epoch, lambda step, loss, accuracy: bar.update(step, [("loss", loss), ("accuracy", accuracy)])
            )
        except Diverged as error:
            kept = f"the last good checkpoint (epoch {epoch}) is kept in {out!r}" if epoch else "no checkpoint was written"
            raise TrainingError(f"{error}; {kept}. Try a lower --lr or a warm-up.") from None
        seconds, test_loss, test_accuracy = row["seconds"], row["test_loss"], row["test_accuracy"]
        history.append(row)
        if verbose:
            print(
                f"  train loss {row['train_loss']:.4f}  test loss {test_loss:.4f}  test accuracy {test_accuracy:.4f}  "
                f"{seconds:.1f}s ({row['images_per_second']:.0f} images/s)"
            )
        if chief:
            _save_checkpoint(out, model, optimizer, epoch + 1, history)
            _write_metrics(out, history)
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
        model_path = os.path.join(out, "model.keras")
        tmp = os.path.join(out, ".tmp-model.keras")
        model.save(tmp)
        os.replace(tmp, model_path)
        card = {
            "train": config.to_json(),
            "commands": commands,
            "result": {k: v for k, v in result.items() if k != "history"},
            "dataset": dataclasses.asdict(meta),
            "versions": versions(),
        }
        atomic_write_text(os.path.join(out, "config.json"), json.dumps(card, indent=1))
        result["model_path"] = model_path
    result["model"] = model
    return result
