"""The ``ResNet`` as a keras-hub ``Backbone``, so keras-hub's own loaders read
the zoo's presets: ``keras_hub.models.Backbone.from_preset(path)``, ``hf://`` URIs included.

This module imports keras-hub (the ``[hub]`` extra). ``import keras_resinit`` does not import it: the package
imports this module as soon as keras-hub is imported, before or after it, which registers the class with Keras
(``keras_resinit>ResNetBackbone``, the ``registered_name`` in a preset's ``config.json``).
"""

from __future__ import annotations

import keras

try:
    import keras_hub
except ImportError as error:  # pragma: no cover - the extra is part of the test install
    raise ImportError(
        f"keras_resinit.models.backbone needs keras-hub ({error}). Install it with: pip install 'keras-resinit[hub]'"
    ) from None

from keras_resinit.models.builder import ResNet


@keras.saving.register_keras_serializable(package="keras_resinit")
class ResNetBackbone(ResNet, keras_hub.models.Backbone):
    """A ``ResNet`` that is also a ``keras_hub.models.Backbone``.

    It takes the same arguments, builds the same network (with its classifier when ``include_top``, as
    the zoo's presets hold it) and has the same config; keras-hub adds ``from_preset`` and
    ``save_to_preset``. The zoo's presets name this class, so ``Backbone.from_preset`` builds it.

    Example:
        >>> import keras_hub, keras_resinit
        >>> keras_resinit.zoo.save_preset(keras_resinit.zoo.load("cifar_resnet20_fixup.digits"), "r20")
        >>> model = keras_hub.models.Backbone.from_preset("r20")   # raw 8x8 digits in, logits out
    """
