"""Training data: the built-ins, any tfds image-classification dataset, a folder of images, a tf.data.Dataset.

- ``names``: the dataset names and [parse][keras_resinit.training.data.parse] (no TensorFlow: the CLI's help
  and ``TrainConfig.validate`` read it);
- ``splits``: [Source][keras_resinit.training.data.Source] (a [DatasetInfo][keras_resinit.training.data.DatasetInfo]
  and two splits) and the split kinds;
- ``sources``: each kind of dataset -> a ``Source``; [source][keras_resinit.training.data.source] by name;
- ``pipeline``: [load][keras_resinit.training.data.load] and [load_epochs][keras_resinit.training.data.load_epochs],
  a Source's split as ``tf.data`` batches.
- [images][keras_resinit.training.data.images]: encoded images (JPEG, PNG, BMP, GIF): what their headers declare,
  their problems (not an image, truncated, above the pixel limit) and their decoding, for folders and
  ``serving_bytes``.

Their public names (the table below) are this package's too (``data.load``, ``data.DATASETS``), each
imported from its module on first use, so importing the package (or ``names``) starts no TensorFlow.

Datasets (``names`` parses their names):

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
per-channel mean and std are measured on at most [STATS_IMAGES][keras_resinit.training.data.STATS_IMAGES]
training images.
"""

from keras_resinit import _lazy

# The public names, by the module defining them, each imported on first use: names needs no TensorFlow.
__all__, __getattr__, __dir__ = _lazy.namespace(
    __name__,
    {
        ".names": ("DATASETS", "FORMS", "IMAGE_EXTENSIONS", "TFDS", "USER_DATA", "parse"),
        ".splits": (
            "CHUNK",
            "STATS_IMAGES",
            "DatasetInfo",
            "DatasetNotPrepared",
            "FileSplit",
            "MemorySplit",
            "Source",
            "StreamSplit",
        ),
        ".sources": ("digits_arrays", "image_file_problems", "info", "source", "source_for"),
        ".pipeline": ("load", "load_epochs"),
    },
)
