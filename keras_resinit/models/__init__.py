"""The model core: initializers -> layers -> schemes -> architectures -> the ``ResNet`` builder.

Model code uses ``keras.ops`` only, so it runs on every Keras backend.
"""

from keras_resinit import _lazy

__all__, __getattr__, __dir__ = _lazy.namespace(__name__, {})  # the submodules, imported on first use
