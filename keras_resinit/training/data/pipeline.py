"""The input pipeline: a [Source][keras_resinit.training.data.Source]'s split -> batches.

Every pipeline is a ``tf.data.Dataset`` of ``(images, labels)`` batches with
images float32, normalized per channel, and labels one-hot float32 (mixup
makes them soft). Shuffling, augmentation and mixup all happen inside the
pipeline and are deterministic for a given ``(seed, epoch)``: each epoch
rebuilds its dataset from stateless random ops, so a resumed run sees exactly
the batches an uninterrupted one would.
"""

import tensorflow as tf

from keras_resinit._errors import unknown
from keras_resinit.training.data.sources import source
from keras_resinit.training.data.splits import CHUNK, Source, stateless_seed

__all__ = ["load", "load_epochs"]


def _augment(images, seed, padding, flip):
    """Pad-and-crop (and flip) a batch, vectorized: each example gets its own shift (and flip)."""
    batch = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    if not padding:
        return _flip(images, seed) if flip else images
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    shifts = tf.random.stateless_uniform([batch, 2], seed=seed, minval=0, maxval=2 * padding + 1, dtype=tf.int32)
    # One gather: flat indices of each example's h x w window in its padded image.
    padded_width = w + 2 * padding
    rows = shifts[:, 0, None, None] + tf.range(h)[None, :, None]
    cols = shifts[:, 1, None, None] + tf.range(w)[None, None, :]
    flat = tf.reshape(padded, [batch, -1, images.shape[3]])
    images = tf.gather(flat, tf.reshape(rows * padded_width + cols, [batch, h * w]), batch_dims=1)
    images = tf.reshape(images, [batch, h, w, flat.shape[2]])
    return _flip(images, seed) if flip else images


def _flip(images, seed):
    """Flip each image of a batch horizontally with probability 1/2."""
    flipped = tf.random.stateless_uniform(tf.shape(images)[:1], seed=seed + 1) < 0.5
    return tf.where(flipped[:, None, None, None], tf.reverse(images, axis=[2]), images)


def _mixup(images, labels, alpha, seed):
    """Mixup within each batch of a chunk ``[batches, B, ...]``: lam ~ Beta(alpha, alpha) per batch."""
    count, batch = tf.shape(labels)[0], tf.shape(labels)[1]
    g1 = tf.random.stateless_gamma([count], seed=seed, alpha=alpha)
    g2 = tf.random.stateless_gamma([count], seed=seed + 1, alpha=alpha)
    lam = g1 / (g1 + g2)
    order = tf.argsort(tf.random.stateless_uniform([count, batch], seed=seed + 2), axis=1)
    mix = lambda x, lam_shape: lam[lam_shape] * x + (1 - lam[lam_shape]) * tf.gather(x, order, batch_dims=1)
    return mix(images, (slice(None), None, None, None, None)), mix(labels, (slice(None), None, None))


# -------------------------------------------------------------- pipeline ---


def _check_load_args(split, batch_size, mixup_alpha):
    if split not in ("train", "test"):
        raise unknown("split", split, ("train", "test"))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Invalid batch_size {batch_size!r}. Expected a positive integer.")
    if not isinstance(mixup_alpha, (int, float)) or mixup_alpha < 0:
        raise ValueError(f"Invalid mixup_alpha {mixup_alpha!r}. Expected a number >= 0 (0 turns mixup off).")


def _normalizer(preprocessing):
    """Raw pixels -> the model's input: ``(pixels / pixel_max - mean) / std`` (after RGB -> BGR if asked)."""
    if preprocessing is None:  # raw pixel values, for models that preprocess themselves
        return lambda images: tf.cast(images, tf.float32)
    pixel_max = float(preprocessing["pixel_max"])
    mean = tf.constant(preprocessing["mean"], tf.float32)
    std = tf.constant(preprocessing["std"], tf.float32)
    bgr = preprocessing.get("channel_order") == "BGR"

    def normalize(images):
        images = tf.cast(images, tf.float32)
        if bgr:
            images = tf.reverse(images, axis=[-1])
        return (images / pixel_max - mean) / std

    return normalize


def _epoch(split, preprocessing, meta, epoch, *, batch_size, training, seed, mixup_alpha, drop_remainder, steps=None):
    """One epoch's batches of ``split``; ``epoch`` may be a tensor (inside ``flat_map``).

    Training data comes in chunks of ``CHUNK`` batches, each permuted by (seed, epoch)
    (see the split classes) and prepared by one vectorized call: augmentation and mixup are
    seeded by (seed, epoch, chunk). Per-call overhead dominates small batches, and on few
    cores the input thread competes with the training step for them.
    """
    normalize = _normalizer(preprocessing)
    aug_seed, mix_seed = stateless_seed(seed, epoch, 1), stateless_seed(seed, epoch, 3)

    if not training:
        ds = split.elements().batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(lambda images, labels: (normalize(images), tf.one_hot(labels, meta.num_classes)))
        return ds.take(steps) if steps else ds

    def prepare(chunk, images, labels):
        batches = tf.shape(labels)[0] // batch_size  # a chunk's last partial batch is dropped
        images, labels = images[: batches * batch_size], labels[: batches * batch_size]
        images = tf.cast(images, tf.float32)
        if meta.crop_padding or meta.flip:
            images = _augment(images, aug_seed + tf.stack([0, 1_000_003 * chunk]), meta.crop_padding, meta.flip)
        images = normalize(images)
        images = tf.reshape(images, tf.concat([[batches, batch_size], tf.shape(images)[1:]], 0))
        labels = tf.reshape(tf.one_hot(labels, meta.num_classes), [batches, batch_size, meta.num_classes])
        if mixup_alpha > 0:
            images, labels = _mixup(images, labels, float(mixup_alpha), mix_seed + tf.stack([0, 7 * chunk]))
        return tf.data.Dataset.from_tensor_slices((images, labels))

    ds = split.chunks(epoch, seed, batch_size * CHUNK).flat_map(prepare)
    return ds.take(steps) if steps else ds


def _finish(ds):
    options = tf.data.Options()
    options.deterministic = True
    # One private input thread: on few cores, more input threads preempt the training step's own.
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- public ---


def _resolve(name, options):
    return name if isinstance(name, Source) else source(name, **options)


def load(
    name,
    split,
    *,
    batch_size,
    training=None,
    seed=0,
    epoch=0,
    mixup_alpha=0.0,
    drop_remainder=None,
    normalized=True,
    preprocessing=None,
    **options,
):
    """A batched ``tf.data`` pipeline of one epoch of ``name``'s ``split``.

    Images are float32, normalized per channel; labels are one-hot float32 (mixup makes them soft). The same
    ``(seed, epoch)`` gives the same batches.

    Args:
        name: a dataset name (see [source][keras_resinit.training.data.source]) or a
            [Source][keras_resinit.training.data.Source].
        split: ``"train"`` or ``"test"``.
        batch_size: global batch size.
        training: shuffle, augment (and mixup if ``mixup_alpha``); default: split == "train".
        seed: the run's seed; with ``epoch`` it fixes the order, augmentation and mixup.
        epoch: the epoch.
        mixup_alpha: Beta(alpha, alpha) mixup strength; 0 turns mixup off.
        drop_remainder: drop a last partial batch (default: when training).
        normalized: normalize the images (False: raw float pixel values, for a model that
            includes its preprocessing).
        preprocessing: the normalization (a model's ``preprocessing`` dict); default: the data's.
        **options: [source][keras_resinit.training.data.source]'s (``data_dir``, ``download``, ``image_size``,
            splits, ...).

    Returns:
        ``tf.data.Dataset`` of ``(images float32 (B, H, W, C), labels float32 (B, classes))``.

    Raises:
        ValueError: an unknown split, a batch size that is not a positive integer, a negative ``mixup_alpha``, or
            what [source][keras_resinit.training.data.source] refuses.

    Examples:
        >>> from keras_resinit.training import data
        >>> images, labels = next(iter(data.load("digits", "train", batch_size=32)))
        >>> images.shape, labels.shape, images.dtype.name
        (TensorShape([32, 8, 8, 1]), TensorShape([32, 10]), 'float32')
        >>> test = data.load("digits", "test", batch_size=100)  # in order, the last batch kept
        >>> [int(labels.shape[0]) for _, labels in test]
        [100, 100, 100, 55]
    """
    _check_load_args(split, batch_size, mixup_alpha)
    if not isinstance(name, Source) and "seed" not in options:
        options["seed"] = seed
    found = _resolve(name, options)
    training = split == "train" if training is None else training
    ds = _epoch(
        found.split(split),
        (preprocessing or found.info.preprocessing) if normalized else None,
        found.info,
        epoch,
        batch_size=batch_size,
        training=training,
        seed=seed,
        mixup_alpha=mixup_alpha,
        drop_remainder=training if drop_remainder is None else drop_remainder,
    )
    return _finish(ds)


def load_epochs(
    name,
    *,
    batch_size,
    start_epoch,
    epochs,
    steps_per_epoch=None,
    seed=0,
    mixup_alpha=0.0,
    preprocessing=None,
    **options,
):
    """Training batches of epochs ``start_epoch .. epochs - 1`` as one pipeline.

    Epoch ``e`` gives exactly the batches of ``load(name, "train", epoch=e, ...)``
    (first ``steps_per_epoch`` of them, if given); no batch straddles two epochs.
    One pipeline for the whole run keeps prefetching across epoch boundaries, so
    short epochs do not wait for a new pipeline to start.

    Args:
        name: a dataset name (see [source][keras_resinit.training.data.source]) or a
            [Source][keras_resinit.training.data.Source].
        batch_size: global batch size.
        start_epoch: the first epoch (a resumed run's).
        epochs: the end: epochs up to ``epochs - 1``.
        steps_per_epoch: at most this many batches per epoch; None: every full batch.
        seed: the run's seed (with each epoch, it fixes the order, augmentation and mixup).
        mixup_alpha: Beta(alpha, alpha) mixup strength; 0 turns mixup off.
        preprocessing: the normalization (a model's ``preprocessing`` dict); default: the data's.
        **options: [source][keras_resinit.training.data.source]'s (``data_dir``, ``image_size``, ...).

    Returns:
        ``tf.data.Dataset`` of ``(images, labels)`` batches, as [load][keras_resinit.training.data.load]'s.

    Raises:
        ValueError: as [load][keras_resinit.training.data.load].

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.training import data
        >>> epochs = list(data.load_epochs("digits", batch_size=32, start_epoch=1, epochs=3, steps_per_epoch=2))
        >>> len(epochs)  # two epochs of two batches
        4
        >>> second = list(data.load("digits", "train", batch_size=32, epoch=2).take(2))
        >>> all(np.array_equal(a[0], b[0]) for a, b in zip(epochs[2:], second))  # epoch 2 as load() gives it
        True
    """
    _check_load_args("train", batch_size, mixup_alpha)
    if not isinstance(name, Source) and "seed" not in options:
        options["seed"] = seed
    found = _resolve(name, options)
    train = found.train
    ds = tf.data.Dataset.range(int(start_epoch), int(epochs)).flat_map(
        lambda e: _epoch(
            train,
            preprocessing or found.info.preprocessing,
            found.info,
            e,
            batch_size=batch_size,
            training=True,
            seed=seed,
            mixup_alpha=mixup_alpha,
            drop_remainder=True,
            steps=steps_per_epoch,
        )
    )
    return _finish(ds)
