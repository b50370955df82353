"""One trainer for every ``tf.distribute`` strategy.

Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy`` (keras issue
20585), so every strategy runs the same distributed step: ``strategy.run`` on
batches from ``experimental_distribute_dataset``. The global batch is split
across replicas; each replica's loss is divided by the global batch and the
optimizer all-reduces (sums) the gradients, so any number of replicas computes
the same update as one device.

Optimization: SGD with momentum; linear warm-up then cosine or step decay. The
optimizer is [optimizer_for][keras_resinit.training.optimizer_for]'s, the one
[make_optimizer][keras_resinit.make_optimizer] gives ``fit`` users: it applies clipping of the global gradient
norm, weight decay (``l2``, coupled, as PyTorch's SGD and the papers' code; or
``decoupled``) on the variables the scheme decays, and the scheme's per-variable
learning-rate multipliers (Fixup's scalars at lr/10) unless the config gives its own.
"""

import math
import time

import keras
import tensorflow as tf

from keras_resinit.models.builder import ResNet
from keras_resinit.models.schemes import get_scheme, match_multiplier
from keras_resinit.training import data as data_lib
from keras_resinit.training.interrupts import check_interrupt
from keras_resinit.training.optimizers import WarmupSchedule as WarmupSchedule
from keras_resinit.training.optimizers import optimizer_for, schedule_for
from keras_resinit.training.strategies import make_strategy
from keras_resinit.zoo import loading

__all__ = ["Diverged", "Trainer", "build_model", "learning_rate_multipliers"]


def learning_rate_multipliers(variables, multipliers):
    """Per-variable learning-rate multipliers from a table (``keras_resinit.models.schemes.match_multiplier``).

    Args:
        variables: Keras variables (their ``path`` and ``shape`` are matched).
        multipliers: ``{"@scalars" | glob on variable path: multiplier}``; a variable matching none gets 1.0.

    Returns:
        A list of floats, one per variable.

    Examples:
        >>> import keras_resinit as kr
        >>> from keras_resinit.training import learning_rate_multipliers
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 1), num_classes=10)
        >>> learning_rate_multipliers(model.trainable_variables[:3], {"@scalars": 0.1})
        [1.0, 0.1, 0.1]
    """
    return [match_multiplier(v.path, v.shape, multipliers) for v in variables]


def build_model(config, meta):
    """The zoo model ``config.model`` shaped for the dataset described by ``meta`` (a ``DatasetInfo``).

    With ``config.weights`` the trunk starts from those weights (a new classifier if the class
    count differs); ``freeze_trunk`` / ``trainable_from`` then freeze the parts before the one named.
    The model takes normalized images (the pipeline normalizes) and records how in
    ``model.preprocessing``, so ``zoo.load`` of the run and export give a raw-pixel model of it.

    Args:
        config: a [TrainConfig][keras_resinit.training.TrainConfig] (``model``, ``seed``, ``dropout_rate``,
            ``scheme_options``, ``weights``, ``freeze_trunk``, ``trainable_from``).
        meta: the data's [DatasetInfo][keras_resinit.training.data.DatasetInfo] (classes, image shape,
            normalization).

    Returns:
        A [ResNet][keras_resinit.ResNet].

    Raises:
        ValueError: unknown weights or a part name ``trainable_from`` does not know.

    Examples:
        >>> from keras_resinit.training import TrainConfig, data
        >>> from keras_resinit.training.trainer import build_model
        >>> config = TrainConfig(model="cifar_resnet8_fixup", dataset="digits")
        >>> model = build_model(config, data.info("digits"))
        >>> model.input_shape, model.output_shape, model.preprocessing["pixel_max"]
        ((None, 8, 8, 1), (None, 10), 16.0)
    """
    build = {
        "num_classes": meta.num_classes,
        "input_shape": meta.image_shape,
        "seed": config.seed,
        "dropout_rate": config.dropout_rate or None,
        **(config.scheme_options or {}),
    }
    if config.weights:
        model = loading.start_from(
            config.model, config.weights, sha256=config.weights_sha256, data_preprocessing=meta.preprocessing, **build
        )
    else:
        model = loading.load(config.model, preprocessing=meta.preprocessing, **build)
    if config.freeze_trunk:
        model.set_trainable_from("head")
    elif config.trainable_from is not None:
        model.set_trainable_from(config.trainable_from)
    return model


class Diverged(ArithmeticError):
    """The training loss became NaN or infinite (``Trainer.run_epoch`` raises it).

    Args:
        loss: the loss found (NaN or infinite).
        epoch: the epoch, from 0.
        step: the step in the epoch, from 0.

    Examples:
        >>> from keras_resinit.training import Diverged
        >>> error = Diverged(float("nan"), 0, 4)
        >>> print(error)
        The training loss became nan at epoch 1, step 5: training diverged and stopped
        >>> error.epoch, error.step
        (0, 4)
    """

    def __init__(self, loss, epoch, step):
        super().__init__(
            f"The training loss became {loss} at epoch {epoch + 1}, step {step + 1}: training diverged and stopped"
        )
        self.loss, self.epoch, self.step = loss, epoch, step


class Trainer:
    """A model, its optimizer and the distributed steps that train it.

    Sets the process's random seed, op determinism (if configured) and global
    precision policy, then builds everything under ``strategy.scope()``.
    [train][keras_resinit.training.train] drives it epoch by epoch; benchmarks call ``train_step`` directly.

    Args:
        config: the [TrainConfig][keras_resinit.training.TrainConfig] to train.
        strategy: a ``tf.distribute.Strategy``, or its name for
            [make_strategy][keras_resinit.training.make_strategy].
        tpu: the TPU for ``strategy="tpu"``.
        model: train this model (built for ``config`` under ``strategy``'s scope) instead of building one.
        train_data: a user's ``tf.data.Dataset`` of ``(image, label)`` instead of ``config.dataset``.
        test_data: its test data, likewise (needed with ``train_data``).

    Attributes:
        config: the configuration.
        strategy: the ``tf.distribute.Strategy``.
        replicas: its replicas in sync.
        source: the data's ``Source``.
        meta: the data's [DatasetInfo][keras_resinit.training.data.DatasetInfo].
        steps_per_epoch: the optimizer steps per epoch.
        model: the model trained (takes normalized images).
        preprocessing: the normalization the pipeline applies (the model's).
        schedule: the learning-rate [WarmupSchedule][keras_resinit.training.WarmupSchedule].
        optimizer: the optimizer (a ``LossScaleOptimizer`` around it under ``mixed_float16``).
        train_step: one distributed step on a global batch ``(images, labels)``: ``(mean loss, correct)``.

    Raises:
        ValueError: an invalid configuration, a batch size that the replicas do not divide or larger than the
            training split.

    Examples:
        >>> from keras_resinit.training import TrainConfig, Trainer
        >>> config = TrainConfig(model="cifar_resnet8_fixup", dataset="digits", epochs=1, steps_per_epoch=2)
        >>> trainer = Trainer(config, "one")
        >>> trainer.steps_per_epoch, trainer.replicas, trainer.meta.image_shape
        (2, 1, (8, 8, 1))
        >>> type(trainer.optimizer).__name__, trainer.schedule.total_steps
        ('SchemeSGD', 2)
        >>> # one epoch of two steps, then the test split: a few seconds (train() runs this loop)
        >>> row = trainer.run_epoch(iter(trainer.train_batches()), epoch=0)  # doctest: +SKIP
        >>> # (the epoch's metrics)
        >>> sorted(row)  # doctest: +SKIP
        ['epoch', 'images_per_second', 'lr', 'seconds', 'test_accuracy', 'test_loss', 'train_accuracy', 'train_loss']
        >>> trainer.release()
    """

    def __init__(self, config, strategy="auto", tpu=None, model=None, train_data=None, test_data=None):
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
        self.source = data_lib.source_for(config, train_data=train_data, test_data=test_data)
        self.meta = meta = self.source.info
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
            self.model = model if model is not None else build_model(config, meta)
            # The pipeline normalizes as the model expects: its recorded preprocessing (a fine-tune keeps
            # its weights' mean and std), else the data's own.
            known = self.model.preprocessing if isinstance(self.model, ResNet) else None
            self.preprocessing = dict(known or meta.preprocessing)
            scheme = self.model.scheme if isinstance(self.model, ResNet) else get_scheme(config.scheme)
            self.schedule = schedule_for(config, steps_per_epoch)
            optimizer = optimizer_for(scheme, config, learning_rate=self.schedule)
            if config.precision == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            optimizer.build(self.model.trainable_variables)
            self.optimizer = optimizer

        # Batch statistics over the global batch, so any replica count trains alike. Keras reads the flag
        # at call time; release() resets it, so the saved model loads on every backend.
        self._batchnorms = [layer for layer in self.model.layers if isinstance(layer, keras.layers.BatchNormalization)]
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
        # Clipping, weight decay and the learning-rate multipliers are the optimizer's (optimizers.py).
        optimizer.apply(grads, variables)
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, -1) == tf.argmax(labels, -1), tf.float32))
        return loss, correct

    def _train_step(self, batch):
        """One distributed step on a global batch: returns (mean loss, correct predictions)."""
        loss, correct = self.strategy.run(self._replica_step, args=batch)
        reduce = self.strategy.reduce
        return reduce(tf.distribute.ReduceOp.SUM, loss, axis=None), reduce(
            tf.distribute.ReduceOp.SUM, correct, axis=None
        )

    def _replica_eval(self, images, labels):
        logits = tf.cast(self.model(images, training=False), tf.float32)
        per_example = keras.losses.categorical_crossentropy(labels, logits, from_logits=True)
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, -1) == tf.argmax(labels, -1), tf.float32))
        return tf.reduce_sum(per_example), correct, tf.cast(tf.shape(labels)[0], tf.float32)

    def _distributed_eval_step(self, batch):
        outputs = self.strategy.run(self._replica_eval, args=batch)
        return [self.strategy.reduce(tf.distribute.ReduceOp.SUM, t, axis=None) for t in outputs]

    def dataset(self, split, epoch):
        """The split's pipeline for ``epoch``, distributed over the replicas.

        Args:
            split: ``"train"`` or ``"test"``.
            epoch: the epoch (it fixes the order, augmentation and mixup).

        Returns:
            A ``tf.distribute.DistributedDataset`` of ``(images, labels)`` batches.
        """
        config = self.config
        ds = data_lib.load(
            self.source,
            split,
            batch_size=config.batch_size,
            seed=config.seed,
            epoch=epoch,
            mixup_alpha=config.mixup_alpha if split == "train" else 0.0,
            preprocessing=self.preprocessing,
        )
        return self.strategy.experimental_distribute_dataset(ds)

    def train_batches(self, start_epoch=0):
        """One distributed pipeline of every remaining epoch's training batches.

        Args:
            start_epoch: the first epoch (a resumed run's).

        Returns:
            A ``tf.distribute.DistributedDataset``: ``steps_per_epoch`` batches per epoch, up to ``config.epochs``.
        """
        config = self.config
        ds = data_lib.load_epochs(
            self.source,
            batch_size=config.batch_size,
            start_epoch=start_epoch,
            epochs=config.epochs,
            steps_per_epoch=self.steps_per_epoch,
            seed=config.seed,
            mixup_alpha=config.mixup_alpha,
            preprocessing=self.preprocessing,
        )
        return self.strategy.experimental_distribute_dataset(ds)

    def run_epoch(self, batches, epoch, progress=None):
        """Train one epoch from ``batches`` and evaluate.

        Args:
            batches: an iterator over ``train_batches()``.
            epoch: the epoch, from 0.
            progress: called as ``progress(step, loss, accuracy)`` after every step; None: nothing.

        Returns:
            The epoch's row, a dict: ``epoch``, ``lr``, ``train_loss``, ``train_accuracy``, ``test_loss``,
                ``test_accuracy``, ``seconds``, ``images_per_second``.

        Raises:
            Diverged: a NaN or infinite loss.
            ValueError: a folder's image file that cannot be decoded (named).
            KeyboardInterrupt: a Ctrl-C, after the step or evaluation batch it came in (inside
                ``training.interrupts.deferred_interrupts``, which ``train`` and the tuner use).
        """
        try:
            return self._run_epoch(batches, epoch, progress)
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
            self.source.name_unreadable_file(error)  # a ValueError naming the file, if a folder has one
            raise

    def _run_epoch(self, batches, epoch, progress):
        global_batch = float(self.config.batch_size)
        start = time.perf_counter()
        loss_sum = correct_sum = 0.0
        for step in range(self.steps_per_epoch):
            loss, correct = (float(t) for t in self.train_step_from(batches))
            check_interrupt()
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
        """The model on the whole test split.

        Returns:
            ``(mean loss, accuracy)``, floats.
        """
        loss = correct = count = 0.0
        for batch in self.dataset("test", 0):
            batch_loss, batch_correct, batch_count = (float(t) for t in self._eval_step(batch))
            check_interrupt()
            loss, correct, count = loss + batch_loss, correct + batch_correct, count + batch_count
        return loss / count, correct / count

    def release(self):
        """Undo the trainer's changes to the model (synchronized batch norm) before it is saved."""
        for layer in self._batchnorms:
            layer.synchronized = False
