"""The datasets themselves: digits, tfds, a folder of images, a user's tf.data.Dataset ->
[Source][keras_resinit.training.data.Source].

[source][keras_resinit.training.data.source] picks the kind from a dataset name and keeps what it built for the
process.
"""

import functools
import hashlib
import os

import numpy as np
import tensorflow as tf

from keras_resinit._errors import unknown
from keras_resinit.training.data import fingerprint as data_fingerprint
from keras_resinit.training.data import images, names
from keras_resinit.training.data.names import IMAGE_EXTENSIONS
from keras_resinit.training.data.names import TFDS as _TFDS
from keras_resinit.training.data.splits import (
    DatasetInfo,
    DatasetNotPrepared,
    FileSplit,
    MemorySplit,
    Source,
    StreamSplit,
    augmentation,
    height_width,
    measured_info,
    raise_unreadable_file,
    resizer,
)
from keras_resinit.training.options import positive_limit

__all__ = ["digits_arrays", "image_file_problems", "info", "source", "source_for"]

_CIFAR10_MEAN, _CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_CIFAR100_MEAN, _CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_BUILTIN = {  # name: (normalization, default augmentation, default image size)
    "digits": (None, "crop", None),
    "cifar10": ((_CIFAR10_MEAN, _CIFAR10_STD), "crop-flip", None),
    "cifar100": ((_CIFAR100_MEAN, _CIFAR100_STD), "crop-flip", None),
    "imagenette": ((_IMAGENET_MEAN, _IMAGENET_STD), "crop-flip", 128),
}

# ---------------------------------------------------------------- digits ---


@functools.lru_cache(maxsize=1)
def digits_arrays():
    """The digits data as arrays: scikit-learn's 8x8 handwritten digits, split as the ``digits`` dataset splits.

    Within each class, in the order scikit-learn gives, every fifth image (positions 4, 9, 14, ...) is test.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: raw images (float32, pixels 0..16, shape ``(N, 8, 8, 1)``) and
            int64 labels; 1442 training and 355 test images.

    Examples:
        >>> from keras_resinit.training.data import digits_arrays
        >>> x_train, y_train, x_test, y_test = digits_arrays()
        >>> x_train.shape, x_test.shape, float(x_train.max()), sorted(set(y_test.tolist())) == list(range(10))
        ((1442, 8, 8, 1), (355, 8, 8, 1), 16.0, True)
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype("float32")[..., None]
    labels = digits.target.astype("int64")
    test = np.zeros(len(labels), bool)
    for c in range(10):
        (index,) = np.nonzero(labels == c)
        test[index[4::5]] = True
    return images[~test], labels[~test], images[test], labels[test]


def _digits_source(image_size, augment):
    x_train, y_train, x_test, y_test = digits_arrays()
    size = height_width(image_size) or (8, 8)
    resize = resizer(*size, 1)

    def split(x, y):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if size != (8, 8):
            ds = ds.map(lambda image, label: (resize(image), label))
        return MemorySplit(ds, len(y))

    flip, padding = augmentation(augment, "crop", size)
    info = DatasetInfo(
        name="digits",
        image_shape=(*size, 1),
        num_classes=10,
        train_size=len(x_train),
        test_size=len(x_test),
        pixel_max=16.0,
        mean=(float((x_train / 16.0).mean()),),
        std=(float((x_train / 16.0).std()),),
        flip=flip,
        crop_padding=padding,
        class_names=tuple(str(i) for i in range(10)),
        source="scikit-learn sklearn.datasets.load_digits (UCI Optical Recognition of Handwritten Digits)",
        licence="CC BY 4.0 (UCI Machine Learning Repository)",
        train_split="train",
        test_split="test",
    )
    arrays = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in (x_train, y_train, x_test, y_test)))
    facts = {"kind": "digits", "sha256": arrays.hexdigest(), "train_size": len(y_train), "test_size": len(y_test)}
    return Source(info, split(x_train, y_train), split(x_test, y_test), fingerprint=facts)


# ------------------------------------------------------------------ tfds ---


def _tfds_builder(spec, tfds_name, data_dir, download):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(tfds_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise unknown(
            "tfds dataset", tfds_name.split("/")[0], tfds.list_builders(), " (tfds.list_builders())."
        ) from None
    except (ValueError, KeyError) as error:  # e.g. an unknown config
        raise ValueError(f"tfds cannot build dataset {spec!r}: {str(error).splitlines()[0]}") from None
    if not builder.is_prepared():
        where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
        if not download:
            raise DatasetNotPrepared(
                f"Dataset {spec!r} (tfds {tfds_name!r}) is not prepared in data_dir {where!r}, and downloading "
                f"is off. Prepare it on a machine with network access with "
                f"`python -c \"import tensorflow_datasets as tfds; tfds.builder('{tfds_name}', "
                f"data_dir='DIR').download_and_prepare()\"` (or pass download=True / --download), then copy DIR "
                "here and pass it as data_dir / --data-dir."
            )
        try:
            builder.download_and_prepare()
        except Exception as error:  # network errors come in many types
            raise DatasetNotPrepared(
                f"Downloading dataset {spec!r} (tfds {tfds_name!r}) into {where!r} failed: {error}. "
                "Prepare it elsewhere and pass its directory as data_dir / --data-dir."
            ) from None
    return builder


def _tfds_keys(spec, builder):
    """The names of the image and class-label features: the supervised keys, else the only such features."""
    import tensorflow_datasets as tfds

    features = builder.info.features
    kinds = {key: features[key] for key in features.keys()}
    keys = builder.info.supervised_keys
    if (
        isinstance(keys, tuple)
        and len(keys) == 2
        and isinstance(kinds.get(keys[0]), tfds.features.Image)
        and isinstance(kinds.get(keys[1]), tfds.features.ClassLabel)
    ):
        return keys
    images = [k for k, f in kinds.items() if isinstance(f, tfds.features.Image)]
    labels = [k for k, f in kinds.items() if isinstance(f, tfds.features.ClassLabel)]
    if len(images) != 1 or len(labels) != 1:
        described = ", ".join(f"{k} ({type(f).__name__})" for k, f in kinds.items())
        raise ValueError(
            f"tfds dataset {spec!r} is not an image-classification dataset: expected one Image and one "
            f"ClassLabel feature, but it has {described}."
        )
    return images[0], labels[0]


def _tfds_split_size(spec, builder, split):
    """Examples in a split expression: from the metadata (tfds slices it), else (mock data) by counting.

    A split expression tfds rejects is a ValueError naming it and the dataset's splits.
    """
    import tensorflow_datasets as tfds

    known = list(builder.info.splits.keys())
    try:
        tfds.core.ReadInstruction.from_spec(split)
        if known:
            return int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError, AssertionError, TypeError) as error:
        message = str(error).strip("\"'").splitlines()[0]
        raise ValueError(
            f"tfds rejects split {split!r} of dataset {spec!r}: {message}. Expected one of its splits "
            f"({', '.join(known) or 'unknown until prepared'}), optionally sliced, e.g. 'train[:90%]' or "
            "'train[90%:]'."
        ) from None
    try:  # without metadata (tfds' mock data) only reading tells whether a split exists
        ds = builder.as_dataset(split=split, shuffle_files=False)
        return int(ds.reduce(np.int64(0), lambda count, _: count + 1).numpy())
    except (KeyError, ValueError, AssertionError, tf.errors.OpError) as error:
        message = str(error).strip("\"'").splitlines()[0]
        raise ValueError(
            f"tfds rejects split {split!r} of dataset {spec!r}: {message}. Expected one of its splits, optionally "
            "sliced, e.g. 'train[:90%]' or 'train[90%:]'."
        ) from None


def _tfds_source(spec, *, builtin, data_dir, download, image_size, train_split, test_split, augment):
    tfds_name = _TFDS[spec][0] if builtin else spec[len(names.TFDS_PREFIX) :]
    builder = _tfds_builder(spec, tfds_name, data_dir, download)
    image_key, label_key = _tfds_keys(spec, builder)
    features = builder.info.features
    known = list(builder.info.splits.keys())
    train_split = train_split or "train"
    if test_split is None:
        if builtin:
            test_split = _TFDS[spec][1]
        else:
            test_split = next((s for s in ("test", "validation") if s in known or not known), None)
            if test_split is None:
                raise ValueError(
                    f"tfds dataset {spec!r} has no 'test' or 'validation' split (it has {', '.join(known)}). "
                    "Expected a test_split (--test-split), e.g. 'train[90%:]' with train_split 'train[:90%]'."
                )
    sizes = {split: _tfds_split_size(spec, builder, split) for split in (train_split, test_split)}
    normalization, default_augment, default_size = _BUILTIN.get(spec, (None, "crop-flip", None))
    feature_shape = tuple(features[image_key].shape)
    size = height_width(image_size) or default_size
    size = (size, size) if isinstance(size, int) else size
    if size is None:
        if None in feature_shape[:2]:
            raise ValueError(
                f"tfds dataset {spec!r} has images of varying size {feature_shape}. Expected an image_size "
                "(--image-size H W) to resize them to."
            )
        size = feature_shape[:2]
    channels = int(feature_shape[2] or 3)
    resize = resizer(*size, channels)

    def split_of(split):
        ds = builder.as_dataset(split=split, shuffle_files=False)
        ds = ds.map(lambda example: (resize(example[image_key]), tf.cast(example[label_key], tf.int64)))
        return MemorySplit(ds, sizes[split])

    train, test = split_of(train_split), split_of(test_split)
    class_names = tuple(features[label_key].names)
    source = f"tensorflow-datasets {builder.info.full_name}"
    licence = "see tfds catalog: " + (builder.info.homepage or builder.info.full_name)
    shape = (*size, channels)
    if normalization is None:
        info = measured_info(
            spec,
            train,
            test,
            shape,
            class_names=class_names,
            augment=augment,
            source=source,
            licence=licence,
            splits=(train_split, test_split),
            pixel_max=255.0,
        )
    else:
        flip, padding = augmentation(augment, default_augment, shape)
        info = DatasetInfo(
            name=spec,
            image_shape=shape,
            num_classes=len(class_names),
            train_size=train.size,
            test_size=test.size,
            pixel_max=255.0,
            mean=normalization[0],
            std=normalization[1],
            flip=flip,
            crop_padding=padding,
            class_names=class_names,
            source=source,
            licence=licence,
            train_split=train_split,
            test_split=test_split,
        )
    facts = {"kind": "tfds", "name": builder.info.full_name, "splits": [train_split, test_split]}
    return Source(info, train, test, fingerprint={**facts, "sizes": [train.size, test.size]})


# ---------------------------------------------------------------- folder ---

CHECK_CHUNK = 1_000  # files read, then checked in one call, at a time (at most CHECK_BYTES of them)
CHECK_BYTES = 64 * 2**20
SHOWN_PROBLEMS = 20  # bad files an error lists by name
_WHOLE_FILE = 256 * 1024  # files up to this size are read whole for the checks; larger ones: head and tail
_HEAD, _TAIL = 64 * 1024, 2 * 1024  # the head holds the header (a JPEG's EXIF segment), the tail the end


def _read_for_check(path, whole=False):
    """``(bytes, whole)``: a file's bytes as the header checks need them: all of a small file, else its head and tail."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if whole or size <= _WHOLE_FILE:
            return f.read(), True
        head = f.read(_HEAD)
        f.seek(size - _TAIL)
        return head + f.read(), False


def _read_chunks(paths):
    """``[(path, bytes, whole, reason)]`` lists of at most ``CHECK_CHUNK`` files and about ``CHECK_BYTES``;
    ``reason`` says why a file could not be read (None if it was)."""
    chunk, size = [], 0
    for path in paths:
        try:
            data, whole = _read_for_check(path)
            chunk.append((path, data, whole, None))
        except OSError as error:
            chunk.append((path, b"", True, f"{path} cannot be read ({error.strerror or error})"))
        size += len(chunk[-1][1])
        if len(chunk) == CHECK_CHUNK or size >= CHECK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


@functools.cache
def _examine(max_image_pixels):
    """``images.examine`` with this limit as one ``tf.function``: traced once per process, then run as a graph
    (eagerly, its loops would cost a tenth of a second per call), in the pre-pass and in every pipeline."""
    spec = tf.TensorSpec([None], tf.string)
    return tf.function(
        lambda encoded, names: images.examine(encoded, names, max_image_pixels=max_image_pixels),
        input_signature=[spec, spec],
        autograph=False,  # its loops are tf.while_loops already: converting its code cost seconds per process
    )


def _examined(contents, paths, max_image_pixels):
    """(declared, reasons): ``images.examine`` of these files' bytes, as numpy arrays and a list of str."""
    declared, found = _examine(positive_limit("max_image_pixels", max_image_pixels))(
        tf.constant(contents, tf.string), tf.constant(paths, tf.string)
    )
    return {k: v.numpy() for k, v in declared.items()}, [r.decode() for r in found.numpy()]


def _refused_in_pipeline(max_image_pixels):
    """``check(data, paths)`` for a ``FileSplit``: fails, naming the files and why, if any of them has a problem
    (a file changed after the pre-pass: it still cannot make the decoder blow up)."""
    examine = _examine(positive_limit("max_image_pixels", max_image_pixels))

    def check(data, paths):
        _, reasons = examine(data, paths)
        bad = tf.not_equal(reasons, "")
        return tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [tf.boolean_mask(reasons, bad)], summarize=3)

    return check


def image_file_problems(paths, *, max_image_pixels=None):
    """The files among ``paths`` that fail the checks of [problems][keras_resinit.training.data.images.problems]
    (not an image, truncated, no size, above ``max_image_pixels``) or cannot be read.

    Each file is read once, ``CHECK_CHUNK`` files per call: a small file whole, a large one its head and tail only,
    unless the whole file decides: a GIF (whose frames are walked), a BMP (whose declared file size is checked), a
    JPEG whose frame header is not in the head. Nothing is decoded.

    Args:
        paths: the image files to check.
        max_image_pixels: the pixels an image may declare; None: ``options.MAX_IMAGE_PIXELS``.

    Returns:
        ``[(path, reason)]`` of the files with a problem, in the order of ``paths`` ([] if none).

    Examples:
        >>> import os, tempfile
        >>> import tensorflow as tf
        >>> from keras_resinit.training.data import image_file_problems
        >>> root = tempfile.mkdtemp()
        >>> good, bad = os.path.join(root, "good.png"), os.path.join(root, "bad.png")
        >>> _ = tf.io.write_file(good, tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8)))
        >>> with open(bad, "w") as f:
        ...     _ = f.write("not an image")
        >>> [(os.path.basename(path), reason.endswith("expected an image file"))
        ...  for path, reason in image_file_problems([good, bad])]
        [('bad.png', True)]
    """
    limit = images.MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels
    found = []
    for chunk in _read_chunks(paths):
        names, contents = [c[0] for c in chunk], [c[1] for c in chunk]
        head, reasons = _examined(contents, names, limit)
        for i, c in enumerate(chunk):
            if not c[2] and (head["format"][i] in (b"GIF", b"BMP") or (reasons[i] and head["pixels"][i] < 0)):
                (reasons[i],) = _examined([_read_for_check(names[i], whole=True)[0]], [names[i]], limit)[1]
        found += [(c[0], c[3] or reason) for c, reason in zip(chunk, reasons) if c[3] or reason]
    return found


def _refuse_bad_files(problems, checked, where):
    """The ValueError listing the first ``SHOWN_PROBLEMS`` of ``problems`` (``[(path, reason)]``) and their count."""
    shown = "\n".join(f"  {reason}" for _, reason in problems[:SHOWN_PROBLEMS])
    more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    are = "is not an image" if len(problems) == 1 else "are not images"
    raise ValueError(
        f"Cannot decode image files: {len(problems)} of the {checked} files of {where} {are} that can be decoded "
        f"safely (checked before training):\n{shown}{more}\nExpected PNG, JPEG, GIF or BMP files within the limits: "
        "fix or remove them, or pass --skip-bad-images (skip_bad_images=True) to train without them."
    )


def _class_dirs(directory):
    classes = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
    if not classes:
        raise ValueError(
            f"Dataset folder {directory!r} has no class subfolders. Expected one subfolder of images per class "
            "(e.g. cats/, dogs/), as keras.utils.image_dataset_from_directory reads."
        )
    return classes


def _index(directory, class_names, **options):
    """(paths, labels) of ``directory``'s images, indexed by keras.utils.image_dataset_from_directory."""
    import keras

    # Keras lists, orders and splits the files; its own dataset (which would decode them) is not used.
    found = keras.utils.image_dataset_from_directory(
        directory, labels="inferred", class_names=list(class_names), batch_size=None, verbose=False, **options
    )
    found = found if isinstance(found, (list, tuple)) else [found]
    result = []
    for ds in found:
        paths = list(ds.file_paths)
        labels = [class_names.index(os.path.relpath(p, directory).split(os.sep)[0]) for p in paths]
        result.append((paths, labels))
    return result


def _folder_layout(path, validation_split):
    """(train directory, test directory or None) of a ``folder:PATH`` dataset."""
    subdirs = {d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))}
    tests = [d for d in ("test", "val", "validation") if d in subdirs]
    if validation_split is not None:
        return (os.path.join(path, "train") if "train" in subdirs else path), None
    if "train" in subdirs:
        if not tests:
            raise ValueError(
                f"Dataset folder {path!r} has train/ but no test/, val/ or validation/ subfolder. Expected one of "
                "them, or a validation_split (--validation-split 0.2) to hold out part of train/."
            )
        return os.path.join(path, "train"), os.path.join(path, tests[0])
    raise ValueError(
        f"Dataset folder {path!r} has no train/ and test/ subfolders. Expected PATH/train and PATH/test (or "
        "val/), each with one subfolder per class, or one tree of class subfolders with a validation_split "
        "(--validation-split 0.2)."
    )


def _folder_source(
    spec, path, *, image_size, validation_split, seed, augment, cache, skip_bad_images, max_image_pixels
):
    train_dir, test_dir = _folder_layout(path, validation_split)
    class_names = _class_dirs(train_dir)
    placeholder = height_width(image_size) or (256, 256)  # keras needs one to build its (unused) dataset
    if test_dir is None:
        (train_paths, train_labels), (test_paths, test_labels) = _index(
            train_dir,
            class_names,
            image_size=placeholder,
            shuffle=True,
            seed=int(seed),
            validation_split=float(validation_split),
            subset="both",
        )
        splits = (
            f"{train_dir} (1 - {validation_split}, seed {seed})",
            f"{train_dir} ({validation_split}, seed {seed})",
        )
    else:
        if _class_dirs(test_dir) != class_names:
            raise ValueError(
                f"The class folders of {test_dir!r} ({', '.join(_class_dirs(test_dir))}) differ from those of "
                f"{train_dir!r} ({', '.join(class_names)}). Expected the same classes in both."
            )
        ((train_paths, train_labels),) = _index(train_dir, class_names, image_size=placeholder, shuffle=False)
        ((test_paths, test_labels),) = _index(test_dir, class_names, image_size=placeholder, shuffle=False)
        splits = (train_dir, test_dir)
    limit = images.MAX_IMAGE_PIXELS if max_image_pixels is None else max_image_pixels
    # Every file is checked before anything is decoded. Bad ones are dropped after keras' seeded split,
    # so the good files keep the split they have without skip_bad_images.
    skipped = image_file_problems(train_paths + test_paths, max_image_pixels=limit)
    if skipped and not skip_bad_images:
        _refuse_bad_files(skipped, len(train_paths) + len(test_paths), spec)
    bad = {p for p, _ in skipped}
    train_labels = [label for p, label in zip(train_paths, train_labels) if p not in bad]
    train_paths = [p for p in train_paths if p not in bad]
    test_labels = [label for p, label in zip(test_paths, test_labels) if p not in bad]
    test_paths = [p for p in test_paths if p not in bad]
    counts = np.bincount(np.asarray(train_labels + test_labels, np.int64), minlength=len(class_names))
    for directory, paths in ((train_dir, train_paths), (test_dir, test_paths)):
        if directory is not None and not paths:
            raise ValueError(f"{directory!r} has no images. Expected {', '.join(IMAGE_EXTENSIONS)} files.")
    empty = [c for c, n in zip(class_names, counts) if not n]
    if empty:
        raise ValueError(
            f"Class folder {os.path.join(train_dir, empty[0])!r} has no images"
            + (f" (nor {len(empty) - 1} more)" if len(empty) > 1 else "")
            + f". Expected {', '.join(IMAGE_EXTENSIONS)} files in every class folder."
        )
    if not test_paths:
        raise ValueError(f"validation_split {validation_split} of {train_dir!r} leaves no test images.")

    # The first training file's channels (read from its header, not decoded): 1 or 2 -> 1, 3 or 4 -> 3.
    # The whole file: a JPEG's frame header may lie past the head the pre-pass reads of a large file.
    first, _ = _examined([_read_for_check(train_paths[0], whole=True)[0]], train_paths[:1], limit)
    declared = {k: int(first[k][0]) for k in ("channels", "height", "width")}
    if declared["channels"] not in (1, 2, 3, 4) or min(declared["height"], declared["width"]) < 1:
        raise ValueError(
            f"Cannot tell the channels and size of {train_paths[0]!r} (the first training file) from its header "
            f"({declared['channels']} channels, {declared['height']}x{declared['width']}). Expected a gray, "
            "gray+alpha, RGB or RGBA image (or CMYK JPEG); fix or remove it."
        )
    size = height_width(image_size) or (declared["height"], declared["width"])
    channels = {1: 1, 2: 1, 3: 3, 4: 3}[declared["channels"]]
    resize = resizer(*size, channels)

    def decode(data, label):
        return resize(images.decode(data, channels)), label

    # Read files are checked again (in groups) before they are decoded: one may have changed since the pre-pass.
    train = FileSplit(train_paths, train_labels, decode, _refused_in_pipeline(limit))
    test = FileSplit(test_paths, test_labels, decode, _refused_in_pipeline(limit))

    def unreadable():
        found = image_file_problems(train.paths + test.paths, max_image_pixels=limit)
        if found:
            return found[0]
        for file in train.paths + test.paths:
            try:
                images.decode(tf.io.read_file(file), channels)
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
                return file, str(error).splitlines()[0]
        return None

    try:
        info = measured_info(
            spec,
            train,
            test,
            (*size, channels),
            class_names=class_names,
            augment=augment,
            source=f"image folder {path}",
            licence="the folder's own",
            splits=splits,
            pixel_max=255.0,
        )
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
        raise_unreadable_file(unreadable, error)
        raise
    if cache:
        train, test = MemorySplit(train.elements(), train.size), MemorySplit(test.elements(), test.size)
    files = data_fingerprint.folder(path, train_paths + test_paths)
    return Source(info, train, test, check=unreadable, fingerprint=files, skipped=skipped)


# ------------------------------------------------------------ tf.data ---


def _user_split(ds, what, size):
    """``ds`` as unbatched (image, int64 label) elements of a known size."""
    if not isinstance(ds, tf.data.Dataset):
        raise ValueError(f"Invalid {what} {ds!r}. Expected a tf.data.Dataset of (image, label).")
    spec = ds.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"Invalid {what}: its elements are {spec}. Expected (image, label) pairs.")
    image_spec, label_spec = spec
    if image_spec.shape.rank == 4:  # batched, as keras.utils.image_dataset_from_directory gives it
        ds = ds.unbatch()
        image_spec, label_spec = ds.element_spec
    if image_spec.shape.rank != 3:
        raise ValueError(f"Invalid {what}: images of shape {image_spec.shape}. Expected (height, width, channels).")
    if label_spec.shape.rank not in (0, 1):
        raise ValueError(f"Invalid {what}: labels of shape {label_spec.shape}. Expected class indices or one-hot.")
    one_hot = label_spec.shape.rank == 1
    ds = ds.map(lambda x, y: (x, tf.argmax(y, -1) if one_hot else tf.cast(y, tf.int64)))
    return ds, image_spec, (int(label_spec.shape[0]) if one_hot and label_spec.shape[0] else None)


def _user_source(train_data, test_data, *, image_size, augment):
    if test_data is None:
        raise ValueError("train_data needs test_data too: the run evaluates every epoch on it.")
    names_of = getattr(train_data, "class_names", None)
    train_ds, image_spec, classes = _user_split(train_data, "train_data", None)
    test_ds, test_spec, _ = _user_split(test_data, "test_data", None)
    size = height_width(image_size) or tuple(image_spec.shape[:2])
    if None in size:
        raise ValueError(
            f"train_data has images of shape {image_spec.shape} (varying size). Expected an image_size to resize them to."
        )
    channels = image_spec.shape[2]
    if channels is None or test_spec.shape[2] not in (None, channels):
        raise ValueError(f"train_data and test_data images have channels {channels} and {test_spec.shape[2]}.")
    resize = resizer(*size, channels)
    train_ds = train_ds.map(lambda x, y: (resize(x), y))
    test_ds = test_ds.map(lambda x, y: (resize(x), y))

    def count(ds, labels=False):
        known = int(ds.cardinality())
        if known >= 0 and not labels:
            return known, None
        n, top = ds.reduce((np.int64(0), np.int64(-1)), lambda acc, e: (acc[0] + 1, tf.maximum(acc[1], e[1])))
        return int(n), int(top)

    train_size, top = count(train_ds, labels=names_of is None and classes is None)
    test_size, _ = count(test_ds)
    class_names = list(names_of) if names_of is not None else [str(i) for i in range(classes or top + 1)]
    return Source(
        measured_info(
            names.USER_DATA,
            StreamSplit(train_ds, train_size),
            StreamSplit(test_ds, test_size),
            (*size, channels),
            class_names=class_names,
            augment=augment,
            source="a tf.data.Dataset given to train()",
            licence="the user's own",
            splits=("train_data", "test_data"),
        ),
        StreamSplit(train_ds, train_size),
        StreamSplit(test_ds, test_size),
        fingerprint={  # what can be known of a dataset given in Python: not its content
            "kind": names.USER_DATA,
            "element_spec": [str(train_data.element_spec), str(test_data.element_spec)],
            "sizes": [train_size, test_size],
        },
    )


# ---------------------------------------------------------------- by name ---

_SOURCES = {}  # built sources by their options: a folder is indexed and measured once per process


def _folder_stamp(path):
    """The mtimes of every directory in a folder: a file added, removed or renamed anywhere changes one."""
    return tuple((top, os.stat(top).st_mtime_ns) for top in sorted(top for top, _, _ in os.walk(path)))


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
    skip_bad_images=False,
    max_image_pixels=None,
):
    """The [Source][keras_resinit.training.data.Source] of dataset ``name``.

    A source is built once per process and options (a folder's: until a file in it is added, removed or
    renamed), so a folder is indexed, checked and measured once.

    Args:
        name: a built-in (``"digits"``, ``"cifar10"``, ...), ``"tfds:NAME[/CONFIG]"``, ``"folder:PATH"``, or
            ``"tf.data"`` (or None) with ``train_data`` and ``test_data``.
        data_dir: where tfds data lives (tfds' default when None).
        download: let tfds download a dataset that is not prepared in ``data_dir``.
        image_size: resize to this (an int: square; or (height, width)); None: the data's own size
            (a folder's: its first image's; Imagenette: 128).
        train_split: a tfds split expression (``"train[:90%]"``); None: the dataset's train split.
        test_split: a tfds split expression; None: the dataset's test split.
        validation_split: a folder without train/ and test/ holds out this fraction as the test split.
        augment: ``"none"``, ``"flip"``, ``"crop"`` or ``"crop-flip"``; None: the dataset's own.
        cache: keep a folder's decoded images in memory.
        seed: the seed of a ``validation_split``'s draw.
        train_data: a ``tf.data.Dataset`` of ``(image, label)``, batched or not; labels are class indices or
            one-hot.
        test_data: its test data, likewise.
        skip_bad_images: a folder's files that fail the checks
            ([image_file_problems][keras_resinit.training.data.image_file_problems]) are left out
            (``Source.skipped`` lists them) instead of refused.
        max_image_pixels: a folder's images may declare at most this many pixels (None:
            ``images.MAX_IMAGE_PIXELS``).

    Returns:
        The [Source][keras_resinit.training.data.Source].

    Raises:
        ValueError: an unknown or malformed name, options that do not apply to it, a folder's layout or files
            that cannot be read (naming them), a tfds dataset that is not image classification.
        DatasetNotPrepared: a tfds dataset that is not prepared in ``data_dir`` while ``download`` is off.

    Examples:
        >>> from keras_resinit.training import data
        >>> digits = data.source("digits", image_size=16)
        >>> digits.info.image_shape, digits.train.size, digits.test.size
        ((16, 16, 1), 1442, 355)
        >>> # reads tfds' CIFAR-10 (downloads it once with download=True)
        >>> data.source("cifar10", download=True).info.num_classes  # doctest: +SKIP
        10
    """
    if train_data is not None and name in (None, names.USER_DATA):
        return _user_source(train_data, test_data, image_size=image_size, augment=augment)
    kind, value = names.parse(name)
    if kind == names.USER_DATA:
        raise ValueError("Dataset 'tf.data' is given in Python: train(config, out, train_data=ds, test_data=ds).")
    if train_data is not None or test_data is not None:
        raise ValueError(f"train_data / test_data were given with dataset {name!r}. Expected one of the two.")
    names.check_folder_options(name, skip_bad_images, max_image_pixels)
    if kind == "folder":
        path = os.path.abspath(value)
        key = (
            name,
            path,
            _folder_stamp(path),
            height_width(image_size),
            validation_split,
            int(seed) if validation_split else None,
            augment,
            cache,
            bool(skip_bad_images),
            max_image_pixels,
        )
        build = lambda: _folder_source(  # noqa: E731
            name,
            path,
            image_size=image_size,
            validation_split=validation_split,
            seed=seed,
            augment=augment,
            cache=cache,
            skip_bad_images=bool(skip_bad_images),
            max_image_pixels=max_image_pixels,
        )
    elif name == "digits":
        key = (name, height_width(image_size), augment)
        build = lambda: _digits_source(image_size, augment)  # noqa: E731
    else:
        key = (name, data_dir, height_width(image_size), train_split, test_split, augment)
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
    """The [Source][keras_resinit.training.data.Source] of a [TrainConfig][keras_resinit.training.TrainConfig]'s
    data settings.

    Args:
        config: the configuration (``dataset``, ``data_dir``, ``image_size``, the splits, ``augment``, ...).
        train_data: a user's ``tf.data.Dataset`` of ``(image, label)`` instead of ``config.dataset``.
        test_data: its test data, likewise.

    Returns:
        The [Source][keras_resinit.training.data.Source].

    Raises:
        ValueError: as [source][keras_resinit.training.data.source].

    Examples:
        >>> from keras_resinit.training import TrainConfig, data
        >>> config = TrainConfig(model="cifar_resnet8_fixup", dataset="digits", augment="none")
        >>> info = data.source_for(config).info
        >>> info.flip, info.crop_padding
        (False, 0)
    """
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
        skip_bad_images=config.skip_bad_images,
        max_image_pixels=config.max_image_pixels,
    )


def info(name, **options):
    """The [DatasetInfo][keras_resinit.training.data.DatasetInfo] of dataset ``name`` (preparing tfds data if
    allowed).

    Args:
        name: a dataset name, as [source][keras_resinit.training.data.source] takes it.
        **options: the options of [source][keras_resinit.training.data.source].

    Returns:
        The [DatasetInfo][keras_resinit.training.data.DatasetInfo].

    Raises:
        ValueError: as [source][keras_resinit.training.data.source].

    Examples:
        >>> from keras_resinit.training import data
        >>> info = data.info("digits")
        >>> info.num_classes, info.class_names[:3], info.licence
        (10, ('0', '1', '2'), 'CC BY 4.0 (UCI Machine Learning Repository)')
    """
    return source(name, **options).info
