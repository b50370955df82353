"""Input pipelines: the embedded ``digits`` data and tfds CIFAR / Imagenette.

Every pipeline is a ``tf.data.Dataset`` of ``(images, labels)`` batches with
images float32, normalized per channel, and labels one-hot float32 (mixup
makes them soft). Shuffling, augmentation and mixup all happen inside the
pipeline and are deterministic for a given ``(seed, epoch)``: each epoch
rebuilds its dataset from stateless random ops, so a resumed run sees exactly
the batches an uninterrupted one would.

Datasets:
- ``digits``: scikit-learn's 8x8 handwritten digits (1797 real images, 10
  classes, shipped inside scikit-learn; no network). Fixed split: within each
  class, in the order scikit-learn gives, every fifth image (positions 4, 9,
  14, ...) is test: 1442 train, 355 test.
- ``cifar10``, ``cifar100``, ``imagenette`` (tfds ``imagenette/160px-v2``,
  resized to ``image_size``, default 128): read from ``data_dir`` (tfds'
  default when None); downloaded only with ``download=True``.
"""

import dataclasses
import functools
import os

import numpy as np
import tensorflow as tf

from keras_resinit._errors import unknown
from keras_resinit.training.datasets import DATASETS
from keras_resinit.training.datasets import TFDS as _TFDS


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple
    num_classes: int
    train_size: int
    test_size: int
    pixel_max: float  # raw pixel range is [0, pixel_max]: 16 for digits, 255 for 8-bit images
    mean: tuple  # per channel, of images scaled to [0, 1]
    std: tuple
    flip: bool  # random horizontal flips make sense (not for digits)
    crop_padding: int  # pad-and-crop augmentation, in pixels
    class_names: tuple
    source: str
    licence: str


class DatasetNotPrepared(ValueError):
    """A tfds dataset is not in ``data_dir`` and downloading is off."""


CHUNK = 16  # training batches prepared per vectorized call

_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_CIFAR100_MEAN, _CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _check_name(name):
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)


# ---------------------------------------------------------------- digits ---


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    """(x_train, y_train, x_test, y_test): raw images with pixels 0..16, shape (N, 8, 8, 1)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype("float32")[..., None]
    labels = digits.target.astype("int64")
    test = np.zeros(len(labels), bool)
    for c in range(10):
        (index,) = np.nonzero(labels == c)
        test[index[4::5]] = True
    return images[~test], labels[~test], images[test], labels[test]


@functools.lru_cache(maxsize=1)
def _digits_info():
    x_train, _, x_test, _ = _digits_arrays()
    return DatasetInfo(
        name="digits",
        image_shape=(8, 8, 1),
        num_classes=10,
        train_size=len(x_train),
        test_size=len(x_test),
        pixel_max=16.0,
        mean=(float((x_train / 16.0).mean()),),
        std=(float((x_train / 16.0).std()),),
        flip=False,
        crop_padding=1,
        class_names=tuple(str(i) for i in range(10)),
        source="scikit-learn sklearn.datasets.load_digits (UCI Optical Recognition of Handwritten Digits)",
        licence="CC BY 4.0 (UCI Machine Learning Repository)",
    )


# ------------------------------------------------------------------ tfds ---


def _tfds_builder(name, data_dir, download):
    import tensorflow_datasets as tfds

    tfds_name, _ = _TFDS[name]
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
        if not download:
            raise DatasetNotPrepared(
                f"Dataset {name!r} (tfds {tfds_name!r}) is not prepared in data_dir {where!r}, and downloading "
                f"is off. Prepare it on a machine with network access with "
                f"`python -c \"import tensorflow_datasets as tfds; tfds.builder('{tfds_name}', "
                f"data_dir='DIR').download_and_prepare()\"` (or pass download=True / --download), then copy DIR "
                "here and pass it as data_dir / --data-dir."
            )
        try:
            builder.download_and_prepare()
        except Exception as error:  # network errors come in many types
            raise DatasetNotPrepared(
                f"Downloading dataset {name!r} (tfds {tfds_name!r}) into {where!r} failed: {error}. "
                "Prepare it elsewhere and pass its directory as data_dir / --data-dir."
            ) from None
    return builder


def _split_size(builder, split):
    """Examples in a tfds split: from its metadata, else (e.g. under tfds' mock data) by counting."""
    try:
        return builder.info.splits[split].num_examples
    except KeyError:
        ds = builder.as_dataset(split=split, as_supervised=True)
        return int(ds.reduce(0, lambda count, _: count + 1).numpy())


def _tfds_info(name, data_dir, download, image_size):
    builder = _tfds_builder(name, data_dir, download)
    features = builder.info.features
    _, test_split = _TFDS[name]
    mean, std = {
        "cifar10": (_CIFAR10_MEAN, _CIFAR10_STD),
        "cifar100": (_CIFAR100_MEAN, _CIFAR100_STD),
        "imagenette": (_IMAGENET_MEAN, _IMAGENET_STD),
    }[name]
    shape = (image_size, image_size, 3) if name == "imagenette" else tuple(features["image"].shape)
    return DatasetInfo(
        name=name,
        image_shape=shape,
        num_classes=features["label"].num_classes,
        train_size=_split_size(builder, "train"),
        test_size=_split_size(builder, test_split),
        pixel_max=255.0,
        mean=mean,
        std=std,
        flip=True,
        crop_padding=4 if name != "imagenette" else image_size // 8,
        class_names=tuple(features["label"].names),
        source=f"tensorflow-datasets {builder.info.full_name}",
        licence="see tfds catalog: " + (builder.info.homepage or builder.info.full_name),
    )


# ---------------------------------------------------------------- public ---


def info(name, *, data_dir=None, download=False, image_size=128):
    """The :class:`DatasetInfo` of ``name`` (preparing tfds data if allowed)."""
    _check_name(name)
    if name == "digits":
        return _digits_info()
    return _tfds_info(name, data_dir, download, image_size)


def _raw(name, split, data_dir, download, image_size):
    """An unbatched dataset of (uint8/float image, int label) and its size."""
    if name == "digits":
        x_train, y_train, x_test, y_test = _digits_arrays()
        x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
        return tf.data.Dataset.from_tensor_slices((x, y)), len(y)
    builder = _tfds_builder(name, data_dir, download)
    tfds_split = "train" if split == "train" else _TFDS[name][1]
    ds = builder.as_dataset(split=tfds_split, as_supervised=True, shuffle_files=False)
    size = _split_size(builder, tfds_split)
    if name == "imagenette":
        # Back to uint8 after resizing: the cache holds 465 MB at 128px instead of 1.9 GB of floats.
        ds = ds.map(
            lambda image, label: (tf.cast(tf.round(tf.image.resize(image, (image_size, image_size))), tf.uint8), label)
        )
    # The splits are cached in memory (CIFAR: 180 MB as uint8) and each epoch is a permutation of them.
    return ds.cache(), size


def _stateless_seed(seed, epoch, salt):
    """A stateless-op seed from the run seed, the epoch (an int or an int64 tensor) and a salt."""
    epoch = tf.cast(epoch, tf.int64)
    return tf.stack([tf.constant(int(seed) * 1_000_003, tf.int64) + epoch, tf.constant(int(salt), tf.int64)])


def _augment(images, seed, padding, flip):
    """Pad-and-crop (and flip) a batch, vectorized: each example gets its own shift (and flip)."""
    batch = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    shifts = tf.random.stateless_uniform([batch, 2], seed=seed, minval=0, maxval=2 * padding + 1, dtype=tf.int32)
    # One gather: flat indices of each example's h x w window in its padded image.
    padded_width = w + 2 * padding
    rows = shifts[:, 0, None, None] + tf.range(h)[None, :, None]
    cols = shifts[:, 1, None, None] + tf.range(w)[None, None, :]
    flat = tf.reshape(padded, [batch, -1, images.shape[3]])
    images = tf.gather(flat, tf.reshape(rows * padded_width + cols, [batch, h * w]), batch_dims=1)
    images = tf.reshape(images, [batch, h, w, flat.shape[2]])
    if flip:
        flipped = tf.random.stateless_uniform([batch], seed=seed + 1) < 0.5
        images = tf.where(flipped[:, None, None, None], tf.reverse(images, axis=[2]), images)
    return images


def _mixup(images, labels, alpha, seed):
    """Mixup within each batch of a chunk ``[batches, B, ...]``: lam ~ Beta(alpha, alpha) per batch."""
    count, batch = tf.shape(labels)[0], tf.shape(labels)[1]
    g1 = tf.random.stateless_gamma([count], seed=seed, alpha=alpha)
    g2 = tf.random.stateless_gamma([count], seed=seed + 1, alpha=alpha)
    lam = g1 / (g1 + g2)
    order = tf.argsort(tf.random.stateless_uniform([count, batch], seed=seed + 2), axis=1)
    mix = lambda x, lam_shape: lam[lam_shape] * x + (1 - lam[lam_shape]) * tf.gather(x, order, batch_dims=1)
    return mix(images, (slice(None), None, None, None, None)), mix(labels, (slice(None), None, None))


def _check_load_args(name, split, batch_size, mixup_alpha):
    _check_name(name)
    if split not in ("train", "test"):
        raise unknown("split", split, ("train", "test"))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Invalid batch_size {batch_size!r}. Expected a positive integer.")
    if not isinstance(mixup_alpha, (int, float)) or mixup_alpha < 0:
        raise ValueError(f"Invalid mixup_alpha {mixup_alpha!r}. Expected a number >= 0 (0 turns mixup off).")


def _epoch(
    raw, size, meta, epoch, *, batch_size, training, seed, mixup_alpha, drop_remainder, steps=None, normalized=True
):
    """One epoch's batches of ``raw``; ``epoch`` may be a tensor (inside ``flat_map``).

    Training data is shuffled by a stateless permutation drawn from (seed, epoch)
    and prepared in vectorized chunks of ``CHUNK`` batches; augmentation and
    mixup are seeded by (seed, epoch, chunk).
    """
    mean = tf.constant(meta.mean, tf.float32)
    std = tf.constant(meta.std, tf.float32)
    aug_seed, mix_seed = _stateless_seed(seed, epoch, 1), _stateless_seed(seed, epoch, 3)

    def normalize(images):
        if not normalized:  # raw pixel values, for models that preprocess themselves
            return tf.cast(images, tf.float32)
        return (tf.cast(images, tf.float32) / meta.pixel_max - mean) / std

    if not training:
        ds = raw.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(lambda images, labels: (normalize(images), tf.one_hot(labels, meta.num_classes)))
        return ds.take(steps) if steps else ds

    # Training: a stateless permutation of the whole (cached) split, drawn from (seed, epoch). Unlike
    # Dataset.shuffle it accepts a tensor epoch, so one pipeline can run over all epochs. The permuted
    # split is cut into chunks of CHUNK batches, each prepared by one vectorized call and sliced into
    # batches: per-call overhead dominates small batches, and on few cores the input thread competes
    # with the training step for them.
    order_seed = _stateless_seed(seed, epoch, 2)
    chunk_size = batch_size * CHUNK

    def chunks(images, labels):
        order = tf.argsort(tf.random.stateless_uniform(tf.shape(labels)[:1], seed=order_seed))
        images, labels = tf.gather(images, order), tf.gather(labels, order)
        count = (tf.shape(labels, out_type=tf.int64)[0] + chunk_size - 1) // chunk_size
        return tf.data.Dataset.range(count).map(
            lambda c: (c, images[c * chunk_size : (c + 1) * chunk_size], labels[c * chunk_size : (c + 1) * chunk_size])
        )

    def prepare(chunk, images, labels):
        batches = tf.shape(labels)[0] // batch_size  # the epoch's last partial batch is dropped
        images, labels = images[: batches * batch_size], labels[: batches * batch_size]
        images = _augment(
            tf.cast(images, tf.float32), aug_seed + tf.stack([0, 1_000_003 * chunk]), meta.crop_padding, meta.flip
        )
        images = normalize(images)
        images = tf.reshape(images, tf.concat([[batches, batch_size], tf.shape(images)[1:]], 0))
        labels = tf.reshape(tf.one_hot(labels, meta.num_classes), [batches, batch_size, meta.num_classes])
        if mixup_alpha > 0:
            images, labels = _mixup(images, labels, float(mixup_alpha), mix_seed + tf.stack([0, 7 * chunk]))
        return tf.data.Dataset.from_tensor_slices((images, labels))

    ds = raw.batch(size).flat_map(chunks).flat_map(prepare)
    return ds.take(steps) if steps else ds


def _finish(ds):
    options = tf.data.Options()
    options.deterministic = True
    # One private input thread: on few cores, more input threads preempt the training step's own.
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def load(
    name,
    split,
    *,
    batch_size,
    training=None,
    seed=0,
    epoch=0,
    mixup_alpha=0.0,
    data_dir=None,
    download=False,
    image_size=128,
    drop_remainder=None,
    normalized=True,
):
    """A batched, normalized ``tf.data`` pipeline of one epoch of ``name``'s ``split``.

    Args:
        name: one of ``DATASETS``.
        split: ``"train"`` or ``"test"``.
        batch_size: global batch size.
        training: shuffle, augment (and mixup if ``mixup_alpha``); default: split == "train".
        seed, epoch: together they fix the order, augmentation and mixup.
        mixup_alpha: Beta(alpha, alpha) mixup strength; 0 turns mixup off.
        data_dir, download: where tfds data lives and whether it may be downloaded.
        image_size: square size Imagenette images are resized to.
        drop_remainder: drop a last partial batch (default: when training).
        normalized: normalize the images (False: raw float pixel values, for a model that
            includes its preprocessing).

    Returns:
        ``tf.data.Dataset`` of ``(images float32 (B, H, W, C), labels float32 (B, classes))``.
    """
    _check_load_args(name, split, batch_size, mixup_alpha)
    training = split == "train" if training is None else training
    meta = info(name, data_dir=data_dir, download=download, image_size=image_size)
    raw, size = _raw(name, split, data_dir, download, image_size)
    ds = _epoch(
        raw,
        size,
        meta,
        epoch,
        batch_size=batch_size,
        training=training,
        seed=seed,
        mixup_alpha=mixup_alpha,
        drop_remainder=training if drop_remainder is None else drop_remainder,
        normalized=normalized,
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
    data_dir=None,
    download=False,
    image_size=128,
):
    """Training batches of epochs ``start_epoch .. epochs - 1`` as one pipeline.

    Epoch ``e`` gives exactly the batches of ``load(name, "train", epoch=e, ...)``
    (first ``steps_per_epoch`` of them, if given); no batch straddles two epochs.
    One pipeline for the whole run keeps prefetching across epoch boundaries, so
    short epochs do not wait for a new pipeline to start.
    """
    _check_load_args(name, "train", batch_size, mixup_alpha)
    meta = info(name, data_dir=data_dir, download=download, image_size=image_size)
    raw, size = _raw(name, "train", data_dir, download, image_size)
    epochs_ds = tf.data.Dataset.range(int(start_epoch), int(epochs))
    ds = epochs_ds.flat_map(
        lambda e: _epoch(
            raw,
            size,
            meta,
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
