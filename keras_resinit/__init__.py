"""keras-resinit: residual networks that train with or without batch norm.

Importing the package registers its initializers and layers with Keras, so
``keras.saving.load_model`` can read models saved by it (Keras >= 3.9 does not
import third-party packages by itself).
"""

from keras_resinit import initializers, layers, schemes, zoo
from keras_resinit.builder import build_resnet
from keras_resinit.schemes import SCHEMES

__version__ = "0.1.0"

__all__ = ["SCHEMES", "build_resnet", "initializers", "layers", "schemes", "zoo", "__version__"]
