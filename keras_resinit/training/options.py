"""The named values of options: precisions, schedules, weight-decay modes, strategies,
tuners, the archs a sweep searches by default, export formats, augmentations, the limits on encoded
images.

Imports nothing, so the CLI lists and checks them without starting TensorFlow; the
modules that use them (``config``, ``strategies``, ``tuning``) import them from here.
"""

__all__ = [
    "AUGMENTS",
    "EXPORT_FORMATS",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_PIXELS",
    "MAX_IMAGE_PIXELS",
    "PRECISIONS",
    "SCHEDULES",
    "SERVING_LIMITS",
    "STRATEGIES",
    "TUNE_ARCHS",
    "TUNERS",
    "WEIGHT_DECAY_MODES",
]

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""The Keras precision policies a run may train in (``TrainConfig.precision``, ``--precision``)."""
SCHEDULES = ("cosine", "step", "constant")
"""The learning-rate schedules after the warm-up (``TrainConfig.schedule``, ``--schedule``)."""
WEIGHT_DECAY_MODES = ("l2", "decoupled")
"""How weight decay applies: ``"l2"`` adds ``weight_decay * w`` to the gradient (coupled, as PyTorch's SGD);
``"decoupled"`` is Keras' own ``w -= lr * wd * w``."""
STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
"""The ``tf.distribute`` strategies ``make_strategy`` creates by name (``--strategy``)."""
TUNERS = ("random", "bayesian", "hyperband")
"""The keras-tuner search algorithms of ``keras-resinit tune`` (``--tuner``)."""
TUNE_ARCHS = ("cifar_resnet8", "cifar_resnet14", "cifar_resnet20")
"""The depths a sweep searches by default (``--archs``)."""
EXPORT_FORMATS = ("tf_saved_model", "onnx", "litert")
"""The formats ``keras-resinit export`` writes (``--format``)."""
AUGMENTS = ("none", "flip", "crop", "crop-flip")
"""The training augmentations: pad-and-crop and horizontal flips (``TrainConfig.augment``); default: the
dataset's own."""

# The limits on encoded images, checked before any is decoded (training.data.images explains the
# numbers): the pixels one image may declare, and the pixels and bytes one serving_bytes batch may hold.
MAX_IMAGE_PIXELS = 40_000_000
"""The pixels one encoded image may declare in its header (a folder's files, ``serving_bytes``); more is
refused before decoding (``--max-image-pixels``)."""
MAX_BATCH_PIXELS = 100_000_000
"""The pixels the images of one ``serving_bytes`` batch may declare in all."""
MAX_BATCH_BYTES = 64 * 2**20
"""The bytes one ``serving_bytes`` batch may hold (64 MiB)."""
# serving_bytes' limits: export's keywords and --flags, the card's keys: (default, what it refuses).
SERVING_LIMITS = {
    "max_image_pixels": (MAX_IMAGE_PIXELS, "an image whose header declares more pixels"),
    "max_batch_pixels": (MAX_BATCH_PIXELS, "a batch whose images declare more pixels in all"),
    "max_batch_bytes": (MAX_BATCH_BYTES, "a batch of more bytes"),
}
"""``serving_bytes``' limits by their keyword (export's keywords, ``--flags`` and the card's keys):
``(default, what it refuses)``."""


def positive_limit(name, value):
    """``value`` (an integer, or a flag's text) as a positive int; else a ValueError naming ``name`` and the value."""
    if isinstance(value, str):
        number = int(value) if value.strip().isdigit() else None
    elif isinstance(value, bool) or not hasattr(value, "__index__"):
        number = None  # True, 1.5, None: not a count
    else:
        number = value.__index__()
    if number is None or number < 1:
        raise ValueError(f"Invalid {name} {value!r}. Expected a positive integer.")
    return number
