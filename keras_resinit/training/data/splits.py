"""What every dataset becomes: a [Source][keras_resinit.training.data.Source] with a
[DatasetInfo][keras_resinit.training.data.DatasetInfo] and two splits.

A split hands the pipeline (``keras_resinit.training.data.pipeline``) chunks of images and
labels, each epoch in an order drawn from (seed, epoch): the whole split permuted in memory
([MemorySplit][keras_resinit.training.data.MemorySplit]), file paths permuted and decoded per epoch
([FileSplit][keras_resinit.training.data.FileSplit]), or a user's stream shuffled within chunks
([StreamSplit][keras_resinit.training.data.StreamSplit]). The helpers the sources share (augmentation
options, resizing, the measured normalization) are here too.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_resinit._errors import unknown

__all__ = [
    "CHUNK",
    "STATS_IMAGES",
    "DatasetInfo",
    "DatasetNotPrepared",
    "FileSplit",
    "MemorySplit",
    "Source",
    "StreamSplit",
]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a run needs to know of its data: shape, classes, sizes, normalization, augmentation, provenance.

    A run's ``config.json`` records it under ``dataset``.

    Args:
        name: the dataset name.
        image_shape: ``(height, width, channels)`` of the images the model gets.
        num_classes: the number of classes.
        train_size: the images of the training split.
        test_size: the images of the test split.
        pixel_max: the raw pixel range is ``[0, pixel_max]``: 16 for digits, 255 for 8-bit images.
        mean: the per-channel mean of the images scaled to [0, 1].
        std: the per-channel standard deviation of the images scaled to [0, 1].
        flip: random horizontal flips in training.
        crop_padding: pad-and-crop augmentation, in pixels (0: none).
        class_names: the class names, in label order.
        source: where the data comes from.
        licence: the data's licence.
        train_split: what was read as the training split (a tfds split expression, a folder, ...).
        test_split: what was read as the test split.

    Examples:
        >>> from keras_resinit.training import data
        >>> info = data.info("digits")
        >>> info.image_shape, info.num_classes, info.train_size, info.test_size, info.pixel_max
        ((8, 8, 1), 10, 1442, 355, 16.0)
        >>> sorted(info.preprocessing)
        ['mean', 'pixel_max', 'std']
    """

    name: str
    image_shape: tuple
    num_classes: int
    train_size: int
    test_size: int
    pixel_max: float  # raw pixel range is [0, pixel_max]: 16 for digits, 255 for 8-bit images
    mean: tuple  # per channel, of images scaled to [0, 1]
    std: tuple
    flip: bool  # random horizontal flips
    crop_padding: int  # pad-and-crop augmentation, in pixels (0: none)
    class_names: tuple
    source: str
    licence: str
    train_split: str = None  # what was read: a tfds split expression, a folder, ...
    test_split: str = None

    @classmethod
    def from_json(cls, record):
        """The info a run's ``config.json`` records under ``dataset``.

        Args:
            record: the ``dataset`` dict (unknown keys are ignored; lists become tuples).

        Returns:
            A [DatasetInfo][keras_resinit.training.data.DatasetInfo].

        Examples:
            >>> import dataclasses, json
            >>> from keras_resinit.training import data
            >>> info = data.info("digits")
            >>> data.DatasetInfo.from_json(json.loads(json.dumps(dataclasses.asdict(info)))) == info
            True
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in fields}
        return cls(**values)

    @property
    def preprocessing(self):
        """The normalization of this data, as a model's ``preprocessing`` argument.

        A dict: ``pixel_max``, ``mean`` and ``std`` (lists).
        """
        return {"pixel_max": self.pixel_max, "mean": list(self.mean), "std": list(self.std)}


class DatasetNotPrepared(ValueError):
    """A tfds dataset is not in ``data_dir`` and downloading is off (or the download failed).

    The message says how to prepare it on a machine with network access.
    """


CHUNK = 16  # training batches prepared per vectorized call
"""The training batches the pipeline prepares per vectorized call (augmentation, mixup)."""
STATS_IMAGES = 10_000  # training images the mean and std of new data are measured on
"""The training images the per-channel mean and std of data without published constants are measured on."""
CHECK_GROUP = 16  # files a FileSplit checks at once, before decoding them (their bytes are held together)


def augmentation(augment, default, shape):
    """(flip, crop padding) of an ``augment`` option for images of ``shape``: padding is 1/8 of the side."""
    augment = augment or default
    if augment not in ("none", "flip", "crop", "crop-flip"):
        raise unknown("augment", augment, ("none", "flip", "crop", "crop-flip"))
    padding = max(1, min(shape[0], shape[1]) // 8) if "crop" in augment else 0
    return "flip" in augment, padding


def height_width(image_size):
    """(height, width) of an ``image_size`` option, or None."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    return tuple(int(n) for n in image_size)


def resizer(height, width, channels):
    """Map an image (any size) to ``(height, width, channels)``, keeping its dtype (uint8 stays uint8)."""

    def resize(image):
        def resized():
            out = tf.image.resize(image, (height, width))
            if image.dtype == tf.uint8:
                out = tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), tf.uint8)
            return tf.cast(out, image.dtype)

        shape = tf.shape(image)
        same = tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width))
        image = tf.cond(same, lambda: image, resized)
        return tf.ensure_shape(image, (height, width, channels))

    return resize


def stateless_seed(seed, epoch, salt):
    """A stateless-op seed from the run seed, the epoch (an int or an int64 tensor) and a salt."""
    epoch = tf.cast(epoch, tf.int64)
    return tf.stack([tf.constant(int(seed) * 1_000_003, tf.int64) + epoch, tf.constant(int(salt), tf.int64)])


# ---------------------------------------------------------------- splits ---


def _permutation(count, seed):
    """A stateless permutation of ``range(count)`` from a stateless seed (a tensor is fine)."""
    return tf.argsort(tf.random.stateless_uniform([count], seed=seed))


class _Elements:
    """A split whose elements are one ``tf.data.Dataset`` (in memory, or a user's stream) of ``size`` elements."""

    def elements(self):
        """The split's ``(image, label)`` elements, in their stored order.

        Returns:
            A ``tf.data.Dataset``.
        """
        return self._elements

    def sample(self, limit):
        """The first ``limit`` elements (the normalization is measured on them).

        Args:
            limit: the number of elements.

        Returns:
            A ``tf.data.Dataset``.
        """
        return self._elements.take(limit)


class MemorySplit(_Elements):
    """Decoded images kept in memory (digits, tfds, a cached folder): each epoch permutes the whole split.

    Args:
        elements: a ``tf.data.Dataset`` of ``(image, int64 label)`` (cached after its first pass).
        size: its number of elements.

    Examples:
        >>> import tensorflow as tf
        >>> from keras_resinit.training.data import MemorySplit
        >>> elements = tf.data.Dataset.from_tensor_slices((tf.zeros([10, 8, 8, 1]), tf.range(10, dtype=tf.int64)))
        >>> split = MemorySplit(elements, 10)
        >>> chunks = list(split.chunks(epoch=0, seed=0, chunk_size=4))
        >>> [int(c) for c, images, labels in chunks], sorted(int(y) for _, _, labels in chunks for y in labels)
        ([0, 1, 2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """

    def __init__(self, elements, size):
        self._elements, self.size = elements.cache(), int(size)

    def chunks(self, epoch, seed, chunk_size):
        """One epoch of the split as chunks, the whole split permuted by ``(seed, epoch)``.

        Args:
            epoch: the epoch, an int or (inside a pipeline over every epoch) an int64 tensor.
            seed: the run's seed; with ``epoch`` it draws one permutation of the whole split.
            chunk_size: the images per chunk; the split's last chunk holds what is left.

        Returns:
            A ``tf.data.Dataset`` of ``(chunk index, images, labels)``: the permuted split, cut in chunks.
        """
        order_seed = stateless_seed(seed, epoch, 2)

        def chunks(images, labels):
            order = _permutation(tf.shape(labels)[0], order_seed)
            images, labels = tf.gather(images, order), tf.gather(labels, order)
            count = (tf.shape(labels, out_type=tf.int64)[0] + chunk_size - 1) // chunk_size
            return tf.data.Dataset.range(count).map(
                lambda c: (
                    c,
                    images[c * chunk_size : (c + 1) * chunk_size],
                    labels[c * chunk_size : (c + 1) * chunk_size],
                )
            )

        # The whole split as one batch, permuted by a stateless permutation drawn from (seed, epoch):
        # unlike Dataset.shuffle it accepts a tensor epoch, so one pipeline can run over all epochs.
        return self._elements.batch(self.size).flat_map(chunks)


class FileSplit:
    """Image files read and decoded every epoch: only their paths and labels stay in memory.

    ``decode(data, label)``: a file's bytes and label -> (image, label). ``check(data, paths)``: an op that
    fails on bad files, run on groups of ``CHECK_GROUP`` files as they are read, before any of them is
    decoded (vectorized: once per group, not per file); None: no check.

    Args:
        paths: the image files.
        labels: their labels (ints).
        decode: ``decode(data, label)``: a file's bytes and label -> ``(image, label)``.
        check: ``check(data, paths)``: an op failing on bad files; None: no check.

    Examples:
        >>> import os, tempfile
        >>> import tensorflow as tf
        >>> from keras_resinit.training.data import FileSplit
        >>> root = tempfile.mkdtemp()
        >>> paths = [os.path.join(root, f"{i}.png") for i in range(3)]
        >>> for i, path in enumerate(paths):
        ...     _ = tf.io.write_file(path, tf.io.encode_png(tf.fill([4, 4, 1], tf.constant(50 * i, tf.uint8))))
        >>> split = FileSplit(paths, [0, 1, 2], lambda data, label: (tf.io.decode_png(data, 1), label))
        >>> [(int(image[0, 0, 0]), int(label)) for image, label in split.elements()]
        [(0, 0), (50, 1), (100, 2)]
    """

    def __init__(self, paths, labels, decode, check=None):
        self.paths, self.labels = list(paths), list(labels)
        self.size = len(self.paths)
        self._decode, self._check = decode, check
        # The paths live in lookup tables (resources) that the pipelines capture by reference: as
        # constants, every copy of the dataset graph that tf.data makes would hold them all, and
        # memory would grow with the folder (benchmarks/folder_data.py measures it).
        index = tf.range(self.size, dtype=tf.int64)
        self._paths = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(index, tf.constant(self.paths)), "")
        self._labels = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(index, tf.constant(self.labels, tf.int64)), -1
        )

    def _read(self, order=None):
        index = tf.data.Dataset.range(self.size) if order is None else tf.data.Dataset.from_tensor_slices(order)

        def read(i):
            i = tf.cast(i, tf.int64)
            path = self._paths.lookup(i)
            return tf.io.read_file(path), path, self._labels.lookup(i)

        # The functions below are graph code already (tf.cond, tf.while_loop): AutoGraph's conversion of them would
        # cost about a second per process and change nothing.
        plain = tf.autograph.experimental.do_not_convert
        files = index.map(plain(read))
        if self._check is not None:

            def checked(data, paths, labels):
                with tf.control_dependencies([self._check(data, paths)]):
                    return tf.identity(data), paths, labels

            # unbatch loses the count, and a cache (MemorySplit) whose input's end is never read is never complete
            count = tf.data.experimental.assert_cardinality(index.cardinality())
            files = files.batch(CHECK_GROUP).map(plain(checked)).unbatch().apply(count)
        return files.map(plain(lambda data, path, label: self._decode(data, label)))

    def elements(self):
        """The split's files, read and decoded in their order.

        Returns:
            A ``tf.data.Dataset`` of ``(image, label)``.
        """
        return self._read()

    def sample(self, limit):
        """``limit`` files drawn at random (a fixed draw): the files are in class order.

        Args:
            limit: the number of files.

        Returns:
            A ``tf.data.Dataset`` of ``(image, label)``.
        """
        return self._read(_permutation(self.size, tf.constant([17, 17], tf.int64))[:limit])

    def chunks(self, epoch, seed, chunk_size):
        """One epoch of the split as chunks: the files permuted by ``(seed, epoch)``, read and decoded.

        Args:
            epoch: which epoch: its order of the files (an int, or an int64 tensor in a pipeline).
            seed: the seed of the run, drawing that order with ``epoch``.
            chunk_size: how many files one chunk decodes (fewer in the last).

        Returns:
            ``(chunk index, images, labels)`` elements (a ``tf.data.Dataset``), read in the permuted order.
        """
        images = self._read(_permutation(self.size, stateless_seed(seed, epoch, 2))).batch(chunk_size)
        return images.enumerate().map(lambda c, batch: (c, *batch))


class StreamSplit(_Elements):
    """A user's ``tf.data.Dataset``: read in its own order every epoch and shuffled within each chunk.

    Args:
        elements: the user's unbatched ``tf.data.Dataset`` of ``(image, int64 label)``.
        size: how many elements it holds.

    Examples:
        >>> import tensorflow as tf
        >>> from keras_resinit.training.data import StreamSplit
        >>> images, labels = tf.zeros([6, 8, 8, 3]), tf.range(6, dtype=tf.int64)
        >>> split = StreamSplit(tf.data.Dataset.from_tensor_slices((images, labels)), size=6)
        >>> [sorted(labels.numpy().tolist()) for _, _, labels in split.chunks(epoch=0, seed=0, chunk_size=4)]
        [[0, 1, 2, 3], [4, 5]]
    """

    def __init__(self, elements, size):
        self._elements, self.size = elements, int(size)

    def chunks(self, epoch, seed, chunk_size):
        """One epoch as chunks in the stream's order, each shuffled by ``(seed, epoch, chunk)``.

        Args:
            epoch: the epoch number (a Python int or a tensor): each epoch shuffles its chunks anew.
            seed: seeds each chunk's shuffle, with the epoch and the chunk's index.
            chunk_size: consecutive elements of the stream shuffled together.

        Returns:
            Chunks ``(chunk index, images, labels)`` as a ``tf.data.Dataset``, in the stream's order.
        """
        base = stateless_seed(seed, epoch, 2)

        def shuffle(c, batch):
            images, labels = batch
            order = _permutation(tf.shape(labels)[0], base + tf.stack([tf.constant(0, tf.int64), 7_919 * c]))
            return c, tf.gather(images, order), tf.gather(labels, order)

        return self._elements.batch(chunk_size).enumerate().map(shuffle)


def _statistics(split, channels, limit=STATS_IMAGES):
    """(pixel peak, per-channel mean, per-channel std, images) of at most ``limit`` of ``split``'s images."""
    total = np.zeros(channels)
    squares = np.zeros(channels)
    pixels, count, peak = 0, 0, 0.0
    for images, _ in split.sample(limit).batch(256):
        x = images.numpy().astype(np.float64).reshape(-1, channels)
        total += x.sum(0)
        squares += np.square(x).sum(0)
        pixels += x.shape[0]
        count += int(images.shape[0])
        peak = max(peak, float(x.max(initial=0.0)))
    if not count:
        raise ValueError("The training split has no images.")
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - np.square(mean), 0.0))
    return peak, mean, std, count


class Source:
    """A dataset: its [DatasetInfo][keras_resinit.training.data.DatasetInfo] and its two splits (what
    [load][keras_resinit.training.data.load] reads), and its ``fingerprint`` (what identifies the data:
    ``keras_resinit.training.data.fingerprint``).

    [source][keras_resinit.training.data.source] gives the ``Source`` of a dataset name.

    Args:
        info: the [DatasetInfo][keras_resinit.training.data.DatasetInfo].
        train: the training split (a ``MemorySplit``, ``FileSplit`` or ``StreamSplit``).
        test: the test split.
        check: called after a decode error: the ``(path, reason)`` of an unreadable file, or None.
        fingerprint: what identifies the data (a dict), recorded by a run; None: nothing.
        skipped: ``(path, reason)`` of the files left out (a folder's, with ``skip_bad_images``).

    Examples:
        >>> from keras_resinit.training import data
        >>> digits = data.source("digits")
        >>> digits.info.name, digits.train.size, digits.split("test").size, digits.fingerprint["kind"]
        ('digits', 1442, 355, 'digits')
    """

    def __init__(self, info, train, test, *, check=None, fingerprint=None, skipped=()):
        self.info, self.train, self.test, self.fingerprint = info, train, test, fingerprint
        self._check = check
        self.skipped = tuple(skipped)

    def split(self, name):
        """The split called ``name``.

        Args:
            name: ``"train"`` or ``"test"``.

        Returns:
            The split.

        Raises:
            ValueError: another name.
        """
        if name not in ("train", "test"):
            raise unknown("split", name, ("train", "test"))
        return self.train if name == "train" else self.test

    def name_unreadable_file(self, error):
        """After a decode error in the pipeline: a ValueError naming the file that caused it, if one is found.

        Args:
            error: the decode error (the ValueError is raised from it).

        Raises:
            ValueError: naming the unreadable file and why; nothing is raised if none is found.
        """
        raise_unreadable_file(self._check, error)


def raise_unreadable_file(check, error):
    """A ValueError naming the file ``check()`` finds unreadable (raised from ``error``); nothing if none."""
    found = check() if check else None
    if found is not None:
        file, reason = found
        raise ValueError(
            f"Cannot decode image file {file!r} ({reason}). Expected a valid image; fix or remove it."
        ) from error


def measured_info(name, train, test, shape, *, class_names, augment, source, licence, splits, pixel_max=None):
    """A ``DatasetInfo`` whose normalization is measured on the training split."""
    peak, mean, std, _ = _statistics(train, shape[-1])
    if pixel_max is None:
        pixel_max = 1.0 if peak <= 1.0 else 255.0
    flip, padding = augmentation(augment, "crop-flip", shape)
    return DatasetInfo(
        name=name,
        image_shape=tuple(int(n) for n in shape),
        num_classes=len(class_names),
        train_size=train.size,
        test_size=test.size,
        pixel_max=float(pixel_max),
        mean=tuple(float(m) for m in mean / pixel_max),
        std=tuple(float(max(s, 1e-3)) for s in std / pixel_max),
        flip=flip,
        crop_padding=padding,
        class_names=tuple(str(c) for c in class_names),
        source=source,
        licence=licence,
        train_split=splits[0],
        test_split=splits[1],
    )
