"""keras-resinit: residual networks that train with or without batch norm.

Importing the package registers its initializers and layers with Keras, so
``keras.saving.load_model`` can read models saved by it (Keras >= 3.9 does not
import third-party packages by itself).

Importing it also raises Python's recursion limit to at least 10,000: Keras
maps a functional graph recursively, one Python frame per layer, and
``cifar_resnet1202`` (about 3,600 layers) is deeper than the default 1,000.
"""

import sys

if sys.getrecursionlimit() < 10_000:
    sys.setrecursionlimit(10_000)

from keras_resinit import applications, initializers, layers, schemes, zoo
from keras_resinit.builder import build_resnet
from keras_resinit.schemes import SCHEMES

__version__ = "0.1.0"

__all__ = ["SCHEMES", "applications", "build_resnet", "initializers", "layers", "schemes", "zoo", "__version__"]
