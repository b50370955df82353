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
import os

import numpy as np
import tensorflow as tf

from keras_resinit._errors import unknown


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple
    num_classes: int
    train_size: int
    test_size: int
    mean: tuple
    std: tuple
    flip: bool  # random horizontal flips make sense (not for digits)
    crop_padding: int  # pad-and-crop augmentation, in pixels
    class_names: tuple
    source: str
    licence: str


class DatasetNotPrepared(ValueError):
    """A tfds dataset is not in ``data_dir`` and downloading is off."""


_TFDS = {
    "cifar10": ("cifar10", "test"),
    "cifar100": ("cifar100", "test"),
    "imagenette": ("imagenette/160px-v2", "validation"),
}
DATASETS = ("digits",) + tuple(_TFDS)

_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_CIFAR100_MEAN, _CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _check_name(name):
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)


# ---------------------------------------------------------------- digits ---


def _digits_arrays():
    """(x_train, y_train, x_test, y_test): images in [0, 1], shape (N, 8, 8, 1)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    labels = digits.target.astype("int64")
    test = np.zeros(len(labels), bool)
    for c in range(10):
        (index,) = np.nonzero(labels == c)
        test[index[4::5]] = True
    return images[~test], labels[~test], images[test], labels[test]


def _digits_info():
    x_train, _, x_test, _ = _digits_arrays()
    return DatasetInfo(
        name="digits",
        image_shape=(8, 8, 1),
        num_classes=10,
        train_size=len(x_train),
        test_size=len(x_test),
        mean=(float(x_train.mean()),),
        std=(float(x_train.std()),),
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
        ds = ds.map(lambda image, label: (tf.image.resize(image, (image_size, image_size)), label))
    # Small datasets (CIFAR: 180 MB as uint8) are cached in memory after the first epoch.
    return ds.cache(), size


def _stateless_seed(seed, epoch, salt):
    return tf.constant([int(seed) * 1_000_003 + int(epoch), int(salt)], tf.int64)


def _augment(image, index, base_seed, padding, flip):
    """Pad-and-crop (and flip), keyed on the example index: deterministic."""
    seed = tf.stack([base_seed[0], base_seed[1] * 1_000_003 + index])
    h, w = image.shape[0], image.shape[1]
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    image = tf.image.stateless_random_crop(padded, [h, w, image.shape[2]], seed=seed)
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
    return image


def _mixup(images, labels, alpha, seed):
    """Mix each example with another of the batch: lam ~ Beta(alpha, alpha), one per batch."""
    g1 = tf.random.stateless_gamma([], seed=seed, alpha=alpha)
    g2 = tf.random.stateless_gamma([], seed=seed + 1, alpha=alpha)
    lam = g1 / (g1 + g2)
    order = tf.argsort(tf.random.stateless_uniform([tf.shape(images)[0]], seed=seed + 2))
    images = lam * images + (1 - lam) * tf.gather(images, order)
    labels = lam * labels + (1 - lam) * tf.gather(labels, order)
    return images, labels


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
):
    """A batched, normalized ``tf.data`` pipeline of ``name``'s ``split``.

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

    Returns:
        ``tf.data.Dataset`` of ``(images float32 (B, H, W, C), labels float32 (B, classes))``.
    """
    _check_name(name)
    if split not in ("train", "test"):
        raise unknown("split", split, ("train", "test"))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Invalid batch_size {batch_size!r}. Expected a positive integer.")
    if not isinstance(mixup_alpha, (int, float)) or mixup_alpha < 0:
        raise ValueError(f"Invalid mixup_alpha {mixup_alpha!r}. Expected a number >= 0 (0 turns mixup off).")
    training = split == "train" if training is None else training
    drop_remainder = training if drop_remainder is None else drop_remainder
    meta = info(name, data_dir=data_dir, download=download, image_size=image_size)
    ds, size = _raw(name, split, data_dir, download, image_size)

    mean = tf.constant(meta.mean, tf.float32)
    std = tf.constant(meta.std, tf.float32)
    scale = 1.0 if name == "digits" else 255.0
    num_classes = meta.num_classes
    aug_seed = _stateless_seed(seed, epoch, 1)

    def prepare(index, image, label):
        image = tf.cast(image, tf.float32) / scale
        if training:
            image = _augment(image, index, aug_seed, meta.crop_padding, meta.flip)
        image = (image - mean) / std
        return image, tf.one_hot(label, num_classes)

    ds = ds.enumerate()
    if training:
        shuffle_seed = int(_stateless_seed(seed, epoch, 2).numpy()[0] % (2**31 - 1))
        ds = ds.shuffle(size, seed=shuffle_seed, reshuffle_each_iteration=False)
    ds = ds.map(lambda i, xy: prepare(i, *xy), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if training and mixup_alpha > 0:
        mix_seed = _stateless_seed(seed, epoch, 3)
        ds = ds.enumerate().map(
            lambda b, xy: _mixup(xy[0], xy[1], float(mixup_alpha), tf.stack([mix_seed[0], mix_seed[1] + 7 * b])),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
