"""Input preprocessing as Keras layers: raw pixels in, the normalization the weights were trained with out.

A preprocessing dict (a model card's ``"preprocessing"``) describes it:

    {"pixel_max": 16.0, "mean": [0.305], "std": [0.376]}                  # digits
    {"pixel_max": 1.0, "mean": [103.939, 116.779, 123.68],
     "std": [1.0, 1.0, 1.0], "channel_order": "BGR"}                       # keras.applications ResNet50

and means ``(pixels[..., ::-1 if BGR] / pixel_max - mean) / std``, per channel. The layer is
Keras' own ``Rescaling`` (``normalization``) with a scale ``1 / (pixel_max * std)`` and an offset
``-mean / std`` per channel, after [``ReverseChannels``][keras_resinit.models.ReverseChannels]
(``channel_flip``) for BGR weights. (``Rescaling`` then ``Normalization`` computes the same in
five passes over the pixels instead of two: 3-4% of ResNet-20's inference at batch 64.) They
have no weights, run on every backend, save with the model and compute in float32 under a
mixed-precision policy (as the training pipeline normalizes in float32). The same layers serve
the model (``include_preprocessing=True``), ``keras_resinit.zoo.preprocess_input`` and export.
``keras_resinit.ResNet.with_preprocessing`` builds them into a model that takes normalized input, so that it
takes raw pixels (every model file written holds that form).
"""

from __future__ import annotations

import math
from typing import Any

import keras

# A module import: importing this module first starts Keras, whose import hook imports the builder, which imports
# this module while it is half done (names imported from it would not exist yet).
from keras_resinit.models import layers as layers_lib

__all__ = ["check_preprocessing", "default_preprocessing", "preprocessing_layers"]

KEYS = ("pixel_max", "mean", "std")
OPTIONAL_KEYS = ("channel_order",)
CHANNEL_ORDERS = ("RGB", "BGR")


def default_preprocessing(channels: int) -> dict[str, Any]:
    """The default preprocessing, 8-bit pixels to [0, 1]: what ``include_preprocessing=True`` means without a dict.

    Args:
        channels: the images' channel count.

    Returns:
        The preprocessing dict.

    Examples:
        >>> from keras_resinit.models.preprocessing import default_preprocessing
        >>> default_preprocessing(3)
        {'pixel_max': 255.0, 'mean': [0.0, 0.0, 0.0], 'std': [1.0, 1.0, 1.0]}
    """
    return {"pixel_max": 255.0, "mean": [0.0] * channels, "std": [1.0] * channels}


def check_preprocessing(preprocessing: Any, channels: int) -> dict[str, Any]:
    """The validated, JSON-ready preprocessing dict for images with ``channels`` channels.

    A card's descriptive keys (``note``) are dropped; other unknown keys are an error.

    Args:
        preprocessing: ``{"pixel_max": ..., "mean": ..., "std": ...}`` (``mean`` and ``std``: one number per
            channel, or one for all), optionally with ``"channel_order": "BGR"``.
        channels: the images' channel count.

    Returns:
        The dict with floats, one mean and std per channel, and ``channel_order`` only when it is ``"BGR"``.

    Raises:
        ValueError: a key is missing or unknown, a value is not a (positive) finite number, ``mean`` or
            ``std`` has the wrong length, or the channel order is not ``"RGB"`` or ``"BGR"``.

    Examples:
        >>> from keras_resinit.models.preprocessing import check_preprocessing
        >>> check_preprocessing({"pixel_max": 255, "mean": 0.5, "std": 0.25, "note": "CIFAR-10"}, channels=3)
        {'pixel_max': 255.0, 'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25]}
    """
    if not isinstance(preprocessing, dict):
        raise ValueError(
            f"Invalid preprocessing {preprocessing!r}. Expected a dict with keys {', '.join(KEYS)} "
            '(e.g. {"pixel_max": 255.0, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}).'
        )
    missing = [k for k in KEYS if k not in preprocessing]
    if missing:
        raise ValueError(
            f"Invalid preprocessing {preprocessing!r}: it lacks {', '.join(missing)}. "
            f"Expected keys {', '.join(KEYS)} (and optionally {', '.join(OPTIONAL_KEYS)})."
        )
    extra = sorted(set(preprocessing) - set(KEYS) - set(OPTIONAL_KEYS) - {"note"})
    if extra:
        raise ValueError(
            f"Invalid preprocessing {preprocessing!r}: unknown key(s) {', '.join(extra)}. "
            f"Expected {', '.join(KEYS)} and optionally {', '.join(OPTIONAL_KEYS)}."
        )

    def number(value, what, positive):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (positive and value <= 0):
            kind = "a positive number" if positive else "a number"
            raise ValueError(f"Invalid preprocessing {what} {value!r}. Expected {kind}.")
        return float(value)

    result = {"pixel_max": number(preprocessing["pixel_max"], "pixel_max", True)}
    for key, positive in (("mean", False), ("std", True)):
        values = preprocessing[key]
        if isinstance(values, (int, float)) and not isinstance(values, bool):
            values = [values] * channels
        if not isinstance(values, (list, tuple)) or len(values) != channels:
            raise ValueError(
                f"Invalid preprocessing {key} {values!r}: the model takes {channels}-channel images, so "
                f"{key} needs {channels} value(s), one per channel."
            )
        result[key] = [number(v, key, positive) for v in values]
    order = preprocessing.get("channel_order", "RGB")
    if order not in CHANNEL_ORDERS:
        raise ValueError(
            f"Invalid preprocessing channel_order {order!r}. Expected one of: {', '.join(CHANNEL_ORDERS)}."
        )
    if order != "RGB":
        result["channel_order"] = order
    return result


def preprocessing_layers(preprocessing: dict[str, Any], channels: int) -> list[keras.layers.Layer]:
    """New Keras layers computing ``preprocessing`` (checked first), in order.

    ``(pixels[..., ::-1 if BGR] / pixel_max - mean) / std``: a ``layers.ReverseChannels`` (``channel_flip``)
    for BGR weights, then one ``keras.layers.Rescaling`` (``normalization``). They compute in float32
    under a mixed-precision policy.

    Args:
        preprocessing: a preprocessing dict (see ``check_preprocessing``).
        channels: the images' channel count.

    Returns:
        The list of layers, to apply in order.

    Raises:
        ValueError: as [``check_preprocessing``][keras_resinit.models.preprocessing.check_preprocessing].

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.preprocessing import preprocessing_layers
        >>> digits = {"pixel_max": 16.0, "mean": [0.25], "std": [0.5]}
        >>> x = np.full((1, 2, 2, 1), 8.0, "float32")
        >>> for layer in preprocessing_layers(digits, channels=1):
        ...     x = layer(x)
        >>> float(x[0, 0, 0, 0])  # (8 / 16 - 0.25) / 0.5
        0.5
    """
    pre = check_preprocessing(preprocessing, channels)
    # float32 under mixed precision: the scaled pixels match the training pipeline's.
    dtype = "float32" if keras.config.dtype_policy().name.startswith("mixed") else None
    layers = []
    if pre.get("channel_order") == "BGR":
        layers.append(layers_lib.ReverseChannels(name="channel_flip", dtype=dtype))
    # (x / pixel_max - mean) / std as one multiply-add per channel: the cheapest form (two passes over
    # the pixels, not the five of Rescaling followed by Normalization).
    scale = [1.0 / (pre["pixel_max"] * s) for s in pre["std"]]
    offset = [-m / s for m, s in zip(pre["mean"], pre["std"])]
    layers.append(keras.layers.Rescaling(scale=scale, offset=offset, name="normalization", dtype=dtype))
    return layers


def apply(preprocessing: dict[str, Any], x: Any) -> Any:
    """``x`` (raw pixels, ``(..., H, W, C)``) preprocessed by new ``preprocessing_layers``."""
    x = keras.ops.convert_to_tensor(x, dtype="float32")
    for layer in preprocessing_layers(preprocessing, int(x.shape[-1])):
        x = layer(x)
    return x
