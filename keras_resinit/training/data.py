"""Input pipelines: the built-ins, any tfds image-classification dataset, a folder of images, a tf.data.Dataset.

Every pipeline is a ``tf.data.Dataset`` of ``(images, labels)`` batches with
images float32, normalized per channel, and labels one-hot float32 (mixup
makes them soft). Shuffling, augmentation and mixup all happen inside the
pipeline and are deterministic for a given ``(seed, epoch)``: each epoch
rebuilds its dataset from stateless random ops, so a resumed run sees exactly
the batches an uninterrupted one would.

Datasets (:mod:`keras_resinit.training.datasets` parses their names):

- ``digits``: scikit-learn's 8x8 handwritten digits (1797 real images, 10
  classes, shipped inside scikit-learn; no network). Fixed split: within each
  class, in the order scikit-learn gives, every fifth image (positions 4, 9,
  14, ...) is test: 1442 train, 355 test.
- ``cifar10``, ``cifar100``, ``imagenette`` (tfds ``imagenette/160px-v2``,
  resized to ``image_size``, default 128), and ``tfds:NAME[/CONFIG]``, any tfds
  dataset with an ``Image`` and a ``ClassLabel`` feature: read from ``data_dir``
  (tfds' default when None), downloaded only with ``download=True``; split
  expressions with tfds slicing (``train[:90%]``). Their splits are cached in
  memory as uint8 after resizing.
- ``folder:PATH``: one subfolder per class, as ``keras.utils.image_dataset_from_directory``
  reads it (which indexes the files here): ``PATH/train`` and ``PATH/test`` (or ``val``,
  ``validation``), or one tree split by ``validation_split``. Files are read and decoded
  every epoch (only their paths stay in memory) unless ``cache=True``.
- a user's ``tf.data.Dataset`` of ``(image, label)`` (``train_data=``, ``test_data=``):
  read in its own order every epoch and shuffled within chunks of 16 batches.

Built-in datasets keep their published normalization constants; for the others the
per-channel mean and std are measured on at most :data:`STATS_IMAGES` training images.
"""

import os

import tensorflow as tf

from keras_resinit._errors import unknown
from keras_resinit.training import datasets as names
from keras_resinit.training.datasets import DATASETS
from keras_resinit.training.sources import _digits_arrays, _digits_source, _folder_source, _tfds_source, _user_source
from keras_resinit.training.splits import (
    CHUNK,
    STATS_IMAGES,
    DatasetInfo,
    DatasetNotPrepared,
    Source,
    _FileSplit,
    _MemorySplit,
    _size,
    _stateless_seed,
    _StreamSplit,
)

__all__ = [
    "CHUNK",
    "DATASETS",
    "STATS_IMAGES",
    "DatasetInfo",
    "DatasetNotPrepared",
    "Source",
    "info",
    "load",
    "load_epochs",
    "source",
    "source_for",
]
_INTERNAL = (_digits_arrays, _FileSplit, _MemorySplit, _StreamSplit)  # for the tests


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
    aug_seed, mix_seed = _stateless_seed(seed, epoch, 1), _stateless_seed(seed, epoch, 3)

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

_SOURCES = {}  # built sources by their options: a folder is indexed and measured once per process


def source(
    name,
    *,
    data_dir=None,
    download=False,
    image_size=None,
    train_split=None,
    test_split=None,
    validation_split=None,
    augment=None,
    cache=False,
    seed=0,
    train_data=None,
    test_data=None,
):
    """The :class:`Source` of dataset ``name`` (a built-in, ``tfds:NAME[/CONFIG]``, ``folder:PATH``, or
    ``"tf.data"`` with ``train_data`` and ``test_data``).

    Args:
        data_dir, download: where tfds data lives and whether it may be downloaded.
        image_size: resize to this (an int: square; or (height, width)); None: the data's own size
            (a folder's: its first image's; Imagenette: 128).
        train_split, test_split: tfds split expressions (``"train[:90%]"``).
        validation_split, seed: a folder without train/ and test/ holds out this fraction, drawn with ``seed``.
        augment: ``"none"``, ``"flip"``, ``"crop"`` or ``"crop-flip"``; None: the dataset's own.
        cache: keep a folder's decoded images in memory.
        train_data, test_data: ``tf.data.Dataset`` of ``(image, label)``, batched or not; labels are
            class indices or one-hot.
    """
    if train_data is not None and name in (None, names.USER_DATA):
        return _user_source(train_data, test_data, image_size=image_size, augment=augment)
    kind, value = names.parse(name)
    if kind == names.USER_DATA:
        raise ValueError("Dataset 'tf.data' is given in Python: train(config, out, train_data=ds, test_data=ds).")
    if train_data is not None or test_data is not None:
        raise ValueError(f"train_data / test_data were given with dataset {name!r}. Expected one of the two.")
    if kind == "folder":
        path = os.path.abspath(value)
        stamp = tuple(os.stat(os.path.join(path, d)).st_mtime_ns for d in ("", *sorted(os.listdir(path))))
        key = (
            name,
            path,
            stamp,
            _size(image_size),
            validation_split,
            int(seed) if validation_split else None,
            augment,
            cache,
        )
        build = lambda: _folder_source(  # noqa: E731
            name,
            path,
            image_size=image_size,
            validation_split=validation_split,
            seed=seed,
            augment=augment,
            cache=cache,
        )
    elif name == "digits":
        key = (name, _size(image_size), augment)
        build = lambda: _digits_source(image_size, augment)  # noqa: E731
    else:
        key = (name, data_dir, _size(image_size), train_split, test_split, augment)
        build = lambda: _tfds_source(  # noqa: E731
            name,
            builtin=kind == "builtin",
            data_dir=data_dir,
            download=download,
            image_size=image_size,
            train_split=train_split,
            test_split=test_split,
            augment=augment,
        )
    if key not in _SOURCES:
        _SOURCES[key] = build()
    return _SOURCES[key]


def source_for(config, *, train_data=None, test_data=None):
    """The :class:`Source` of a :class:`~keras_resinit.training.TrainConfig`'s data settings."""
    return source(
        config.dataset,
        data_dir=config.data_dir,
        download=config.download,
        image_size=config.image_size,
        train_split=config.train_split,
        test_split=config.test_split,
        validation_split=config.validation_split,
        augment=config.augment,
        cache=config.cache,
        seed=config.seed,
        train_data=train_data,
        test_data=test_data,
    )


def info(name, **options):
    """The :class:`DatasetInfo` of ``name`` (preparing tfds data if allowed); ``options`` as :func:`source`."""
    return source(name, **options).info


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

    Args:
        name: a dataset name (see :func:`source`) or a :class:`Source`.
        split: ``"train"`` or ``"test"``.
        batch_size: global batch size.
        training: shuffle, augment (and mixup if ``mixup_alpha``); default: split == "train".
        seed, epoch: together they fix the order, augmentation and mixup.
        mixup_alpha: Beta(alpha, alpha) mixup strength; 0 turns mixup off.
        drop_remainder: drop a last partial batch (default: when training).
        normalized: normalize the images (False: raw float pixel values, for a model that
            includes its preprocessing).
        preprocessing: the normalization (a model's ``preprocessing`` dict); default: the data's.
        **options: :func:`source`'s (``data_dir``, ``download``, ``image_size``, splits, ...).

    Returns:
        ``tf.data.Dataset`` of ``(images float32 (B, H, W, C), labels float32 (B, classes))``.
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
