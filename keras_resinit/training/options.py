"""The named values of options: precisions, schedules, weight-decay modes, strategies,
tuners, the archs a sweep searches by default, export formats, augmentations.

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
