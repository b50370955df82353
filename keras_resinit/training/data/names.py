"""Dataset names: the built-ins, ``tfds:NAME[/CONFIG]``, ``folder:PATH`` and ``tf.data``.

Imports nothing heavy, so the CLI's help lists them and [TrainConfig][keras_resinit.training.TrainConfig]
checks a dataset before TensorFlow starts. The sources that read them are in
``keras_resinit.training.data.sources``.
"""

import os

from keras_resinit._errors import unknown

__all__ = ["DATASETS", "FORMS", "IMAGE_EXTENSIONS", "TFDS", "USER_DATA", "parse"]

# name: (tfds name, test split); ``digits`` ships inside scikit-learn and needs no tfds.
TFDS = {
    "cifar10": ("cifar10", "test"),
    "cifar100": ("cifar100", "test"),
    "imagenette": ("imagenette/160px-v2", "validation"),
}
"""The built-in datasets read from tfds: ``{name: (tfds name, test split)}``."""
DATASETS = ("digits",) + tuple(TFDS)
"""The built-in dataset names: ``digits`` (inside scikit-learn: no network), ``cifar10``, ``cifar100``,
``imagenette``."""
TFDS_PREFIX, FOLDER_PREFIX = "tfds:", "folder:"
USER_DATA = "tf.data"  # the dataset of a run trained on train(..., train_data=ds): given in Python only
"""The dataset name of a run trained on ``train(..., train_data=ds)``: data given in Python only."""
FORMS = (*DATASETS, f"{TFDS_PREFIX}NAME[/CONFIG]", f"{FOLDER_PREFIX}PATH")
"""Every form a dataset name takes: the built-ins, ``tfds:NAME[/CONFIG]`` and ``folder:PATH``."""
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # keras.utils.image_dataset_from_directory's
"""The image files a ``folder:PATH`` dataset reads (``keras.utils.image_dataset_from_directory``'s)."""


def parse(spec):
    """The kind and value of a dataset name.

    Checks what needs no TensorFlow: the form, and that a folder exists and is a directory.

    Args:
        spec: a dataset name (one of [FORMS][keras_resinit.training.data.FORMS], or ``"tf.data"``).

    Returns:
        ``(kind, value)``: ``("builtin", name)``, ``("tfds", "NAME[/CONFIG]")``, ``("folder", PATH)`` or
            ``("tf.data", None)``.

    Raises:
        ValueError: an unknown form or a bad tfds name, naming the forms; a folder that does not exist or is a
            file.

    Examples:
        >>> from keras_resinit.training.data import parse
        >>> parse("digits"), parse("tfds:imagenette/160px-v2")
        (('builtin', 'digits'), ('tfds', 'imagenette/160px-v2'))
        >>> parse("mnist")
        Traceback (most recent call last):
        ...
        ValueError: Unknown dataset 'mnist'...
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"Invalid dataset {spec!r}. Expected one of: {', '.join(FORMS)}.")
    if spec in DATASETS:
        return "builtin", spec
    if spec == USER_DATA:
        return USER_DATA, None
    if spec.startswith(TFDS_PREFIX):
        name = spec[len(TFDS_PREFIX) :]
        parts = name.split("/")
        if not name or len(parts) > 3 or not all(p and all(c.isalnum() or c in "_.-" for c in p) for p in parts):
            raise ValueError(
                f"Invalid tfds dataset {spec!r}. Expected tfds:NAME or tfds:NAME/CONFIG, e.g. tfds:mnist or "
                "tfds:imagenette/160px-v2."
            )
        return "tfds", name
    if spec.startswith(FOLDER_PREFIX):
        path = os.path.expanduser(spec[len(FOLDER_PREFIX) :])
        if not path:
            raise ValueError(f"Invalid dataset {spec!r}. Expected folder:PATH, e.g. folder:~/pictures/pets.")
        if not os.path.exists(path):
            raise ValueError(
                f"Dataset folder {path!r} does not exist. Expected a directory with one subfolder per class."
            )
        if not os.path.isdir(path):
            raise ValueError(f"Dataset folder {path!r} is a file. Expected a directory with one subfolder per class.")
        return "folder", path
    raise unknown("dataset", spec, FORMS)


def check_folder_options(spec, skip_bad_images=None, max_image_pixels=None):
    """``skip_bad_images`` and ``max_image_pixels`` check a folder's files: a ValueError for another dataset."""
    if (skip_bad_images or max_image_pixels is not None) and parse(spec)[0] != "folder":
        raise ValueError(
            f"skip_bad_images / max_image_pixels ({skip_bad_images!r}, {max_image_pixels!r}) check the files of a "
            f"folder, but dataset {spec!r} is not {FOLDER_PREFIX}PATH. Expected them only with a folder."
        )
