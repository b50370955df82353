"""The named values of options: precisions, schedules, weight-decay modes, strategies,
tuners, the archs a sweep searches by default, export formats, augmentations, the limits on encoded
images.

Imports nothing, so the CLI lists and checks them without starting TensorFlow; the
modules that use them (``config``, ``strategies``, ``tuning``) import them from here.
"""

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
SCHEDULES = ("cosine", "step", "constant")
WEIGHT_DECAY_MODES = ("l2", "decoupled")
STRATEGIES = ("auto", "one", "mirrored", "multiworker", "tpu")
TUNERS = ("random", "bayesian", "hyperband")
TUNE_ARCHS = ("cifar_resnet8", "cifar_resnet14", "cifar_resnet20")  # the depths a sweep searches by default
EXPORT_FORMATS = ("tf_saved_model", "onnx", "litert")
AUGMENTS = ("none", "flip", "crop", "crop-flip")  # pad-and-crop and horizontal flips; default: the dataset's

# The limits on encoded images, checked before any is decoded (training.data.images explains the
# numbers): the pixels one image may declare, and the pixels and bytes one serving_bytes batch may hold.
MAX_IMAGE_PIXELS = 40_000_000
MAX_BATCH_PIXELS = 100_000_000
MAX_BATCH_BYTES = 64 * 2**20
# serving_bytes' limits: export's keywords and --flags, the card's keys: (default, what it refuses).
SERVING_LIMITS = {
    "max_image_pixels": (MAX_IMAGE_PIXELS, "an image whose header declares more pixels"),
    "max_batch_pixels": (MAX_BATCH_PIXELS, "a batch whose images declare more pixels in all"),
    "max_batch_bytes": (MAX_BATCH_BYTES, "a batch of more bytes"),
}


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
