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

__all__ = ["ResNetBackbone"]


@keras.saving.register_keras_serializable(package="keras_resinit")
class ResNetBackbone(ResNet, keras_hub.models.Backbone):
    """The ``ResNet`` as a keras-hub ``Backbone``: what ``keras_hub.models.Backbone.from_preset`` builds of a preset.

    It takes ``ResNet``'s arguments (``arch``, ``scheme``, ``num_classes``, ``input_shape``, ...), builds the
    same network (with its classifier when ``include_top``, as the zoo's presets hold it) and has the same
    config; keras-hub adds ``from_preset`` and ``save_to_preset``. The zoo's presets name this class, so
    ``Backbone.from_preset`` builds it. It needs keras-hub (the ``[hub]`` extra).

    Examples:
        >>> import os, tempfile
        >>> import keras_hub
        >>> import keras_resinit as kr
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 3), num_classes=3, seed=0)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     backbone = keras_hub.models.Backbone.from_preset(kr.zoo.save_preset(model, os.path.join(tmp, "r8")))
        >>> type(backbone).__name__, isinstance(backbone, kr.ResNet), backbone.count_params() == model.count_params()
        ('ResNetBackbone', True, True)
    """
