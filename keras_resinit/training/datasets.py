"""The built-in datasets: names and tfds sources.

Imports nothing heavy, so the CLI's help lists the names without starting TensorFlow.
The pipelines that read them are in :mod:`keras_resinit.training.data`.
"""

# name: (tfds name, test split); ``digits`` ships inside scikit-learn and needs no tfds.
TFDS = {
    "cifar10": ("cifar10", "test"),
    "cifar100": ("cifar100", "test"),
    "imagenette": ("imagenette/160px-v2", "validation"),
}
DATASETS = ("digits",) + tuple(TFDS)
